"""Command-line tools: `python -m minibert tokenize` and `python -m minibert train-vocab`.

    $ echo "Hello world!" | python -m minibert tokenize --vocab path/to/model_folder
    101 7592 2088 999 102
    $ echo "Hello world!" | python -m minibert tokenize --vocab path/to/vocab.txt --tokens
    [CLS] hello world ! [SEP]
    $ printf 'A question?\\tThe context.\\n' | python -m minibert tokenize --vocab DIR --pair
    101 1037 3160 1029 102 1996 6123 1012 102
    $ python -m minibert train-vocab --corpus books/*.txt --vocab-size 16000 --out my_vocab
"""
from __future__ import annotations

import argparse
import sys
import time

from minibert.tokenization.tokenizer import BertTokenizer
from minibert.tokenization.vocab_trainer import read_lines, train_vocab

__all__ = ["register", "run_tokenize", "run_train_vocab"]


def register(subparsers) -> None:
    """Add the `tokenize` and `train-vocab` sub-commands to minibert's CLI."""
    tok = subparsers.add_parser(
        "tokenize", help="tokenize lines from stdin into BERT ids (or tokens)",
        description="Read lines from stdin; print each line's ids (or tokens), with [CLS]/[SEP]. "
                    "Input bytes that are not UTF-8 become U+FFFD, which the tokenizer drops.")
    tok.add_argument("--vocab", required=True, metavar="DIR_OR_VOCAB_TXT",
                     help="a folder with vocab.txt (and tokenizer_config.json), or a vocab.txt")
    tok.add_argument("--cased", action="store_true",
                     help="keep case and accents (for cased vocabularies)")
    tok.add_argument("--pair", action="store_true",
                     help="each line is two texts separated by a TAB: [CLS] A [SEP] B [SEP]")
    tok.add_argument("--tokens", action="store_true", help="print tokens instead of ids")
    tok.add_argument("--max-length", type=int, default=None, metavar="N",
                     help="truncate to N tokens, special tokens included (longest first for pairs)")
    tok.set_defaults(func=run_tokenize)

    train = subparsers.add_parser(
        "train-vocab", help="learn a WordPiece vocabulary from text files",
        description="Count the words of the corpus and learn a WordPiece vocabulary; write "
                    "vocab.txt and tokenizer_config.json to the output folder.")
    train.add_argument("--corpus", required=True, nargs="+", metavar="FILE",
                       help="one or more UTF-8 text files")
    train.add_argument("--vocab-size", required=True, type=int, metavar="N")
    train.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    train.add_argument("--cased", action="store_true", help="learn a cased vocabulary")
    train.add_argument("--score", choices=["likelihood", "frequency"], default="likelihood",
                       help="merge rule: WordPiece's likelihood score (default) or the most frequent pair "
                            "(BPE-style; better for small corpora, see docs/tokenization.md)")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.set_defaults(func=run_train_vocab)


def run_tokenize(args) -> int:

    try:
        overrides = {"do_lower_case": False} if args.cased else {}
        tokenizer = BertTokenizer.from_pretrained(args.vocab, **overrides)
    except (OSError, ValueError) as error:
        print(f"minibert tokenize: {error}", file=sys.stderr)
        return 2
    out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
    for line_number, raw in enumerate(sys.stdin.buffer, start=1):
        # Undecodable bytes become U+FFFD, which cleaning deletes: the same
        # result as Google's tokenizer, which decodes with errors="ignore".
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if args.pair:
            if "\t" not in line:
                print(f"minibert tokenize: line {line_number} has no TAB; with --pair each line "
                      f"must be 'text A<TAB>text B'", file=sys.stderr)
                return 1
            text, text_pair = line.split("\t", 1)
        else:
            text, text_pair = line, None
        try:
            ids = tokenizer(text, text_pair, max_length=args.max_length,
                            truncation=args.max_length is not None)["input_ids"]
        except ValueError as error:
            print(f"minibert tokenize: line {line_number}: {error}", file=sys.stderr)
            return 1
        fields = tokenizer.convert_ids_to_tokens(ids) if args.tokens else map(str, ids)
        text_out = " ".join(fields) + "\n"
        if out is not None:
            out.write(text_out.encode("utf-8"))
        else:
            sys.stdout.write(text_out)
    sys.stdout.flush()
    return 0


def run_train_vocab(args) -> int:

    if args.vocab_size <= 0:
        print("minibert train-vocab: --vocab-size must be positive", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        result = train_vocab(read_lines(args.corpus), args.vocab_size, do_lower_case=not args.cased,
                             show_progress=not args.quiet, score=args.score)
    except (OSError, ValueError) as error:
        print(f"minibert train-vocab: {error}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    BertTokenizer(result.vocab, do_lower_case=not args.cased).save_pretrained(args.out)
    note = "" if len(result.vocab) == args.vocab_size else " (fewer: nothing was left to merge)"
    print(f"learned {len(result.vocab)} tokens{note} in {seconds:.1f} s; wrote {args.out}/vocab.txt",
          file=sys.stderr)
    return 0


if __name__ == "__main__":  # `python -m minibert.cli.tokenize ...` works too
    parser = argparse.ArgumentParser(prog="python -m minibert.cli.tokenize")
    register(parser.add_subparsers(dest="command", required=True))
    arguments = parser.parse_args()
    sys.exit(arguments.func(arguments))
