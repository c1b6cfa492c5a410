"""`minibert complete` (the next words while typing, or the words for a ___ blank) and `minibert generate`
(text by masked sampling), with a `minibert pretrain` run folder's masked-LM head."""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

from minibert import checks
from minibert.apps.complete import BLANK, complete, infill
from minibert.apps.fill_mask import load_pretraining_model
from minibert.apps.generate import ORDERS, generate, pseudo_log_likelihoods
from minibert.cli.command import Command
from minibert.errors import InputError


@dataclass(kw_only=True)
class CompleteArgs:
    model: str = field(metadata={"help": "run folder (config.json, vocab.txt, model.safetensors with the heads)"})
    top_k: int = field(default=5, metadata={"check": checks.positive, "help": "completions shown"})
    words: int = field(default=1, metadata={"check": checks.positive, "help": "words per completion"})
    text: str = field(metadata={"positional": True, "help": "the text typed so far; with ___ or [MASK] in it, "
                                                           "the words for each blank instead"})


def run_complete(args: CompleteArgs) -> int:
    """The ranked completions, one a line with its probability (and each piece's, for a multi-piece word)."""
    model, tok = load_pretraining_model(args.model)
    if BLANK.search(args.text):
        if args.words != 1:
            raise InputError(f"--words {args.words} is for completing a text; a ___ or [MASK] blank gets one word")
        for b, ranking in enumerate(infill(model, tok, args.text, args.top_k)):
            print(f"blank #{b + 1}:")
            _print(ranking)
        return 0
    ranking = complete(model, tok, args.text, args.top_k, words=args.words)
    print(args.text + " ...")
    _print(ranking)
    return 0


def _print(ranking) -> None:
    if ranking.dropped:
        print(f"note: the text is longer than the model's positions: its first {ranking.dropped} pieces were "
              f"left out", file=sys.stderr)
    for c in ranking.completions:
        pieces = "" if len(c.pieces) < 2 else "   (" + " ".join(f"{t} {p:.3f}" for t, p in c.pieces) + \
            (f", ends {c.end:.3f}" if c.end < 1 else "") + ")"
        print(f"  {c.text:<20} {c.probability:.4g}{pieces}")


@dataclass(kw_only=True)
class GenerateArgs:
    model: str = field(metadata={"help": "run folder (config.json, vocab.txt, model.safetensors with the heads)"})
    length: int = field(default=20, metadata={"check": checks.positive, "help": "WordPiece pieces per sample"})
    samples: int = field(default=5, metadata={"check": checks.positive, "help": "samples drawn"})
    order: str = field(default="random", metadata={"choices": list(ORDERS),
                                                    "help": "the order positions are redrawn in, each sweep"})
    temperature: float = field(default=1.0, metadata={"check": checks.finite_positive,
                                                      "help": "divides the log-probabilities before a draw"})
    top_k: int = field(default=0, metadata={"check": checks.non_negative,
                                            "help": "draw among the k likeliest pieces only (0: all)"})
    iterations: int = field(default=4, metadata={"check": checks.positive,
                                                 "help": "sweeps over the positions"})
    burn_in: int = field(default=0, metadata={"check": checks.non_negative,
                                              "help": "first sweeps that ignore --top-k (Wang & Cho)"})
    seed: int = field(default=0, metadata={"help": "seed of the draws (same seed, same samples)"})
    prompt: str = field(default="", metadata={"help": "text the samples start with"})
    score: bool = field(default=False, metadata={"help": "also print each sample's pseudo-perplexity"})


def run_generate(args: GenerateArgs) -> int:
    """Draw the samples and print one a line."""
    model, tok = load_pretraining_model(args.model)
    result = generate(model, tok, length=args.length, samples=args.samples, order=args.order,
                      temperature=args.temperature, top_k=args.top_k, iterations=args.iterations,
                      burn_in=args.burn_in, seed=args.seed, prompt=args.prompt)
    scores = pseudo_log_likelihoods(model, tok, result.texts) if args.score else None
    for i, text in enumerate(result.texts):
        if scores:
            pll, n = scores[i]
            print(f"{i + 1:>3}. [PPPL {math.exp(-pll / n):8.1f}] {text}")
        else:
            print(f"{i + 1:>3}. {text}")
    return 0


COMMANDS = (
    Command("complete", "the next words of a text (or the words for its ___ blanks) with a pretrained run",
            CompleteArgs, run_complete),
    Command("generate", "text by masked sampling from a pretrained run's masked LM (Wang & Cho 2019)",
            GenerateArgs, run_generate),
)
