"""Fill in the blank: what a masked-LM head predicts for each [MASK] of a text.

    model, tokenizer = load_pretraining_model("runs/pretrain")        # a `minibert pretrain` run folder
    fill_mask(model, tokenizer, "the cat sat on the [MASK].")         # [[("mat", 0.21), ("floor", 0.12), ...]]

    python -m minibert fill-mask --model runs/pretrain "the cat sat on the [MASK]."
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy

from minibert import backend
from minibert.errors import InputError
from minibert.model.config import BertConfig
from minibert.model.heads import BertForPreTraining
from minibert.model.io import (WEIGHTS_NAME, CheckpointError, assign_params, check_vocab_size, check_weights,
                               config_mismatches, read_weights, split_prefix)
from minibert.ops.losses import IGNORE_INDEX
from minibert.tokenization import BertTokenizer
from minibert.train.checkpoint import list_checkpoints


def mask_probabilities(model, tokenizer, text: str) -> numpy.ndarray:
    """The model's probability of every vocabulary token at each [MASK] of `text`: (n_masks, V), host."""
    enc = tokenizer(text, truncation=True, max_length=model.config.max_position_embeddings)
    ids = numpy.asarray(enc["input_ids"])[None]
    where = numpy.flatnonzero(ids[0] == tokenizer.mask_token_id)
    if len(where) == 0:
        if tokenizer.mask_token in text:
            raise InputError(f"the {tokenizer.mask_token} of {text!r} lies beyond the model's "
                             f"{model.config.max_position_embeddings} positions (the text was truncated)")
        raise InputError(f"no {tokenizer.mask_token} in {text!r}")
    labels = numpy.full_like(ids, IGNORE_INDEX)
    labels[0, where] = 0                                   # any id: only marks the positions to predict
    with model.inference():
        out = model.forward(ids, numpy.asarray(enc["token_type_ids"])[None],
                            numpy.asarray(enc["attention_mask"])[None], labels=labels)
    logits = backend.to_host(out["mlm_logits"]).astype(numpy.float64)          # (n_masks, V)
    probs = numpy.exp(logits - logits.max(axis=1, keepdims=True))              # softmax, stable
    return probs / probs.sum(axis=1, keepdims=True)


def fill_mask(model, tokenizer, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """For each [MASK] in `text`, the top_k (token, probability) predictions."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InputError(f"top_k must be a positive integer, got {top_k!r}")
    result = []
    for row in mask_probabilities(model, tokenizer, text):
        best = numpy.argsort(-row)[:top_k]
        result.append([(tokenizer.convert_ids_to_tokens(int(i)), float(row[i])) for i in best])
    return result


def fill_mask_examples(model, tokenizer, documents, seed: int, n: int = 5, baseline=None) -> list[str]:
    """Mask one word in a few held-out sentences: the model's top 3 guesses, and the probability it gives
    the right word next to what a model of word frequencies alone would give it.

    The masked word is one the vocabulary holds whole (so one [MASK] can be right).
    baseline: the training targets' frequencies [(token, frequency), ...] (train/pretrain.py:
    unigram_top); without it only the model's guesses are shown.
    """
    rng = random.Random(seed)
    frequency = dict(baseline or [])
    sentences = [s for d in documents for s in d if 6 <= len(s.split()) <= 25]
    lines = ["fill in the blank (held-out sentences):"]
    if baseline:
        lines.append("  a model of word frequencies alone says " +
                     ", ".join(f"{t} ({p:.2f})" for t, p in baseline[:3]) + " every time")
    for s in rng.sample(sentences, min(n, len(sentences))):
        words = s.split()
        candidates = [i for i, w in enumerate(words) if w.isalpha() and w.lower() in tokenizer.vocab]
        if not candidates:
            continue
        i = rng.choice(candidates)
        answer, words[i] = words[i].lower(), tokenizer.mask_token
        masked = " ".join(words)
        probs = mask_probabilities(model, tokenizer, masked)[0]
        best = numpy.argsort(-probs)[:3]
        guesses = ", ".join(f"{tokenizer.convert_ids_to_tokens(int(k))} ({probs[k]:.2f})" for k in best)
        line = f"  {masked}\n    answer: {answer}   model: {guesses}   p(answer): model {probs[tokenizer.vocab[answer]]:.3f}"
        if baseline:
            line += f", word frequency {frequency.get(answer, 0.0):.3f}"
        lines.append(line)
    return lines


def load_pretraining_model(run_dir, dtype="float32"):
    """(model, tokenizer) from a run folder (or any folder with config.json, vocab.txt, model.safetensors;
    a run still in progress: its newest checkpoint's weights).

    Every file is checked before the model is used, so a damaged one is an error that names it rather than
    nonsense guesses: config.json is a valid config, vocab.txt has config.vocab_size tokens, and the
    weights parse, are finite floats, agree with config.json and fit the model (CheckpointError, ConfigError,
    VocabularyError).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"no run folder at {run_dir}" if not run_dir.exists() else
                              f"{run_dir} is a file, not a run folder (config.json, vocab.txt, model.safetensors)")
    config = BertConfig.load(run_dir)
    tokenizer = BertTokenizer.from_pretrained(run_dir)
    check_vocab_size(len(tokenizer), config, run_dir / "vocab.txt")
    weights = run_dir / WEIGHTS_NAME
    if not weights.exists() and list_checkpoints(run_dir):
        weights = list_checkpoints(run_dir)[-1] / WEIGHTS_NAME
    arrays = read_weights(weights)
    check_weights(arrays, weights)
    mismatches = config_mismatches(config, split_prefix(arrays)[0])
    if mismatches:
        raise CheckpointError(f"{run_dir / 'config.json'} does not match the weights in {weights}: "
                              + "; ".join(mismatches))
    if not any(name.startswith("cls.predictions.") for name in arrays):
        raise CheckpointError(f"{weights} has no masked-LM head (no cls.predictions.* weights): it is an encoder "
                              f"only (like all-MiniLM-L6-v2); fill-mask, complete, generate and augment need a model "
                              f"pretrained with its head, e.g. a `minibert pretrain` run folder")
    model = BertForPreTraining(config, dtype=dtype).eval()
    assign_params(model.params, arrays, where=str(weights))
    return model, tokenizer

