"""Bad input: each problem is a clear error naming it (or, for undecodable bytes, replacement)."""
from __future__ import annotations

import pytest

from minibert.tokenization import BertTokenizer, load_vocab
from minibert.tokenization.vocab_trainer import learn_vocab, train_vocab
from helpers import minilm_tokenizer, write
from reference import hf_python

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def test_missing_vocab_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocabulary file not found: .*nope.txt"):
        BertTokenizer(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError, match="no vocab.txt in the folder"):
        BertTokenizer(tmp_path)
    with pytest.raises(FileNotFoundError, match="no tokenizer folder or vocabulary file at"):
        BertTokenizer.from_pretrained(tmp_path / "missing")


def test_empty_vocab_file(tmp_path):
    with pytest.raises(ValueError, match="vocabulary file .*vocab.txt is empty"):
        BertTokenizer(write(tmp_path / "vocab.txt", ""))


def test_missing_special_tokens(tmp_path):
    path = write(tmp_path / "vocab.txt", "[PAD]\n[UNK]\nhello\n")
    with pytest.raises(ValueError, match=r"lacks the special token\(s\) \[SEP\], \[CLS\], \[MASK\]"):
        BertTokenizer(path)
    with pytest.raises(ValueError, match=r"lacks the special token\(s\) \[UNK\]"):
        BertTokenizer(["[PAD]", "[CLS]", "[SEP]", "[MASK]", "a"])


def test_duplicate_tokens_name_the_token_and_both_lines(tmp_path):
    path = write(tmp_path / "vocab.txt", "\n".join(SPECIALS + ["hello", "world", "hello"]) + "\n")
    with pytest.raises(ValueError, match=r"duplicate token 'hello' on lines 6 and 8"):
        BertTokenizer(path)
    with pytest.raises(ValueError, match="duplicate"):
        BertTokenizer(SPECIALS + ["x", "x"])


def test_empty_line_and_bad_encoding_in_vocab(tmp_path):
    with pytest.raises(ValueError, match="line 6 is empty"):
        load_vocab(write(tmp_path / "vocab.txt", "\n".join(SPECIALS) + "\n\nhello\n"))
    with pytest.raises(ValueError, match="not valid UTF-8"):
        load_vocab(write(tmp_path / "vocab.txt", "\n".join(SPECIALS).encode() + b"\n\xff\xfe\n"))


def test_windows_line_endings_are_fine(tmp_path):
    path = write(tmp_path / "vocab.txt", "\r\n".join(SPECIALS + ["hello"]) + "\r\n")
    assert load_vocab(path) == SPECIALS + ["hello"]


def test_bad_tokenizer_config(tmp_path):
    write(tmp_path / "vocab.txt", "\n".join(SPECIALS) + "\n")
    write(tmp_path / "tokenizer_config.json", "{not json")
    with pytest.raises(ValueError, match="tokenizer_config.json is not valid JSON"):
        BertTokenizer.from_pretrained(tmp_path)


def test_undecodable_bytes_are_replaced_then_dropped():
    """Bytes that are not UTF-8 decode (errors="replace") to U+FFFD, which cleaning deletes,
    as in the references: Google's tokenizer decodes with errors="ignore", to the same effect."""
    raw = b"caf\xe9 na\xefve \xff\xfeok"        # Latin-1 bytes, not UTF-8
    text = raw.decode("utf-8", errors="replace")
    assert text.count("\ufffd") == 4
    tok = minilm_tokenizer()
    assert tok.tokenize(text) == ["caf", "nave", "ok"] == hf_python().tokenize(text)
    assert tok.tokenize(text) == tok.tokenize(raw.decode("utf-8", errors="ignore"))


def test_bytes_and_other_types_are_refused_with_a_hint():
    tok = minilm_tokenizer()
    with pytest.raises(TypeError, match=r"decode it first.*errors='replace'"):
        tok(b"hello")
    with pytest.raises(TypeError, match="text must be a str .* got int"):
        tok(42)
    with pytest.raises(TypeError, match="got NoneType"):
        tok.tokenize(None)
    with pytest.raises(TypeError, match="got int"):
        tok(["ok", 3])


def test_bad_call_arguments():
    tok = minilm_tokenizer()
    with pytest.raises(ValueError, match="truncation must be True, False or one of"):
        tok("hi", truncation="sometimes")
    with pytest.raises(ValueError, match="padding must be True, False, 'longest' or 'max_length'"):
        tok("hi", padding="shortest")
    with pytest.raises(ValueError, match="max_length must be a non-negative integer"):
        tok("hi", max_length=-1)
    with pytest.raises(ValueError, match="max_length=2 leaves no room: 3 positions"):
        tok("a", "b", max_length=2)
    with pytest.raises(ValueError, match="only_second' cannot fit: the second text has 1 tokens"):
        tok("a b c d", "e", truncation="only_second", max_length=4)
    with pytest.raises(ValueError, match="return_tensors='pt' is not supported"):
        tok("hi", return_tensors="pt")
    with pytest.raises(ValueError, match="token id 30522 is outside the vocabulary"):
        tok.decode([101, 30522])
    with pytest.raises(ValueError, match="token id -1 is outside"):
        tok.convert_ids_to_tokens(-1)


def test_trainer_errors():
    with pytest.raises(ValueError, match="vocab_size=8 is too small: .* already make 9"):
        learn_vocab({"ab": 3}, vocab_size=8)   # 5 specials + a, b, ##a, ##b
    with pytest.raises(ValueError, match="no words to learn from"):
        train_vocab(["", "   ", "\x00"], vocab_size=100, show_progress=False)
