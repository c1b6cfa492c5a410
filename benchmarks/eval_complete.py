"""Next-word prediction and infilling on held-out books: a minibert-pretrained masked LM against unigram
and bigram baselines counted on the same training text (docs/text_prediction.md).

    OPENBLAS_NUM_THREADS=1 MINIBERT_THREADS=1 python benchmarks/eval_complete.py \
        --model runs/gutenberg-mini --positions 1000 --choose-positions 200

1. The training and held-out text: the Gutenberg books as `minibert pretrain` splits them (readers.py:
   read_gutenberg, GUTENBERG_HELD_OUT), or --train/--heldout corpus files (read_corpus).
2. Unigram and bigram counts of the training text (apps/ngrams.py).
3. The choice of query (on TRAINING text, --choose-positions positions): append [MASK] alone or
   [MASK] "." after the context, score words with or without p(the word ends); top-1/top-5 of each.
4. On the held-out text, --positions positions (seeded) whose token is a word (letters only):
     next word   context = the tokens before it in its chapter (the last --context tokens; the model keeps
                 what fits its positions); model vs unigram (most frequent words) vs bigram (back-off)
     infilling   the word masked between --context tokens on the left and --context // 2 on the right;
                 model vs unigram vs bigram from the left word vs bigram from both neighbours
   A position counts as a hit at k when the word is among the k guesses (lower-cased, as the tokenizer).
Prints the tables and writes JSON to --out.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy

from minibert.apps.complete import rank_words, word_piece_table
from minibert.apps.fill_mask import load_pretraining_model
from minibert.apps.ngrams import START, NgramCounts, is_word, split_words
from minibert.data.pretraining.readers import GUTENBERG_HELD_OUT, read_corpus, read_gutenberg

REPO = Path(__file__).resolve().parent.parent


def documents(args):
    """(training documents, held-out documents), each a list of lists of sentences."""
    if args.train:
        return read_corpus(args.train), read_corpus(args.heldout)
    return (read_gutenberg(args.data, exclude=GUTENBERG_HELD_OUT),
            read_gutenberg(args.data, books=list(GUTENBERG_HELD_OUT)))


def token_stream(document):
    """A chapter's tokens and, per token, its previous token for the bigram (<s> at a sentence start)."""
    tokens, previous = [], []
    for sentence in document:
        words = split_words(sentence)
        previous += [START] + words[:-1]
        tokens += words
    return tokens, previous


def pick_positions(docs, n, seed, right: int = 0):
    """n (doc, i) seeded at random among the word tokens with at least 1 token before (and `right` after)."""
    streams = [token_stream(d) for d in docs]
    candidates = [(d, i) for d, (tokens, _) in enumerate(streams) for i in range(1, len(tokens) - right)
                  if is_word(tokens[i])]
    rng = numpy.random.default_rng(seed)
    chosen = rng.choice(len(candidates), size=min(n, len(candidates)), replace=False)
    return streams, [candidates[c] for c in sorted(chosen)]


def hits(guesses, answer):
    """(top-1 hit, top-5 hit) of a ranked list of words."""
    return int(guesses[:1] == [answer]), int(answer in guesses[:5])


def evaluate(model, tok, counts, docs, n, seed, context, infill: bool, variants, table):
    """Top-1 / top-5 of every method on n positions; variants: {name: rank_words options} for the model."""
    right_n = context // 2 if infill else 0
    streams, positions = pick_positions(docs, n, seed, right=right_n)
    methods = {**{name: [] for name in variants}, "unigram": [], "bigram (left word)": []}
    if infill:
        methods["bigram (both neighbours)"] = []
    unigram = [w for w, _ in counts.top_unigram_words(5)]
    start = time.perf_counter()
    for d, i in positions:
        tokens, previous = streams[d]
        answer = tokens[i]
        left = tokens[max(0, i - context):i]
        right = tokens[i + 1:i + 1 + right_n]
        left_ids = tok.encode(" ".join(left), add_special_tokens=False)
        right_ids = tok.encode(" ".join(right), add_special_tokens=False) if right else []
        for name, options in variants.items():
            suffix = tok.encode(options.get("suffix", ""), add_special_tokens=False) if not infill else right_ids
            opts = {k: v for k, v in options.items() if k != "suffix"}
            ranking = rank_words(model, tok, left_ids, suffix, k=5, table=table, **opts)
            methods[name].append(hits([c.text for c in ranking.completions], answer))
        methods["unigram"].append(hits(unigram, answer))
        bigram_left = [previous[i]]                      # <s> at a sentence start, as counted
        methods["bigram (left word)"].append(hits([w for w, _ in counts.next_words(bigram_left, 5)], answer))
        if infill:
            both = counts.infill_words(bigram_left, right[:1], 5)
            methods["bigram (both neighbours)"].append(hits([w for w, _ in both], answer))
    seconds = time.perf_counter() - start
    return {name: {"top1": float(numpy.mean([h[0] for h in rows])), "top5": float(numpy.mean([h[1] for h in rows])),
                   "n": len(rows)} for name, rows in methods.items()}, seconds


