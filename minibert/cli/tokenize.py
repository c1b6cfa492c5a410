"""`python -m minibert tokenize` and `python -m minibert train-vocab`.

    $ echo "Hello world!" | python -m minibert tokenize           # the bundled all-MiniLM-L6-v2's vocabulary
    101 7592 2088 999 102
    $ echo "Hello world!" | python -m minibert tokenize --vocab path/to/vocab.txt --tokens
    [CLS] hello world ! [SEP]
    $ printf 'A question?\\tThe context.\\n' | python -m minibert tokenize --vocab DIR --pair
    101 1037 3160 1029 102 1996 6123 1012 102
    $ echo "x [SEP] y" | python -m minibert tokenize --tokens --split-special-tokens
    [CLS] x [ sep ] y [SEP]
    $ python -m minibert train-vocab --corpus books/*.txt --vocab-size 16000 --out my_vocab
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from minibert import checks
from minibert.cli.command import Command
from minibert.errors import InputError
from minibert.files import VOCABULARY, check_out_folder
from minibert.model.pretrained import default_model_dir
from minibert.tokenization.tokenizer import BertTokenizer
from minibert.tokenization.vocab_trainer import read_lines, train_vocab

__all__ = ["COMMANDS", "TokenizeArgs", "TrainVocabArgs", "run_tokenize", "run_train_vocab"]


class BadLineError(InputError):
    """A line of stdin that cannot be tokenized. Exit code 1: the lines before it were already printed."""

    exit_code = 1


@dataclass(kw_only=True)
class TokenizeArgs:
    vocab: str | None = field(default=None, metadata={
        "metavar": "DIR_OR_VOCAB_TXT",
        "help": "a folder with vocab.txt (and tokenizer_config.json), or a vocab.txt (default: the bundled "
                "all-MiniLM-L6-v2's, bert-base-uncased's 30,522 pieces)"})
    cased: bool = field(default=False, metadata={"help": "keep case and accents (for cased vocabularies)"})
    pair: bool = field(default=False, metadata={
        "help": "each line is two texts separated by a TAB: [CLS] A [SEP] B [SEP]"})
    tokens: bool = field(default=False, metadata={"help": "print tokens instead of ids"})
    max_length: int | None = field(default=None, metadata={
        "check": checks.at_least(2),
        "metavar": "N", "help": "truncate to N tokens, special tokens included (longest first for pairs)"})
    split_special_tokens: bool = field(default=False, metadata={
        "help": "read [CLS], [SEP], [MASK], [UNK], [PAD] written in the text as text ('[', 'sep', ']'), "
                "as pretraining reads its corpus (default: the tokenizer_config.json's setting, off for BERT: "
                "they are the special tokens)"})


def run_tokenize(args: TokenizeArgs) -> int:
    """Print each line of stdin as ids (or tokens), with [CLS]/[SEP]."""
    overrides = {"do_lower_case": False} if args.cased else {}
    tokenizer = BertTokenizer.from_pretrained(args.vocab or default_model_dir(), **overrides)
    out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
    for line_number, raw in enumerate(sys.stdin.buffer, start=1):
        # Undecodable bytes become U+FFFD, which cleaning deletes: the same
        # result as Google's tokenizer, which decodes with errors="ignore".
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if args.pair and "\t" not in line:
            raise BadLineError(f"line {line_number} has no TAB; with --pair each line must be 'text A<TAB>text B'")
        text, text_pair = line.split("\t", 1) if args.pair else (line, None)
        try:
            ids = tokenizer(text, text_pair, max_length=args.max_length, truncation=args.max_length is not None,
                            split_special_tokens=args.split_special_tokens or None)["input_ids"]
        except InputError as error:
            raise BadLineError(f"line {line_number}: {error}") from None
        fields = tokenizer.convert_ids_to_tokens(ids) if args.tokens else map(str, ids)
        text_out = " ".join(fields) + "\n"
        if out is not None:
            out.write(text_out.encode("utf-8"))
        else:
            sys.stdout.write(text_out)
    sys.stdout.flush()
    return 0


@dataclass(kw_only=True)
class TrainVocabArgs:
    corpus: list[str] = field(metadata={"nargs": "+", "metavar": "FILE", "help": "one or more UTF-8 text files"})
    vocab_size: int = field(metadata={
        "check": checks.positive,
        "metavar": "N", "help": "tokens in the vocabulary, special tokens included"})
    out: str = field(metadata={"metavar": "DIR", "help": "output folder (created; a folder of anything but a "
                                                         "vocabulary is refused)"})
    cased: bool = field(default=False, metadata={"help": "learn a cased vocabulary"})
    score: str = field(default="likelihood", metadata={
        "choices": ["likelihood", "frequency"],
        "help": "merge rule: WordPiece's likelihood score (default) or the most frequent pair "
                "(BPE-style; better for small corpora, see docs/tokenization.md)"})
    quiet: bool = field(default=False, metadata={"help": "no progress bars"})
    overwrite: bool = field(default=False, metadata={
        "help": "replace the vocabulary already in --out (it says so); without it, such a folder is refused"})


def run_train_vocab(args: TrainVocabArgs) -> int:
    """Learn the vocabulary, write vocab.txt and tokenizer_config.json, say how it went on stderr."""
    for path in args.corpus:
        if not Path(path).is_file():
            raise InputError(f"--corpus {path}: " + ("a folder: give the text files in it" if Path(path).is_dir()
                                                      else "no such file"))
    found = check_out_folder(args.out, VOCABULARY, inputs=[("--corpus", c) for c in args.corpus],
                             overwrite=args.overwrite)
    if args.overwrite and found.kind == VOCABULARY:
        print(f"--overwrite: replacing {found.words} in {args.out}", file=sys.stderr)
    start = time.perf_counter()
    result = train_vocab(read_lines(args.corpus), args.vocab_size, do_lower_case=not args.cased,
                         show_progress=not args.quiet, score=args.score)
    seconds = time.perf_counter() - start
    BertTokenizer(result.vocab, do_lower_case=not args.cased).save_pretrained(args.out)
    note = "" if len(result.vocab) == args.vocab_size else " (fewer: nothing was left to merge)"
    print(f"learned {len(result.vocab)} tokens{note} in {seconds:.1f} s; wrote {args.out}/vocab.txt",
          file=sys.stderr)
    return 0


COMMANDS = (
    Command("tokenize", "tokenize lines from stdin into BERT ids (or tokens)", TokenizeArgs, run_tokenize,
            description="Read lines from stdin; print each line's ids (or tokens), with [CLS]/[SEP].\n"
                        "Input bytes that are not UTF-8 become U+FFFD, which the tokenizer drops."),
    Command("train-vocab", "learn a WordPiece vocabulary from text files", TrainVocabArgs, run_train_vocab,
            description="Count the words of the corpus and learn a WordPiece vocabulary; write vocab.txt and\n"
                        "tokenizer_config.json to the output folder."),
)
