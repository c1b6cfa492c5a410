"""Property tests (hypothesis) on arbitrary Unicode text.

Texts are drawn from every Unicode category (controls, format characters,
combining marks, unassigned code points, CJK, emoji, ...) mixed with the
pieces that stress a BERT tokenizer: special tokens, runs of whitespace,
accents, very long words, empty strings. On all of them minibert must never
crash, give exactly the Python reference's ids, agree with the Rust reference
wherever the two references can agree, place [CLS]/[SEP] and segment ids
correctly, and respect max_length when truncating.
"""
from __future__ import annotations

import unicodedata

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from minibert.tokenization import BasicTokenizer, WordpieceTokenizer
from minibert.tokenization.basic import CleanTable, clean_text, space_out_cjk
from helpers import minilm_tokenizer
from reference import hf_fast, hf_python

FRAGMENTS = st.sampled_from([
    "[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", "[cls]", "[MASK", " ", "  ", "\t", "\n", "\r\n",
    "\u00a0", "\u3000", "\u200b", "\x00", "\ufffd", "\u0301", "e\u0301", "\u00e9", "İ", "ß", "ﬁ",
    "Σ", "ΟΔΟΣ", "中文", "日本語", "한국어", "😀", "👩‍👩‍👧", "🇫🇷", "don't", "U.S.A.", "#hashtag",
    "@user", "http://x.co/a?b=c", "...", "--", "—", "“quoted”", "‘single’", "£10", "x" * 99,
    "y" * 101, "ab" * 60, "unaffable", "##", "##ing",
])
TEXT = st.lists(st.one_of(st.text(max_size=12), FRAGMENTS,
                          st.text(st.characters(max_codepoint=0x2FFFF), max_size=6)),
                max_size=12).map("".join)
SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _references_agree_on(text: str) -> bool:
    """False where the two references are known to differ (see test_tokenization_disagreements)."""
    for char in text:
        category = unicodedata.category(char)
        if category == "Cn":
            return False  # unassigned: Python deletes, Rust keeps
        if unicodedata.ucd_3_2_0.category(char) != category:
            return False  # new or re-categorized since Unicode 3.2: the tables may differ
    return "Σ" not in text and not any(unicodedata.normalize("NFC", c) != c for c in text)


def _python_ids(text):
    python = hf_python()
    return python.convert_tokens_to_ids(python.tokenize(text))


@SETTINGS
@given(TEXT)
def test_matches_the_python_reference(text):
    assert minilm_tokenizer().encode(text, add_special_tokens=False) == _python_ids(text)


@SETTINGS
@given(TEXT)
def test_matches_the_rust_reference_where_the_references_agree(text):
    # A lone surrogate (U+D800..U+DFFF) is not text (no UTF-8 for it): the Rust tokenizer refuses it
    # with a TypeError; minibert's handling of it is covered by the properties above.
    assume(not any(0xD800 <= ord(c) <= 0xDFFF for c in text))
    assume(_references_agree_on(text))
    fast = hf_fast()
    mine = minilm_tokenizer()(text, return_offsets_mapping=True)
    theirs = fast(text, return_offsets_mapping=True)
    assert mine["input_ids"] == theirs["input_ids"]
    assert mine["offset_mapping"] == [tuple(span) for span in theirs["offset_mapping"]]


@SETTINGS
@given(TEXT)
def test_split_special_tokens_matches_the_rust_reference_where_the_references_agree(text):
    """split_special_tokens=True: every "[CLS]", "[SEP]", ... in the text is text, as in Hugging Face's
    BertTokenizer(split_special_tokens=True); no special id but [UNK] comes out of text."""
    assume(not any(0xD800 <= ord(c) <= 0xDFFF for c in text))
    assume(_references_agree_on(text))
    mine = minilm_tokenizer()(text, return_offsets_mapping=True, split_special_tokens=True)
    theirs = hf_fast(split_special_tokens=True)(text, return_offsets_mapping=True)
    assert mine["input_ids"] == theirs["input_ids"]
    assert mine["offset_mapping"] == [tuple(span) for span in theirs["offset_mapping"]]
    tok = minilm_tokenizer()
    assert not set(mine["input_ids"][1:-1]) & (set(tok.all_special_ids) - {tok.unk_token_id})


