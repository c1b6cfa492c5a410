"""One very long corpus line through the whole pretraining data pipeline: time and peak memory.

    python benchmarks/bench_long_line.py [--sizes 0.6 1.25 2.5 5] [--seq 128] [--dupe 2]

The case of issue 14: a line of several MB with no `.`, `!` or `?` (a
scraped page, a log, a table flattened into text) is one sentence of a
million tokens. google-research/bert's `truncate_seq_pair` deletes from the
front of a Python list one token at a time, which moves everything after it:
quadratic, and such a line never finished two steps. minibert's is linear
(instances.py), as are the reader and the sentence splitter.

For each size (MB of UTF-8), in a fresh process, a corpus file holds the line
(the standard library's docstrings, every sentence end taken out, repeated up
to the size) and, after a blank line, a short second document. The pipeline
runs as `minibert pretrain` runs it, with all-MiniLM-L6-v2's vocabulary:

    read      read_plain_text (paragraphs, then split_sentences)
    tokenize  tokenize_documents (split_special_tokens on)
    instances create_instances (dupe_factor passes, masking, truncate_seq_pair)
    features  instances_to_features (padded NumPy arrays)

Printed per size: the tokens in the line, each stage's seconds, the total,
the peak memory of the pipeline (a second run under tracemalloc, which sees
every Python and NumPy allocation from reading the file to the features, the
tokenizer's word cache included: a fresh tokenizer each run), and on their
own: one truncate_seq_pair of the whole line's tokens down to seq - 3, and
split_sentences on a line of the same size *with* its sentence ends (the
other case of the splitter).
"""
from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SENTENCE_ENDS = re.compile(r"[.!?\u2026]")


def source_text() -> str:
    """About 1.3 MB of English prose every Python has: the standard library's docstrings."""
    from minibert.data.pretraining.stdlib_corpus import stdlib_documents
    return " ".join(sentence for document in stdlib_documents() for sentence in document)


def line_of(text: str, megabytes: float) -> str:
    """`text` repeated and cut at a word boundary to `megabytes` MB of UTF-8 (ASCII here: 1 byte a char)."""
    size = int(megabytes * 1_000_000)
    repeated = " ".join([text] * (size // len(text) + 1))
    return repeated[:repeated.rfind(" ", 0, size)]


def pipeline(corpus: Path, seq: int, dupe: int) -> tuple[dict, list, list]:
    """read -> tokenize -> instances -> features, as `minibert pretrain` does; (seconds per stage,
    documents, tokenized documents). A fresh tokenizer, so its word cache starts empty."""
    from minibert.data.pretraining import (create_instances, instances_to_features, read_plain_text,
                                           tokenize_documents, vocab_words_of)
    from minibert.model.pretrained import default_model_dir
    from minibert.tokenization import BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(default_model_dir())
    predictions = max(1, round(0.15 * seq))
    seconds = {}
    start = time.perf_counter()
    documents = read_plain_text(corpus)
    seconds["read"] = time.perf_counter() - start
    start = time.perf_counter()
    tokenized = tokenize_documents(documents, tokenizer, progress=False).documents
    seconds["tokenize"] = time.perf_counter() - start
    start = time.perf_counter()
    instances = create_instances(tokenized, vocab_words_of(tokenizer.vocab), max_seq_length=seq,
                                 dupe_factor=dupe, max_predictions_per_seq=predictions, seed=12345,
                                 progress=False)
    seconds["instances"] = time.perf_counter() - start
    start = time.perf_counter()
    instances_to_features(instances, tokenizer.vocab, seq, predictions)
    seconds["features"] = time.perf_counter() - start
    return seconds, documents, tokenized


def measure_one(source: Path, megabytes: float, seq: int, dupe: int) -> dict:
    """Everything for one size, in this (fresh) process."""
    from minibert.data.pretraining import split_sentences, truncate_seq_pair

    prose = line_of(source.read_text(encoding="utf-8"), megabytes)
    with tempfile.TemporaryDirectory() as folder:
        corpus = Path(folder) / "corpus.txt"
        corpus.write_text(SENTENCE_ENDS.sub("", prose) + "\n\nA short second document. It has two sentences.\n",
                          encoding="utf-8")
        result, documents, tokenized = pipeline(corpus, seq, dupe)
        del documents[:], tokenized[:]
        tracemalloc.start()
        _, documents, tokenized = pipeline(corpus, seq, dupe)
        result["peak_mb"] = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    result["megabytes"] = megabytes
    result["total"] = sum(result[k] for k in ("read", "tokenize", "instances", "features"))
    long_sentence = tokenized[0][0]
    result["tokens"] = len(long_sentence)
    result["sentences"] = len(documents[0])

    tokens = list(long_sentence)
    start = time.perf_counter()
    truncate_seq_pair(tokens, [], seq - 3, random.Random(0))
    result["truncate"] = time.perf_counter() - start
    start = time.perf_counter()
    result["prose_sentences"] = len(split_sentences(prose))
    result["split_prose"] = time.perf_counter() - start
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=float, nargs="+", default=[0.6, 1.25, 2.5, 5.0], help="line sizes in MB")
    ap.add_argument("--seq", type=int, default=128, help="max_seq_length (default 128)")
    ap.add_argument("--dupe", type=int, default=2, help="dupe_factor (default 2)")
    ap.add_argument("--one", type=float, help=argparse.SUPPRESS)        # internal: measure one size
    ap.add_argument("--source", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.one is not None:
        print(json.dumps(measure_one(Path(args.source), args.one, args.seq, args.dupe)))
        return 0

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "source.txt"
        source.write_text(source_text(), encoding="utf-8")
        print(f"one line without sentence ends through read, tokenize, instances (seq {args.seq}, "
              f"dupe_factor {args.dupe}), features; a fresh process per size\n")
        print(f"{'MB':>5} {'tokens':>9} {'read s':>7} {'tokenize s':>10} {'instances s':>11} {'features s':>10} "
              f"{'total s':>8} {'peak MB':>8} {'truncate s':>10} {'split prose s':>13}")
        for megabytes in args.sizes:
            done = subprocess.run([sys.executable, __file__, "--one", str(megabytes), "--source", str(source),
                                   "--seq", str(args.seq), "--dupe", str(args.dupe)],
                                  capture_output=True, text=True, cwd=REPO)
            if done.returncode != 0:
                sys.stderr.write(done.stderr)
                return done.returncode
            r = json.loads(done.stdout.strip().splitlines()[-1])
            assert r["sentences"] == 1, r       # no sentence end: one sentence, as intended
            print(f"{r['megabytes']:5.2f} {r['tokens']:9,d} {r['read']:7.2f} {r['tokenize']:10.2f} "
                  f"{r['instances']:11.3f} {r['features']:10.3f} {r['total']:8.2f} {r['peak_mb']:8.0f} "
                  f"{r['truncate']:10.3f} {r['split_prose']:13.2f}")
        print("\npeak MB: the pipeline's peak memory (tracemalloc, a second run); truncate s: one "
              "truncate_seq_pair of the whole line to seq - 3 tokens; split prose s: split_sentences on a "
              "line of the same size that keeps its sentence ends")
    return 0


if __name__ == "__main__":
    sys.exit(main())
