"""Generation by masked sampling (Wang & Cho 2019, "BERT has a mouth, and it must speak"), and the
pseudo-perplexity that measures it (Salazar et al. 2020, "Masked Language Model Scoring").

    model, tokenizer = load_pretraining_model("runs/pretrain")
    result = generate(model, tokenizer, length=20, samples=5, order="random", seed=0)
    result.texts                                   # 5 strings, no [MASK] or other special token
    pseudo_perplexity(model, tokenizer, result.texts)

    python -m minibert generate --model DIR --length 20 --samples 5 --order random --seed 0

The sampler (a Gibbs-style sweep over positions):

    x = [CLS] prompt [MASK] * length [SEP]
    repeat `iterations` sweeps; a sweep visits every generated position once, in an order:
        "left-to-right": 1, 2, ..., length      "random": a fresh random permutation per sweep
        at position i:  x_i <- [MASK];   x_i ~ p(. | x_without_i) ** (1 / temperature), top-k only

The first sweep fills the [MASK]s one by one (each draw sees the ones before it, the later ones are
still [MASK]); later sweeps redraw each position from the rest. The samples of a batch are drawn
together: each row has its own order (random) and its own draws, one forward per step for all rows.
As in Wang & Cho's code, top-k is applied only after `burn_in` sweeps (those draw from the whole
distribution). Special tokens ([CLS], [SEP], [PAD], [MASK], [UNK]) are never drawn.

What this samples: each step draws from one of the MLM's conditionals p(x_i | x_-i). If those came
from one joint distribution p(x), this would be a Gibbs sampler of p(x); an MLM's conditionals are
trained separately per position and need not be consistent with any joint (docs/generation.md), so
the sampler's stationary distribution, if it has one, is not a distribution the model "defines".

Pseudo-log-likelihood of a text: mask each of its pieces in turn and add up log p(the piece | the rest);
pseudo-perplexity PPPL = exp(-sum PLL / number of pieces) over a set of texts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy

from minibert.apps.complete import check_mlm_model, masked_log_probs
from minibert.errors import InputError

__all__ = ["ORDERS", "Generation", "generate", "pseudo_log_likelihoods", "pseudo_perplexity", "detokenize"]

ORDERS = ("random", "left-to-right")


@dataclass
class Generation:
    """The samples (texts and piece ids), and the ids after each sweep (for a plot of how they settle)."""
    texts: list                                  # the prompt and the generated pieces, detokenized
    ids: numpy.ndarray                           # (samples, length) the generated pieces
    sweeps: list = field(default_factory=list)   # sweeps[s]: (samples, length) after sweep s + 1


def detokenize(tokenizer, ids) -> str:
    """Pieces -> text: "##" pieces glued to the one before (the tokenizer's decode); a leading "##" piece
    has nothing to glue to and just loses its "##"."""
    text = tokenizer.decode([int(i) for i in ids])
    return text.removeprefix("##")


def _check_settings(length, samples, order, temperature, top_k, iterations, burn_in, max_length):
    def count(name, value, low):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    count("length", length, 1)
    count("samples", samples, 1)
    count("top_k", top_k, 0)
    count("iterations", iterations, 1)
    count("burn_in", burn_in, 0)
    if order not in ORDERS:
        raise InputError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise InputError(f"temperature must be a finite number > 0, got {temperature!r}")
    if length > max_length:
        raise InputError(f"length {length} does not fit: with [CLS], [SEP] and the prompt, the model's positions "
                         f"leave room for {max_length} generated pieces")


def draw(rng: numpy.random.Generator, logp: numpy.ndarray, allowed: numpy.ndarray, temperature: float,
         top_k: int) -> numpy.ndarray:
    """One token per row of logp (n, V): p ∝ exp(logp / temperature) over the allowed tokens, top_k only
    (0: all). One uniform draw per row, inverted through the row's cumulative distribution."""
    scores = numpy.where(allowed, logp / temperature, -numpy.inf)                # (n, V)
    if top_k:
        kth = numpy.sort(scores, axis=1)[:, -top_k][:, None]                     # the k-th largest per row
        scores = numpy.where(scores >= kth, scores, -numpy.inf)
    p = numpy.exp(scores - scores.max(axis=1, keepdims=True))
    cdf = numpy.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)                 # (n, V)
    u = rng.random(len(logp))[:, None]
    return numpy.minimum((cdf < u).sum(axis=1), logp.shape[1] - 1)


