"""The tokenizer's pieces one at a time, with small hand-checked examples, and its API."""
from __future__ import annotations

import doctest
import json

import numpy as np
import pytest

import minibert.tokenization as tokenization
from minibert.tokenization import BasicTokenizer, BertTokenizer, WordpieceTokenizer
from minibert.tokenization import basic, chars, encoding, tokenizer, vocab, vocab_trainer, wordpiece
from minibert.tokenization.basic import clean_text, space_out_cjk, split_on_punctuation, strip_accents
from minibert.tokenization.encoding import truncate, truncate_seq_pair
from minibert.tokenization.vocab import VocabularyError
from helpers import minilm_path, minilm_tokenizer
from reference import hf_fast, hf_python

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.mark.parametrize("module", [chars, basic, wordpiece, vocab, encoding, tokenizer,
                                    vocab_trainer, tokenization])
def test_docstring_examples(module):
    """Every `>>>` example in the docstrings is true (with `tok` the MiniLM tokenizer)."""
    result = doctest.testmod(module, extraglobs={"tok": minilm_tokenizer()},
                             optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


# -- basic tokenization -------------------------------------------------------------

def test_clean_text():
    assert clean_text("a\x00b\ufffdc\x07d\u200be\u00adf") == "abcdef"   # NUL, U+FFFD, Cc, Cf
    assert clean_text("a\tb\nc\rd\u00a0e\u3000f") == "a b c d e f"      # whitespace -> " "
    assert clean_text("a\ue000b\U000e0001c\u0378d") == "abcd"         # Co, Cf, Cn (HF: all C*)


def test_cjk_characters_become_words():
    assert space_out_cjk("中文ok") == " 中  文 ok"
    assert BasicTokenizer().tokenize("我爱NLP") == ["我", "爱", "nlp"]
    assert BasicTokenizer(tokenize_chinese_chars=False).tokenize("我爱NLP") == ["我爱nlp"]
    assert BasicTokenizer(do_lower_case=False).tokenize("ひらがな한국어") == ["ひらがな한국어"]  # not ideographs
    # Uncased, NFD takes the voicing mark (U+3099, a combining mark) off "が", like an accent,
    # and leaves Hangul syllables decomposed into their letters (jamo), as the references do.
    assert BasicTokenizer().tokenize("が한") == ["か\u1112\u1161\u11ab"]


def test_lower_case_and_accents():
    assert strip_accents("Ångström café") == "Angstrom cafe"
    assert BasicTokenizer(do_lower_case=True).tokenize("Héllo WÖRLD") == ["hello", "world"]
    assert BasicTokenizer(do_lower_case=False).tokenize("Héllo WÖRLD") == ["Héllo", "WÖRLD"]
    assert BasicTokenizer(do_lower_case=True, strip_accents=False).tokenize("Héllo") == ["héllo"]
    assert BasicTokenizer(do_lower_case=False, strip_accents=True).tokenize("Héllo") == ["Hello"]


def test_punctuation():
    assert split_on_punctuation("$5,000.00!") == ["$", "5", ",", "000", ".", "00", "!"]
    assert split_on_punctuation("a^b`c~d|e<f") == list("a^b`c~d|e<f")  # ASCII symbols count
    assert split_on_punctuation("£5©") == ["£5©"]                        # non-ASCII symbols do not
    assert split_on_punctuation("“Hi”—") == ["“", "Hi", "”", "—"]        # Unicode punctuation does


def test_special_tokens_are_never_split():
    tok = minilm_tokenizer()
    assert tok.tokenize("[CLS]x[SEP]y [MASK]. [cls]") == [
        "[CLS]", "x", "[SEP]", "y", "[MASK]", ".", "[", "cl", "##s", "]"]
    assert tok("[MASK]")["input_ids"] == [101, 103, 102]


# -- WordPiece ----------------------------------------------------------------------

def test_wordpiece_greedy_longest_match_first():
    vocab_ = {t: i for i, t in enumerate(SPECIALS + ["un", "unaff", "##aff", "##able", "a", "##b"])}
    wp = WordpieceTokenizer(vocab_)
    assert wp.tokenize("unaffable") == ["unaff", "##able"]      # the longest first piece wins
    assert wp.tokenize("unable") == ["un", "##able"]
    assert wp.tokenize("unafx") == ["[UNK]"]                      # one miss: the whole word
    assert wp.tokenize("ab ab") == ["a", "##b", "a", "##b"]


def test_wordpiece_word_length_limit():
    vocab_ = {t: i for i, t in enumerate(SPECIALS + ["a", "##a"])}
    assert WordpieceTokenizer(vocab_).tokenize("a" * 100) == ["a"] + ["##a"] * 99
    assert WordpieceTokenizer(vocab_).tokenize("a" * 101) == ["[UNK]"]
    assert WordpieceTokenizer(vocab_, max_input_chars_per_word=200).tokenize("a" * 101)[0] == "a"
    tok = minilm_tokenizer()
    assert tok.tokenize("x" * 101 + " " + "x" * 100)[0] == "[UNK]"
    assert tok.tokenize("x" * 101) == hf_python().tokenize("x" * 101) == hf_fast().tokenize("x" * 101)


# -- truncation, special tokens, padding ----------------------------------------------

def test_truncate_seq_pair_is_googles():
    assert truncate_seq_pair([1, 2, 3, 4, 5], [6, 7], 4) == ([1, 2], [6, 7])
    assert truncate_seq_pair([1, 2], [3, 4, 5, 6, 7], 4) == ([1, 2], [3, 4])
    assert truncate_seq_pair([1, 2, 3], [4, 5, 6], 3) == ([1, 2], [4])   # tie: B loses first


def test_truncation_strategies():
    assert truncate([1, 2, 3], [4, 5, 6], 4, "only_first") == ([1], [4, 5, 6])
    assert truncate([1, 2, 3], [4, 5, 6], 4, "only_second") == ([1, 2, 3], [4])
    assert truncate([1, 2, 3], None, 2, "longest_first") == ([1, 2], None)
    tok = minilm_tokenizer()
    a, b = "one two three four", "five six seven"
    for strategy in ("longest_first", "only_first", "only_second"):
        ours = tok(a, b, truncation=strategy, max_length=8)
        assert ours["input_ids"] == hf_fast()(a, b, truncation=strategy, max_length=8)["input_ids"]
        assert len(ours["input_ids"]) == 8


def test_hugging_face_defaults():
    tok, fast = minilm_tokenizer(), hf_fast()
    text = "a b c d e f"
    # A max_length alone means truncation (HF's backward-compatible default).
    assert tok(text, max_length=4)["input_ids"] == fast(text, max_length=4)["input_ids"] == [
        101, 1037, 1038, 102]
    # truncation=True without max_length: the model's maximum (512).
    assert len(tok("a " * 600, truncation=True)["input_ids"]) == 512 == tok.model_max_length
    assert len(tok("a " * 600)["input_ids"]) == 602                        # no truncation asked
    assert tok(text, padding="max_length", max_length=10) == fast(
        text, padding="max_length", max_length=10)
    assert tok("hi", text_pair="there") == fast("hi", text_pair="there")
    assert tok("hi", add_special_tokens=False) == fast("hi", add_special_tokens=False)


def test_batch_and_numpy():
    tok = minilm_tokenizer()
    out = tok(["a b c", "d"], ["x", "y z"], padding=True, return_tensors="np")
    assert out["input_ids"].dtype == np.int64 and out["input_ids"].shape == (2, 7)
    assert out["token_type_ids"].tolist() == [[0, 0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1, 0]]
    assert out["attention_mask"].tolist() == [[1] * 7, [1] * 6 + [0]]
    assert set(tok(["x"], return_token_type_ids=False, return_attention_mask=False)) == {"input_ids"}
    with pytest.raises(ValueError, match="padding=True"):
        tok(["a b c", "d"], return_tensors="np")
    with pytest.raises(ValueError, match="same length"):
        tok(["a", "b"], ["c"])


def test_offsets_for_question_answering():
    tok = minilm_tokenizer()
    context = "The Normans (French: Normands) gave their name to Normandy."
    enc = tok("Who?", context, return_offsets_mapping=True)
    second = [i for i, t in enumerate(enc["token_type_ids"]) if t == 1][:-1]
    spans = [context[s:e] for s, e in (enc["offset_mapping"][i] for i in second)]
    assert spans[:4] == ["The", "Norman", "s", "("]
    assert enc["offset_mapping"][0] == (0, 0) and enc["offset_mapping"][-1] == (0, 0)


def test_offsets_through_deleted_and_inserted_characters():
    tok = minilm_tokenizer()
    text = "x\x00y 中文 Éé\u200b!"
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    assert [text[s:e] for s, e in enc["offset_mapping"]] == ["x", "y", "中", "文", "Éé", "!"]
    assert enc["offset_mapping"] == [tuple(o) for o in hf_fast()(
        text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]]


# -- ids and text ----------------------------------------------------------------------

def test_vocabulary_and_special_ids():
    tok = minilm_tokenizer()
    assert len(tok) == tok.vocab_size == 30522
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id,
            tok.mask_token_id) == (0, 100, 101, 102, 103)
    assert tok.vocab["hello"] == 7592 and tok.ids_to_tokens[7592] == "hello"
    assert tok.convert_tokens_to_ids(["hello", "not-a-token"]) == [7592, 100]
    assert tok.convert_tokens_to_ids("hello") == 7592
    assert tok.convert_ids_to_tokens(np.array([101, 7592])) == ["[CLS]", "hello"]
    assert tok.convert_ids_to_tokens(np.int64(7592)) == "hello"
    assert tok.get_vocab() == hf_fast().get_vocab()


