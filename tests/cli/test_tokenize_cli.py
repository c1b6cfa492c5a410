"""`python -m minibert tokenize` and `python -m minibert train-vocab`, run as subprocesses."""
from __future__ import annotations

import subprocess
import sys

from helpers import REPO, minilm_path, minilm_tokenizer


def run(*args, stdin: bytes = b""):
    return subprocess.run([sys.executable, "-m", "minibert", *args], input=stdin, cwd=REPO,
                          capture_output=True, timeout=120)


def test_tokenize_ids_and_tokens():
    lines = ["Hello world!", "", "Tokenizers aren't magic — café 中文 😀", "  [MASK] me  "]
    stdin = ("\n".join(lines) + "\n").encode("utf-8")
    tok = minilm_tokenizer()
    done = run("tokenize", "--vocab", str(minilm_path()), stdin=stdin)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode("utf-8").splitlines() == [
        " ".join(map(str, tok(line)["input_ids"])) for line in lines]
    done = run("tokenize", "--vocab", str(minilm_path() / "vocab.txt"), "--tokens", stdin=stdin)
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode("utf-8").splitlines()
    assert out[0] == "[CLS] hello world ! [SEP]" and out[1] == "[CLS] [SEP]"
    assert out[3] == "[CLS] [MASK] me [SEP]"
    done = run("tokenize", "--tokens", stdin=stdin)                   # no --vocab: the bundled model's
    assert done.returncode == 0 and done.stdout.decode("utf-8").splitlines() == out, done.stderr


def test_tokenize_pairs_cased_and_max_length():
    stdin = "A question?\tThe context, which is long.\nx\ty\n".encode("utf-8")
    done = run("tokenize", "--vocab", str(minilm_path()), "--pair", "--tokens", stdin=stdin)
    assert done.stdout.decode().splitlines() == [
        "[CLS] a question ? [SEP] the context , which is long . [SEP]", "[CLS] x [SEP] y [SEP]"]
    done = run("tokenize", "--vocab", str(minilm_path()), "--pair", "--max-length", "8", stdin=stdin)
    first = done.stdout.decode().splitlines()[0].split()
    tok = minilm_tokenizer()
    assert first == [str(i) for i in tok("A question?", "The context, which is long.",
                                         truncation=True, max_length=8)["input_ids"]]
    done = run("tokenize", "--vocab", str(minilm_path()), "--cased", "--tokens",
               stdin=b"Hello hello\n")
    assert done.stdout.decode().strip() == "[CLS] [UNK] hello [SEP]"   # uncased vocab, cased mode


def test_tokenize_split_special_tokens(tmp_path):
    """--split-special-tokens: "[SEP]" written in a line is text; without it, the tokenizer's own setting."""
    stdin = b"x [SEP] y[MASK]\n"
    plain = run("tokenize", "--vocab", str(minilm_path()), "--tokens", stdin=stdin)
    split = run("tokenize", "--vocab", str(minilm_path()), "--tokens", "--split-special-tokens", stdin=stdin)
    assert plain.returncode == split.returncode == 0, (plain.stderr, split.stderr)
    assert plain.stdout.decode().strip() == "[CLS] x [SEP] y [MASK] [SEP]"
    assert split.stdout.decode().strip() == "[CLS] x [ sep ] y [ mask ] [SEP]"
    ids = run("tokenize", "--vocab", str(minilm_path()), "--split-special-tokens", stdin=stdin)
    assert ids.stdout.decode().split() == [str(i) for i in minilm_tokenizer()(
        "x [SEP] y[MASK]", split_special_tokens=True)["input_ids"]]
    from minibert.tokenization import BertTokenizer
    BertTokenizer.from_pretrained(minilm_path(), split_special_tokens=True).save_pretrained(tmp_path)
    saved = run("tokenize", "--vocab", str(tmp_path), "--tokens", stdin=stdin)     # its config says split
    assert saved.stdout == split.stdout, saved.stderr


def test_tokenize_replaces_undecodable_bytes():
    done = run("tokenize", "--vocab", str(minilm_path()), "--tokens", stdin=b"caf\xe9 ok\xff\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == "[CLS] caf ok [SEP]"


def test_tokenize_errors():
    done = run("tokenize", "--vocab", str(minilm_path()), "--pair", stdin=b"a\tb\nno tab here\n")
    assert done.returncode == 1
    assert b"line 2 has no TAB" in done.stderr
    assert done.stdout.decode().splitlines() == ["101 1037 102 1038 102"]
    done = run("tokenize", "--vocab", str(REPO / "no-such-vocab.txt"), stdin=b"x\n")
    assert done.returncode == 2 and b"no tokenizer folder or vocabulary file at" in done.stderr
    done = run("tokenize", "--vocab", str(minilm_path()), "--pair", "--max-length", "2",
               stdin=b"a\tb\n")
    assert done.returncode == 1 and b"max_length=2 leaves no room" in done.stderr


def test_train_vocab(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat\nthe dog sat on the log\n" * 20, encoding="utf-8")
    # 5 special tokens + 12 letters, each alone and with ##, = 29; then 6 merges.
    done = run("train-vocab", "--corpus", str(corpus), "--vocab-size", "35", "--out",
               str(tmp_path / "out"), "--quiet")
    assert done.returncode == 0, done.stderr
    assert b"learned 35 tokens in" in done.stderr
    vocab = (tmp_path / "out" / "vocab.txt").read_text(encoding="utf-8").split("\n")
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and vocab[-1] == ""
    assert len(vocab) == 36
    tokenized = run("tokenize", "--vocab", str(tmp_path / "out"), "--tokens", stdin=b"The cat.\n")
    assert tokenized.stdout.decode().strip().startswith("[CLS] ")


def test_train_vocab_errors(tmp_path):
    done = run("train-vocab", "--corpus", str(tmp_path / "missing.txt"), "--vocab-size", "40",
               "--out", str(tmp_path / "out"), "--quiet")
    assert done.returncode == 2 and b"missing.txt" in done.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    done = run("train-vocab", "--corpus", str(empty), "--vocab-size", "40", "--out",
               str(tmp_path / "out"), "--quiet")
    assert done.returncode == 2 and b"no words to learn from" in done.stderr