@SETTINGS
@given(TEXT, TEXT, st.integers(min_value=3, max_value=40))
def test_pair_structure_and_max_length(a, b, max_length):
    tok = minilm_tokenizer()
    enc = tok(a, b, truncation=True, max_length=max_length, return_offsets_mapping=True)
    ids, types = enc["input_ids"], enc["token_type_ids"]
    assert len(ids) <= max_length
    assert len(types) == len(ids) == len(enc["attention_mask"]) == len(enc["offset_mapping"])
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    first_sep = types.index(1) - 1 if 1 in types else len(ids) - 2
    assert ids[first_sep] == tok.sep_token_id
    assert types == [0] * (first_sep + 1) + [1] * (len(ids) - first_sep - 1)
    assert set(enc["attention_mask"]) == {1}
    # The same as the Python reference (which assembles pairs like Google's truncate_seq_pair).
    python = hf_python()
    assert ids == python.prepare_for_model(_python_ids(a), _python_ids(b), truncation=True,
                                           max_length=max_length)["input_ids"]


@SETTINGS
@given(TEXT, st.integers(min_value=2, max_value=30))
def test_single_structure_and_max_length(text, max_length):
    tok = minilm_tokenizer()
    ids = tok(text, truncation=True, max_length=max_length)["input_ids"]
    assert len(ids) <= max_length and ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert tok.sep_token_id not in ids[1:-1] or "[SEP]" in text
    full = tok(text)["input_ids"]
    assert ids[:-1] == full[:len(ids) - 1]  # truncation cuts the end, nothing else


@SETTINGS
@given(TEXT)
def test_offsets_point_into_the_text(text):
    tok = minilm_tokenizer()
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    previous_start = 0
    for token_id, (start, end) in zip(enc["input_ids"], enc["offset_mapping"]):
        assert 0 <= start < end <= len(text)
        assert start >= previous_start
        previous_start = start
        if token_id in tok.all_special_ids and token_id != tok.unk_token_id:
            assert text[start:end] == tok.ids_to_tokens[token_id]


@SETTINGS
@given(TEXT)
def test_fast_path_equals_readable_path(text):
    """The cached, fused path in BertTokenizer == BasicTokenizer + WordpieceTokenizer step by step."""
    tok = minilm_tokenizer()
    basic = BasicTokenizer(do_lower_case=True, never_split=tok.all_special_tokens)
    wordpiece = WordpieceTokenizer(tok.vocab, unk_token="[UNK]", max_input_chars_per_word=100)
    expected = []
    for start, end, is_special in tok._split_on_special_tokens(text):
        if is_special:
            expected.append(text[start:end])
        else:
            for word in basic.tokenize(text[start:end]):
                expected += wordpiece.tokenize(word)
    assert tok.tokenize(text) == expected
    # split_special_tokens: the whole text is text, and no word is kept whole as a special token
    words = BasicTokenizer(do_lower_case=True, never_split=()).tokenize(text)
    assert tok.tokenize(text, split_special_tokens=True) == [p for word in words for p in wordpiece.tokenize(word)]
    assert text.translate(CleanTable(True)) == space_out_cjk(clean_text(text))
    assert text.translate(CleanTable(False)) == clean_text(text)


@SETTINGS
@given(TEXT)
def test_decode_glues_pieces_back_into_words(text):
    tok = minilm_tokenizer()
    ids = tok.encode(text, add_special_tokens=False)
    if tok.unk_token_id in ids or any(t in text for t in tok.all_special_tokens):
        return
    words = BasicTokenizer(do_lower_case=True).tokenize(text)
    assert tok.decode(ids, clean_up_tokenization_spaces=False) == " ".join(words)
    assert tok.decode(tok.encode(text), skip_special_tokens=True) == hf_python().decode(
        tok.encode(text), skip_special_tokens=True)


@SETTINGS
@given(st.lists(TEXT, min_size=1, max_size=5), st.sampled_from([True, "longest", "max_length"]))
def test_batch_padding(texts, padding):
    tok = minilm_tokenizer()
    enc = tok(texts, padding=padding, truncation=True, max_length=24, return_offsets_mapping=True)
    lengths = {len(row) for key in enc for row in enc[key]}
    assert len(lengths) == 1
    width = lengths.pop()
    assert width == 24 if padding == "max_length" else width == max(
        len(tok(t, truncation=True, max_length=24)["input_ids"]) for t in texts)
    for text, ids, mask in zip(texts, enc["input_ids"], enc["attention_mask"]):
        alone = tok(text, truncation=True, max_length=24)["input_ids"]
        assert ids == alone + [tok.pad_token_id] * (width - len(alone))
        assert mask == [1] * len(alone) + [0] * (width - len(alone))