def generate(model, tokenizer, length: int = 20, samples: int = 5, order: str = "random",
             temperature: float = 1.0, top_k: int = 0, iterations: int = 4, burn_in: int = 0,
             seed: int = 0, prompt: str = "") -> Generation:
    """`samples` texts of `length` pieces after `prompt`, by masked sampling (the module docstring).

    iterations: sweeps over the positions (each visits every position once); burn_in: the first sweeps
    draw without top-k. Seeded: the same arguments give the same samples (numpy's default_rng(seed)).
    """
    check_mlm_model(model)
    prompt_ids = tokenizer.encode(prompt, add_special_tokens=False) if prompt else []
    room = model.config.max_position_embeddings - 2 - len(prompt_ids)
    _check_settings(length, samples, order, temperature, top_k, iterations, burn_in, max(room, 0))
    if tokenizer.mask_token_id in prompt_ids:
        raise InputError(f"the prompt has a {tokenizer.mask_token}: write it as plain text")
    rng = numpy.random.default_rng(seed)
    allowed = numpy.ones(len(tokenizer), dtype=bool)
    allowed[tokenizer.all_special_ids] = False                                    # never draw [MASK] etc.
    start = 1 + len(prompt_ids)                                                   # first generated column
    x = numpy.array([[tokenizer.cls_token_id, *prompt_ids, *([tokenizer.mask_token_id] * length),
                      tokenizer.sep_token_id]] * samples)                         # (samples, T)
    rows = numpy.arange(samples)
    history = []
    for sweep in range(iterations):
        if order == "left-to-right":
            orders = numpy.tile(numpy.arange(length), (samples, 1))
        else:
            orders = numpy.argsort(rng.random((samples, length)), axis=1)         # a permutation per row
        k = top_k if sweep >= burn_in else 0
        for step in range(length):
            columns = start + orders[:, step]                                      # (samples,) one per row
            x[rows, columns] = tokenizer.mask_token_id
            logp = masked_log_probs(model, x, list(zip(rows.tolist(), columns.tolist())))
            x[rows, columns] = draw(rng, logp, allowed, temperature, k)
        history.append(x[:, start:start + length].copy())
    ids = x[:, start:start + length]
    return Generation([detokenize(tokenizer, [*prompt_ids, *row]) for row in ids], ids.copy(), history)


def pseudo_log_likelihoods(model, tokenizer, texts, batch_size: int = 64) -> list[tuple[float, int]]:
    """For each text, (PLL, pieces): PLL = sum over its pieces i of log p(piece_i | the other pieces),
    each piece masked in its own copy of the text; the copies go through the model batch_size at a time."""
    check_mlm_model(model)
    results = []
    limit = model.config.max_position_embeddings - 2
    for text in texts:
        ids = tokenizer.encode(text, add_special_tokens=False)
        if not ids:
            raise InputError(f"the text {text!r} has no pieces to score")
        if len(ids) > limit:
            raise InputError(f"the text {text[:40]!r}... has {len(ids)} pieces, more than the model's {limit}")
        row = numpy.array([tokenizer.cls_token_id, *ids, tokenizer.sep_token_id])
        total = 0.0
        for first in range(0, len(ids), batch_size):
            columns = numpy.arange(1 + first, 1 + min(first + batch_size, len(ids)))
            batch = numpy.tile(row, (len(columns), 1))                             # one copy per piece
            batch[numpy.arange(len(columns)), columns] = tokenizer.mask_token_id
            logp = masked_log_probs(model, batch, list(enumerate(columns.tolist())))
            total += float(logp[numpy.arange(len(columns)), row[columns]].sum())
        results.append((total, len(ids)))
    return results


def pseudo_perplexity(model, tokenizer, texts, batch_size: int = 64) -> float:
    """PPPL = exp(-sum of the texts' PLLs / their number of pieces) (Salazar et al. 2020)."""
    scored = pseudo_log_likelihoods(model, tokenizer, list(texts), batch_size)
    if not scored:
        raise InputError("no texts to score")
    return math.exp(-sum(p for p, _ in scored) / sum(n for _, n in scored))