def test_decode():
    tok, python = minilm_tokenizer(), hf_python()
    ids = tok.encode("Hello, world! Isn't un-affable tokenization fun?", "Yes [MASK].")
    for skip in (False, True):
        assert tok.decode(ids, skip_special_tokens=skip) == python.decode(ids, skip_special_tokens=skip)
    assert tok.decode(ids, skip_special_tokens=True) == "hello, world! isn't un - affable tokenization fun? yes."
    assert tok.decode([7592, 2088], clean_up_tokenization_spaces=False) == "hello world"
    assert tok.batch_decode([[7592], [2088]]) == ["hello", "world"]


# -- loading and saving -------------------------------------------------------------------

def test_loads_folder_or_vocab_file():
    folder = minilm_path()
    a = BertTokenizer.from_pretrained(folder)
    b = BertTokenizer.from_pretrained(folder / "vocab.txt")
    c = BertTokenizer(folder / "vocab.txt")
    d = BertTokenizer(str(folder))
    text = "Ünïcode and CASE"
    assert a.tokenize(text) == b.tokenize(text) == c.tokenize(text) == d.tokenize(text)
    assert BertTokenizer.from_pretrained(folder, do_lower_case=False).tokenize("Hi") == ["[UNK]"]
    e = BertTokenizer(a.get_vocab())                     # a dict token -> id, too
    assert e.ids_to_tokens == a.ids_to_tokens
    with pytest.raises(ValueError, match="ids 0, 1, ..., n-1"):
        BertTokenizer({t: i * 2 for i, t in enumerate(SPECIALS)})


