"""Where Hugging Face's two BERT tokenizers disagree, minibert follows the Python one.

The pure-Python `BertTokenizerLegacy` reads Python's own Unicode database
(`unicodedata`, Unicode 14.0 on Python 3.11), as minibert does; the Rust
`BertTokenizer` carries its own tables and differs in a few implementation
details. Each case below is one kind of disagreement, with the outputs of
both references spelled out, so that a change in either shows up here.
`test_every_code_point` sweeps all of Unicode.
"""
from __future__ import annotations

import os
import tempfile
import unicodedata
from collections import Counter

import pytest

from helpers import minilm_path, minilm_tokenizer
from reference import hf_fast, hf_python

# (text, what the Rust tokenizer gives, what the Python one gives = what minibert gives, why)
CASES = [
    ("a\u0378b", ["[UNK]"], ["ab"],
     "U+0378 is unassigned (category Cn). HF Python deletes every C* character; "
     "Rust deletes Cc/Cf/Co/Cs but keeps unassigned ones, so the word is unknown"),
    ("a\u1abfb", ["[UNK]"], ["ab"],
     "U+1ABF (a combining mark, Mn, new in Unicode 13): Python strips it as an accent; "
     "Rust's tables predate it and keep it"),
    ("a\u2e52b", ["[UNK]"], ["a", "[UNK]", "b"],
     "U+2E52 TIRONIAN SIGN CAPITAL ET (Po, Unicode 13): punctuation to Python, unknown to Rust"),
    ("a\U0002b820b", ["[UNK]"], ["a", "[UNK]", "b"],
     "U+2B820, a CJK ideograph (Extension E, Unicode 8) in BERT's CJK ranges: spaced out by "
     "Python; Rust's tables do not have it and keep it inside the word"),
    ("a\u166db", ["a", "[UNK]", "b"], ["[UNK]"],
     "U+166D CANADIAN SYLLABICS CHI SIGN changed from Po to So in later Unicode: "
     "punctuation to Rust's older tables, a symbol (not split) to Python's"),
    ("a\u1885b", ["[UNK]"], ["ab"],
     "U+1885 MONGOLIAN LETTER ALI GALI BALUDA changed from Lo to Mn: an accent to Python"),
    ("ΟΔΟΣ", ["ο", "##δ", "##ο", "##σ"], ["ο", "##δ", "##ος"],
     "Python's str.lower() writes a word-final capital sigma as 'ς'; Rust lowers "
     "character by character and always gives 'σ'"),
    ("[MAS\u212a]", ["[", "mask", "]"], ["[MASK]"],
     "U+212A KELVIN SIGN becomes 'K' under NFC, which only the Python tokenizer applies; "
     "the word is then the special token [MASK], which it never splits"),
]


@pytest.mark.parametrize("text,rust,python,why", CASES, ids=[c[0].encode("unicode_escape").decode()
                                                          for c in CASES])
def test_references_disagree_and_minibert_follows_python(text, rust, python, why):
    assert hf_fast().tokenize(text) == rust, why
    assert hf_python().tokenize(text) == python, why
    assert minilm_tokenizer().tokenize(text) == python, why


def test_nfc_in_cased_mode():
    """Cased: only the Python reference composes "e" + U+0301 into "é" (NFC) before WordPiece."""
    import transformers
    from transformers.models.bert import BertTokenizerLegacy
    from minibert.tokenization import BertTokenizer

    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "caf", "##é", "##e", "##\u0301"]
    tok = BertTokenizer(tokens, do_lower_case=False)
    fast = transformers.BertTokenizer(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=False)
    text = "cafe\u0301"  # "café" with a combining accent
    assert fast.tokenize(text) == ["caf", "##e", "##\u0301"]
    assert tok.tokenize(text) == ["caf", "##é"] == tok.tokenize("caf\u00e9")
    with tempfile.TemporaryDirectory() as folder:
        tok.save_pretrained(folder)
        python = BertTokenizerLegacy(os.path.join(folder, "vocab.txt"), do_lower_case=False)
        assert python.tokenize(text) == ["caf", "##é"]


def test_empty_second_text():
    """tok("ab", "") is a pair with an empty B to the Python reference, no pair to the Rust one."""
    assert hf_python()("ab", "")["input_ids"] == [101, 11113, 102, 102]
    assert hf_fast()("ab", "")["input_ids"] == [101, 11113, 102]
    assert minilm_tokenizer()("ab", "")["input_ids"] == [101, 11113, 102, 102]
    assert minilm_tokenizer()("ab", "")["token_type_ids"] == [0, 0, 0, 1]


