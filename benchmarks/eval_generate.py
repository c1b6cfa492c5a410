"""Generation by masked sampling against a bigram sampler, and real held-out text as the reference point
(docs/generation.md).

    OPENBLAS_NUM_THREADS=1 MINIBERT_THREADS=1 python benchmarks/eval_generate.py \
        --model runs/gutenberg-mini --samples 20 --length 24 --iterations 5

Sets of --samples texts each:
    masked sampling   --length pieces from all [MASK]s, --iterations sweeps; several settings (SETTINGS)
    bigram sampler    word bigrams counted on the training text (apps/ngrams.py), as many tokens as the
                      masked samples have on average, from a sentence start
    held-out text     windows of the held-out books of that many tokens, each from a sentence start
Figures per set (words = the basic tokenizer's tokens that are letters only, apps/ngrams.py is_word):
    PPPL              the model's pseudo-perplexity of the set (every text re-tokenized from its string)
    in held-out vocab the share of the set's words that occur in the held-out books
    JS to held-out    Jensen-Shannon divergence (bits) between the set's word distribution and the held-out
                      books' (a distribution-level figure: 0 = same distribution, 1 = disjoint; it grows
                      as a set gets smaller, so compare sets of the same size only)
    distinct words    distinct words / words in the set (distinct-1)
Prints the table and three samples of each set, writes JSON to --out.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy

from minibert.apps.fill_mask import load_pretraining_model
from minibert.apps.generate import generate, pseudo_perplexity
from minibert.apps.ngrams import NgramCounts, is_word, split_words

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_complete import documents  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# (name, generate() options): the settings of masked sampling compared
SETTINGS = [
    ("masked, random order, T=1", {"order": "random"}),
    ("masked, random order, T=1, top-k 50 after 1 sweep", {"order": "random", "top_k": 50, "burn_in": 1}),
    ("masked, left-to-right, T=1", {"order": "left-to-right"}),
    ("masked, left-to-right, T=0.7, top-k 50", {"order": "left-to-right", "temperature": 0.7, "top_k": 50}),
]


def detok(tokens) -> str:
    """Basic-tokenizer tokens -> a readable string (spaces before punctuation dropped)."""
    text = " ".join(tokens)
    for mark in (".", ",", ";", ":", "!", "?"):
        text = text.replace(" " + mark, mark)
    return text


def heldout_windows(docs, n_texts, n_tokens, rng):
    """n_texts windows of n_tokens tokens of held-out text, each starting at a random sentence start."""
    streams = []
    for d in docs:
        tokens, starts = [], []
        for s in d:
            starts.append(len(tokens))
            tokens += split_words(s)
        streams.append((tokens, [i for i in starts if i + n_tokens <= len(tokens)]))
    choices = [(d, i) for d, (_, starts) in enumerate(streams) for i in starts]
    picked = rng.choice(len(choices), size=n_texts, replace=False)
    return [detok(streams[choices[p][0]][0][choices[p][1]:choices[p][1] + n_tokens]) for p in picked]


def js_bits(a: Counter, b: Counter) -> float:
    """Jensen-Shannon divergence, in bits, between two word-count distributions."""
    words = sorted(set(a) | set(b))
    p = numpy.array([a.get(w, 0) for w in words], float)
    q = numpy.array([b.get(w, 0) for w in words], float)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(x):
        nz = x > 0
        return float((x[nz] * numpy.log2(x[nz] / m[nz])).sum())
    return (kl(p) + kl(q)) / 2


def figures(model, tok, texts, held_counts: Counter) -> dict:
    words = [w for t in texts for w in split_words(t) if is_word(w)]
    counts = Counter(words)
    return {"pppl": pseudo_perplexity(model, tok, texts),
            "in_heldout_vocab": sum(w in held_counts for w in words) / max(len(words), 1),
            "js_to_heldout_bits": js_bits(counts, held_counts),
            "distinct_words": len(counts) / max(len(words), 1),
            "words": len(words), "tokens_per_text": float(numpy.mean([len(split_words(t)) for t in texts]))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a `minibert pretrain` run folder")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "gutenberg"))
    parser.add_argument("--train", help="a training corpus file instead of --data (with --heldout)")
    parser.add_argument("--heldout", help="a held-out corpus file (with --train)")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--length", type=int, default=24, help="pieces per masked sample")
    parser.add_argument("--iterations", type=int, default=5, help="sweeps of masked sampling")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "text" / "generate.json"))
    args = parser.parse_args(argv)
    wall = time.perf_counter()
    model, tok = load_pretraining_model(args.model)
    train, held = documents(args)                   # eval_complete's: the same books, split the same way
    counts = NgramCounts.from_documents(train)
    held_counts = Counter(w for d in held for s in d for w in split_words(s) if is_word(w))
    sets, seconds = {}, {}
    for name, options in SETTINGS:
        t = time.perf_counter()
        sets[name] = generate(model, tok, length=args.length, samples=args.samples, iterations=args.iterations,
                              seed=args.seed, **options).texts
        seconds[name] = time.perf_counter() - t
    n_tokens = int(round(numpy.mean([len(split_words(t)) for t in sets[SETTINGS[0][0]]])))
    rng = numpy.random.default_rng(args.seed)
    sets["bigram sampler"] = [detok(counts.sample(rng, n_tokens)) for _ in range(args.samples)]
    sets["held-out text (reference)"] = heldout_windows(held, args.samples, n_tokens, rng)
    rows = {name: figures(model, tok, texts, held_counts) for name, texts in sets.items()}
    print(f"{args.samples} texts per set; masked: {args.length} pieces, {args.iterations} sweeps; "
          f"bigram and held-out: {n_tokens} tokens")
    print(f"  {'set':<52} {'PPPL':>8} {'in held-out vocab':>18} {'JS bits':>8} {'distinct':>9}")
    for name, r in rows.items():
        print(f"  {name:<52} {r['pppl']:8.1f} {r['in_heldout_vocab']:18.3f} {r['js_to_heldout_bits']:8.3f} "
              f"{r['distinct_words']:9.3f}")
    for name, texts in sets.items():
        print(f"\n{name}:")
        for text in texts[:3]:
            print(f"  - {text}")
    wall = time.perf_counter() - wall
    print(f"\nwall time {wall:.0f} s (sampling: " + ", ".join(f"{s:.0f}" for s in seconds.values()) + " s)")
    result = {"model": str(args.model), "samples": args.samples, "length": args.length,
              "iterations": args.iterations, "seed": args.seed, "bigram_tokens": n_tokens,
              "settings": dict(SETTINGS), "figures": rows, "texts": sets,
              "seconds": {"sampling": seconds, "wall": wall}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