def test_save_pretrained_round_trip_and_hugging_face_reads_it(tmp_path):
    import transformers
    tok = BertTokenizer(SPECIALS + ["hello", "world", "##s", "!"], do_lower_case=False,
                        model_max_length=64)
    paths = tok.save_pretrained(tmp_path)
    assert {p.rsplit("/", 1)[-1] for p in paths} == {
        "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"}
    assert (tmp_path / "vocab.txt").read_text(encoding="utf-8").split("\n")[:6] == SPECIALS + ["hello"]
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["do_lower_case"] is False and config["model_max_length"] == 64
    again = BertTokenizer.from_pretrained(tmp_path)
    assert again.do_lower_case is False and again.model_max_length == 64
    assert again.ids_to_tokens == tok.ids_to_tokens
    theirs = transformers.BertTokenizer.from_pretrained(str(tmp_path))
    for text in ("hello worlds!", "Hello worlds!", "[MASK] hello"):
        assert theirs(text)["input_ids"] == tok(text)["input_ids"] == again(text)["input_ids"]


def test_split_special_tokens_setting_is_saved_loaded_and_overridable(tmp_path):
    """As in Hugging Face: a constructor argument, written to tokenizer_config.json, read back (by
    Hugging Face too), overridden per call (None keeps the tokenizer's own setting)."""
    import transformers
    words = SPECIALS + ["[", "]", "sep", "mask", "a"]
    default, split = BertTokenizer(words), BertTokenizer(words, split_special_tokens=True)
    assert default.tokenize("a [SEP] [MASK]") == ["a", "[SEP]", "[MASK]"]
    assert split.tokenize("a [SEP] [MASK]") == ["a", "[", "sep", "]", "[", "mask", "]"]
    assert default.tokenize("a [SEP]", split_special_tokens=True) == split.tokenize("a [SEP]")
    assert split.tokenize("a [SEP]", split_special_tokens=False) == default.tokenize("a [SEP]")
    assert split.tokenize("a [SEP]", split_special_tokens=None) == ["a", "[", "sep", "]"]
    assert split.encode("[SEP]") == [2, 5, 7, 6, 3] and default.encode("[SEP]") == [2, 3, 3]
    assert split("a", "[MASK]")["input_ids"] == [2, 9, 3, 5, 8, 6, 3]
    assert split(["[PAD]"], split_special_tokens=False)["input_ids"] == [[2, 0, 3]]
    assert "split_special_tokens=True" in repr(split) and "split" not in repr(default)
    with pytest.raises(TypeError, match="split_special_tokens must be True, False or None"):
        default.tokenize("a", split_special_tokens="yes")
    with pytest.raises(TypeError, match="split_special_tokens must be True or False"):
        BertTokenizer(words, split_special_tokens="false")

    split.save_pretrained(tmp_path / "split")
    default.save_pretrained(tmp_path / "default")
    assert json.loads((tmp_path / "split" / "tokenizer_config.json").read_text())["split_special_tokens"] is True
    assert json.loads((tmp_path / "default" / "tokenizer_config.json").read_text())["split_special_tokens"] is False
    assert BertTokenizer.from_pretrained(tmp_path / "split").split_special_tokens is True
    assert BertTokenizer.from_pretrained(tmp_path / "default").split_special_tokens is False
    assert BertTokenizer.from_pretrained(tmp_path / "default", split_special_tokens=True).split_special_tokens
    for name, expected in (("split", True), ("default", False)):
        theirs = transformers.BertTokenizer.from_pretrained(str(tmp_path / name))
        assert theirs.split_special_tokens is expected
        assert theirs("a [SEP] b[MASK]")["input_ids"] == BertTokenizer.from_pretrained(
            tmp_path / name)("a [SEP] b[MASK]")["input_ids"]
    config = tmp_path / "split" / "tokenizer_config.json"
    config.write_text(config.read_text().replace('"split_special_tokens": true', '"split_special_tokens": "no"'))
    with pytest.raises(VocabularyError, match="tokenizer_config.json: split_special_tokens must be true or false"):
        BertTokenizer.from_pretrained(tmp_path / "split")


def test_word_cache_is_bounded(monkeypatch):
    tok = BertTokenizer(SPECIALS + ["a", "##a", "b"])
    monkeypatch.setattr(tokenizer, "WORD_CACHE_SIZE", 3)
    for word in ["a", "aa", "aaa", "b", "ab"]:
        for split in (False, True):                         # one cache for each reading of "[SEP]"
            tok.tokenize(word, split_special_tokens=split)
            assert len(tok._word_caches[split]) <= 3
    assert tok.tokenize("a aa aaa b ab") == ["a", "a", "##a", "a", "##a", "##a", "b", "[UNK]"]