def print_table(title, result):
    print(f"\n{title}")
    print(f"  {'method':<34} {'top-1':>7} {'top-5':>7}   n")
    for name, r in result.items():
        print(f"  {name:<34} {r['top1']:7.3f} {r['top5']:7.3f}   {r['n']}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a `minibert pretrain` run folder")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "gutenberg"),
                        help="the Gutenberg folder (default: ../shared/data/gutenberg)")
    parser.add_argument("--train", help="a training corpus file instead of --data (with --heldout)")
    parser.add_argument("--heldout", help="a held-out corpus file (with --train)")
    parser.add_argument("--positions", type=int, default=1000, help="held-out positions per task")
    parser.add_argument("--choose-positions", type=int, default=200, help="training positions for the choice")
    parser.add_argument("--context", type=int, default=40, help="tokens of context on the left (right: half)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "text" / "complete.json"))
    args = parser.parse_args(argv)
    wall = time.perf_counter()
    model, tok = load_pretraining_model(args.model)
    train, held = documents(args)
    t = time.perf_counter()
    counts = NgramCounts.from_documents(train)
    print(f"counted {counts.total:,} training tokens ({len(counts.unigrams):,} types) in "
          f"{time.perf_counter() - t:.1f} s; held-out: {len(held)} documents")
    table = word_piece_table(tok)
    variants = {"[MASK]": {}, "[MASK] .": {"suffix": "."},
                "[MASK], no p(end)": {"end_probability": False},
                "[MASK] ., no p(end)": {"suffix": ".", "end_probability": False}}
    choice, choice_s = evaluate(model, tok, counts, train, args.choose_positions, args.seed + 1, args.context,
                                False, variants, table)
    print_table(f"choosing the query, next word on {args.choose_positions} TRAINING positions ({choice_s:.0f} s)",
                choice)
    best = max(variants, key=lambda name: (choice[name]["top1"] + choice[name]["top5"], name == "[MASK]"))
    print(f"chosen: {best}")
    model_variant = {f"model: {best}": variants[best]}
    nxt, nxt_s = evaluate(model, tok, counts, held, args.positions, args.seed, args.context, False,
                          model_variant, table)
    print_table(f"next word, {args.positions} held-out positions ({nxt_s:.0f} s)", nxt)
    end = {k: v for k, v in variants[best].items() if k != "suffix"}
    fill, fill_s = evaluate(model, tok, counts, held, args.positions, args.seed, args.context, True,
                            {"model": end}, table)
    print_table(f"infilling (left {args.context}, right {args.context // 2} tokens), {args.positions} held-out "
                f"positions ({fill_s:.0f} s)", fill)
    wall = time.perf_counter() - wall
    print(f"\nwall time {wall:.0f} s")
    result = {"model": str(args.model), "data": args.train or str(args.data), "positions": args.positions,
              "choose_positions": args.choose_positions, "context": args.context, "seed": args.seed,
              "training_tokens": counts.total, "choice_on_training_text": choice, "chosen": best,
              "next_word": nxt, "infilling": fill, "seconds": {"choice": choice_s, "next_word": nxt_s,
                                                                 "infilling": fill_s, "wall": wall}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