def test_pair_truncation_tie():
    """Both texts cut, odd room left: Python (and Google) keep the extra token in A, Rust in B."""
    a, b = " ".join(["a"] * 10), " ".join(["b"] * 10)
    mine = minilm_tokenizer()(a, b, truncation=True, max_length=8)["input_ids"]
    assert mine == [101] + [1037] * 3 + [102] + [1038] * 2 + [102]
    assert hf_python()(a, b, truncation=True, max_length=8)["input_ids"] == mine
    assert hf_fast()(a, b, truncation=True, max_length=8)["input_ids"] == (
        [101] + [1037] * 2 + [102] + [1038] * 3 + [102])


def test_decode_clean_up():
    """Python's decode joins "it ' s" back into "it's"; the Rust decoder does not."""
    ids = minilm_tokenizer().encode("it's", add_special_tokens=False)
    assert hf_python().decode(ids) == "it's" == minilm_tokenizer().decode(ids)
    assert hf_fast().decode(ids) == "it ' s"


def test_split_special_tokens_python_half_splits():
    """split_special_tokens=True: Hugging Face's Python tokenizer stops cutting special tokens out of the
    raw text, but its BasicTokenizer keeps them in `never_split`, so a "[SEP]" between spaces stays the
    separator and only a glued one ("x[SEP]y") becomes text. The Rust tokenizer, like Google's
    FullTokenizer (which has no special tokens), reads every one as text; minibert follows them here:
    the setting exists for corpus text, where a half-split would still put separators in sentences."""
    from transformers.models.bert import BertTokenizerLegacy
    from minibert.tokenization import BertTokenizer

    text = "a [SEP] b x[SEP]y [mask]"
    python = BertTokenizerLegacy(str(minilm_path() / "vocab.txt"), split_special_tokens=True)
    assert python.tokenize(text) == ["a", "[SEP]", "b", "x", "[", "sep", "]", "y", "[", "mask", "]"]
    as_text = ["a", "[", "sep", "]", "b", "x", "[", "sep", "]", "y", "[", "mask", "]"]
    assert hf_fast(split_special_tokens=True).tokenize(text) == as_text
    assert BertTokenizer.from_pretrained(minilm_path(), split_special_tokens=True).tokenize(text) == as_text
    assert minilm_tokenizer().tokenize(text, split_special_tokens=True) == as_text


def _chunks(code_points, size):
    for start in range(0, len(code_points), size):
        yield code_points[start:start + size]


def _texts(code_points, size=64):
    """Each code point between letters and alone, `size` code points per text (words are
    independent once separated by spaces, so this is many small tests at once)."""
    return [" ".join(f"a{chr(cp)}b {chr(cp)}" for cp in chunk) for chunk in _chunks(code_points, size)]


def _code_points(last):
    return [cp for cp in range(last + 1) if not 0xD800 <= cp <= 0xDFFF]  # no surrogates


def test_every_basic_plane_character_matches_python():
    """U+0000-U+FFFF: minibert == the Python reference on every one (about 3 s)."""
    tok, python = minilm_tokenizer(), hf_python()
    texts = _texts(_code_points(0xFFFF))
    assert [tok.encode(t, add_special_tokens=False) for t in texts] == [
        python.convert_tokens_to_ids(python.tokenize(t)) for t in texts]


@pytest.mark.slow
def test_every_code_point():
    """All of Unicode: minibert == Python everywhere; Rust differs only on code points unassigned
    in Python's Unicode database and about 760 others (new or re-categorized since the Rust
    tables' Unicode version)."""
    tok, fast, python = minilm_tokenizer(), hf_fast(), hf_python()
    code_points = _code_points(0x10FFFF)
    texts = _texts(code_points)
    assert [tok.encode(t, add_special_tokens=False) for t in texts] == [
        python.convert_tokens_to_ids(python.tokenize(t)) for t in texts]

    fast_ids = fast(texts, add_special_tokens=False)["input_ids"]
    categories = Counter()
    for i, text in enumerate(texts):
        if tok.encode(text, add_special_tokens=False) == fast_ids[i]:
            continue
        for cp in code_points[i * 64:(i + 1) * 64]:
            if unicodedata.category(chr(cp)) == "Cn":
                categories["Cn"] += 1  # deleted by Python, kept by Rust: always differs
                continue
            one = f"a{chr(cp)}b {chr(cp)}"
            if tok.encode(one, add_special_tokens=False) != fast.encode(one, add_special_tokens=False):
                categories[unicodedata.category(chr(cp))] += 1
    assigned = sum(n for category, n in categories.items() if category != "Cn")
    print(f"Unicode {unicodedata.unidata_version}: Rust differs on {categories['Cn']} unassigned "
          f"code points and {assigned} assigned ones {dict(categories)}")
    assert assigned < 1000
