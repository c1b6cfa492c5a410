"""Pretraining BERT (masked LM + next sentence): the data, the objective, evaluation, the run.

The loop itself (log, progress, evaluation cadence, checkpoints, resume) is train/loop.py; one step is
train/step.py; this module says what pretraining plugs into them.

    python -m minibert pretrain                                   # stdlib docstrings, tiny BERT, about 2 minutes
    python -m minibert pretrain --corpus ../shared/data/gutenberg --config mini \\
        --vocab-size 16000 --steps 800 --batch-size 32 --seq-len 128 --out runs/mini
    python -m minibert pretrain --out runs/mini --resume          # continue from the newest checkpoint
    python -m minibert plot runs/mini                             # redraw runs/mini/curves.png
    python -m minibert fill-mask --model runs/mini "the cat sat on the [MASK]."

A run folder holds: run.json (the arguments), config.json, vocab.txt and
tokenizer_config.json, data/ (the instances as arrays), log.jsonl (one JSON
object per step, plus evaluation rows), curves.png, checkpoints/step-N/ (the
newest few) and, at the end, model.safetensors (the trained weights, Hugging
Face BertForPreTraining names).

Exact resume: the batch for step s is a pure function of (seed, s), the
dropout generator's state is checkpointed with the weights and the optimizer,
so a run killed and resumed gives the same numbers as one never interrupted,
log.jsonl included (train/loop.py cuts it back to the checkpoint's step).

`--resume` keeps the settings in run.json. Four may change: --steps (a longer or
shorter run: the schedule is recomputed for the new total), --lr (a new peak
from the resumed step on), --checkpoint-every and --keep (they change no number).
run.json then records the pieces of the learning-rate schedule ("schedule", see
LearningRateSchedule). Any other setting given with another value than the run's
is an error, not silently ignored.
"""
from __future__ import annotations

import dataclasses
import math
import random
import zipfile
from dataclasses import field
from pathlib import Path

import numpy

from minibert import backend, checks
from minibert.data.batches import step_rows
from minibert.data.pretraining import (FEATURE_NAMES, GUTENBERG_HELD_OUT, EmptyCorpusError, create_training_instances,
                                       instances_to_features, load_features, read_corpus, read_gutenberg,
                                       save_features)
from minibert.data.pretraining.stdlib_corpus import stdlib_documents
from minibert.errors import MinibertError
from minibert.files import PRETRAINING_RUN, check_out_folder, claim_run_folder
from minibert.model.config import PRESETS, BertConfig
from minibert.model.heads.pretraining import BertForPreTraining
from minibert.model.io import CONFIG_NAME, read_json, save_arrays, write_json
from minibert.ops.losses import IGNORE_INDEX
from minibert.tokenization import BertTokenizer
from minibert.tokenization.vocab_trainer import train_vocab
from minibert.train.checkpoint import folder_step, list_checkpoints
from minibert.train.distributed import SINGLE, DistributedError, check_batch
from minibert.train.loop import TrainingLoop
from minibert.train.optim import AdamW, linear_warmup_decay
from minibert.train.step import count_totals, loss_weights, train_step


MIN_SEQ_LEN = 5           # the shortest instance: [CLS] A [SEP] B [SEP], one token in each segment


@dataclasses.dataclass
class PretrainArgs:
    """The settings of a pretraining run (saved as run.json); each field is a flag of `minibert pretrain`."""
    corpus: str | None = field(default=None, metadata={
        "help": "text file, WikiText raw file, or folder of Gutenberg books "
                "(default: the Python standard library's docstrings)"})
    eval_corpus: str | None = field(default=None, metadata={
        "help": "held-out text (default: held-out documents of the corpus, or Gutenberg's held-out books)"})
    config: str = field(default="tiny", metadata={"help": f"preset ({', '.join(PRESETS)}) or a config.json path"})
    vocab: str | None = field(default=None, metadata={
        "help": "folder with vocab.txt, or the file (default: learn a vocabulary on the corpus)"})
    vocab_size: int = field(default=8000, metadata={"check": checks.positive, "help": "size of the learned vocabulary"})
    vocab_score: str = field(default="frequency", metadata={
        "choices": ["frequency", "likelihood"],
        "help": "merge rule of the learned vocabulary: the most frequent pair (default; frequent words "
                "become whole tokens) or WordPiece's likelihood score (see vocab_trainer)"})
    steps: int = field(default=1000, metadata={"check": checks.positive, "help": "optimizer steps"})
    batch_size: int = field(default=32, metadata={"check": checks.positive, "help": "sequences per step"})
    seq_len: int = field(default=64, metadata={
        "check": checks.at_least(MIN_SEQ_LEN),
        "help": "max_seq_length of the instances (64: docstring paragraphs are short, and a step is half as long "
                "as at 128)"})
    max_predictions: int | None = field(default=None, metadata={
        "check": checks.positive,
        "help": "max masked positions per sequence (default: 15% of --seq-len, rounded up: 10 for 64, "
                "20 for 128 as in Google's recipe)"})
    dupe_factor: int = field(default=2, metadata={"check": checks.positive, "help": "masked copies of the corpus"})
    eval_dupe_factor: int = field(default=1, metadata={
        "check": checks.positive,
        "help": "masked versions of the held-out documents (more: a steadier estimate)"})
    short_seq_prob: float = field(default=0.1, metadata={
        "check": checks.probability,
        "help": "share of instances with a shorter target length"})
    whole_word_mask: bool = field(default=False, metadata={"help": "mask whole words"})
    lr: float = field(default=1e-3, metadata={"check": checks.finite_positive, "help": "peak learning rate"})
    warmup: float = field(default=0.1, metadata={"check": checks.below_one, "help": "warm-up fraction of the steps"})
    weight_decay: float = field(default=0.01, metadata={
        "check": checks.finite_non_negative,
        "help": "AdamW decoupled weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={
        "check": checks.finite_non_negative,
        "help": "clip the global gradient norm (0: off)"})
    optimizer: str = field(default="torch", metadata={
        "choices": ["torch", "google"], "help": "AdamW with bias correction (torch) or Google's BERT variant"})
    accumulate: int = field(default=1, metadata={
        "check": checks.positive,
        "help": "micro-batches per step (gradient accumulation; --batch-size must divide by it)"})
    heldout_fraction: float = field(default=0.05, metadata={
        "check": checks.fraction,
        "help": "share of documents held out for evaluation"})
    eval_every: int = field(default=250, metadata={
        "check": checks.positive, "help": "steps between held-out evaluations"})
    eval_batches: int = field(default=20, metadata={"check": checks.positive, "help": "batches per evaluation"})
    checkpoint_every: int = field(default=250, metadata={"check": checks.positive, "help": "steps between checkpoints"})
    keep: int = field(default=3, metadata={"check": checks.positive, "help": "checkpoints kept"})
    seed: int = field(default=12345, metadata={"help": "seed of data, init and dropout"})
    dtype: str = field(default="float32", metadata={
        "choices": ["float32", "float64"], "help": "floating-point type of the weights and activations"})
    out: str = field(default="runs/pretrain", metadata={"help": "run folder"})
    progress: bool = field(default=True, metadata={"help": "no progress bar"})

    def __post_init__(self):
        """Every setting within its declared range ("check" above, minibert/checks.py), before any work."""
        checks.check_fields(self)


class PretrainError(MinibertError, RuntimeError):
    """A problem with the inputs of a pretraining run, said plainly."""


# -- data -------------------------------------------------------------------------------

def load_documents(args: PretrainArgs):
    """(train documents, held-out documents) as lists of lists of sentences."""

    if args.corpus is None:
        documents = stdlib_documents()
    else:
        path = Path(args.corpus)
        if not path.exists():
            raise PretrainError(f"corpus not found: {path}")
        if path.is_dir() and args.eval_corpus is None and all((path / b).is_file() for b in GUTENBERG_HELD_OUT):
            # the Gutenberg folder: the two held-out books are the evaluation text
            return read_gutenberg(path, exclude=GUTENBERG_HELD_OUT), read_gutenberg(path, books=list(GUTENBERG_HELD_OUT))
        documents = _read_corpus(path, "--corpus")
    if args.eval_corpus is not None:
        return documents, _read_corpus(args.eval_corpus, "--eval-corpus")
    if len(documents) < 2:
        raise PretrainError(f"the corpus {args.corpus or '(the standard library docstrings)'} has {len(documents)} "
                            f"document(s); at least 2 are needed (one to train on, one held out), or give "
                            f"--eval-corpus")
    order = list(range(len(documents)))
    random.Random(args.seed).shuffle(order)
    n_held = max(1, int(round(len(documents) * args.heldout_fraction)))
    held = sorted(order[:n_held])
    held_set = set(held)
    return [d for i, d in enumerate(documents) if i not in held_set], [documents[i] for i in held]


def _read_corpus(path, flag: str):
    """read_corpus, with the file and the flag named when the text is not UTF-8 or holds no words."""
    try:
        return read_corpus(path)
    except UnicodeDecodeError:
        if Path(path).is_file():                       # say which line, as every reader of a user's file does
            checks.decode_utf8(Path(path).read_bytes(), f"{flag} {path}")
        raise PretrainError(f"{flag} {path}: a file in it is not UTF-8; convert it to UTF-8") from None
    except EmptyCorpusError as err:
        raise PretrainError(f"{flag}: {err}") from None


def build_tokenizer(args: PretrainArgs, train_documents, run_dir: Path, write=print) -> tuple[BertTokenizer, bool]:
    """(the run's tokenizer, whether it is the one saved in the run folder): that one when it is complete,
    else a new one (learned on the training documents, or read from --vocab), saved there."""
    saved = saved_tokenizer(run_dir)
    if isinstance(saved, BertTokenizer):
        return saved, True
    if saved is not None:                    # an interrupted or damaged set-up: made again, the same way
        if list_checkpoints(run_dir):
            raise PretrainError(f"{saved}; the checkpoints in {run_dir} were trained with the vocabulary that was "
                                f"there: restore it, or start a new run with another --out")
        write(f"warning: {saved}: making the vocabulary again")
    if args.vocab is not None:
        tok = BertTokenizer.from_pretrained(args.vocab)
    else:
        text = (sentence for doc in train_documents for sentence in doc)
        result = train_vocab(text, vocab_size=args.vocab_size, show_progress=args.progress, score=args.vocab_score)
        tok = BertTokenizer(result.vocab, do_lower_case=True)
    tok.save_pretrained(run_dir)
    return tok, False


def saved_tokenizer(run_dir: Path):
    """The tokenizer saved in a run folder (vocab.txt, tokenizer_config.json), if the run's set-up finished
    writing it; None when there is none; a str saying why when there is one that cannot be trusted.

    The set-up writes the tokenizer's files, then config.json with vocab_size = the vocabulary's size
    (build_config). So a vocab.txt without config.json beside it, or of another size than it says, was
    cut short (a kill while it was written) or changed since.
    """
    vocab, config = run_dir / "vocab.txt", run_dir / CONFIG_NAME
    if not vocab.is_file():
        return None
    if not config.is_file():
        return f"{vocab} was written by a set-up that did not finish (no {CONFIG_NAME} yet)"
    try:
        tokenizer = BertTokenizer.from_pretrained(run_dir)
        expected = BertConfig.load(config).vocab_size
    except (MinibertError, OSError, UnicodeDecodeError, ValueError) as err:
        return f"{vocab} or {config} cannot be read ({err})"
    if len(tokenizer) != expected:
        return f"{vocab} has {len(tokenizer)} tokens but {config} says vocab_size={expected}"
    return tokenizer


def build_config(args: PretrainArgs, vocab_size: int) -> BertConfig:
    if args.config in PRESETS:
        cfg = BertConfig.preset(args.config, vocab_size=vocab_size)      # a preset adopts the vocabulary's size
    else:
        cfg = BertConfig.load(args.config)
        if cfg.vocab_size != vocab_size:
            raise PretrainError(f"config {args.config} has vocab_size={cfg.vocab_size} but the vocabulary has "
                                f"{vocab_size} tokens; they must agree")
    if cfg.max_position_embeddings < args.seq_len:
        raise PretrainError(f"--seq-len {args.seq_len} is longer than max_position_embeddings="
                            f"{cfg.max_position_embeddings} of the config")
    return cfg


def max_predictions(args: PretrainArgs) -> int:
    """Masked positions per sequence at most: --max-predictions, or 15% of --seq-len rounded up."""
    return args.max_predictions or math.ceil(0.15 * args.seq_len)


def build_features(args: PretrainArgs, documents, tokenizer, seed, dupe_factor, path: Path, write=print,
                   reuse=True):
    """Instances as arrays, cached in the run folder (a resumed run reads them back). A cached file that
    cannot be read or does not fit the settings is made again from the documents: the same arrays, as
    long as the corpus is the same (the instances are a function of the documents, vocabulary and seed).
    reuse=False: always made again (the vocabulary was)."""
    cached = cached_features(path, args.seq_len, len(tokenizer)) if reuse and path.is_file() else None
    if isinstance(cached, dict):
        return cached
    if cached is not None:
        write(f"warning: {cached}: making it again from the corpus")
    instances = create_training_instances(
        documents, tokenizer, max_seq_length=args.seq_len, dupe_factor=dupe_factor,
        short_seq_prob=args.short_seq_prob, max_predictions_per_seq=max_predictions(args), seed=seed,
        whole_word_mask=args.whole_word_mask, progress=args.progress)
    if not instances:
        raise PretrainError("the corpus gave no training instance (documents too short?)")
    features = instances_to_features(instances, tokenizer.vocab, args.seq_len, max_predictions(args))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_features(path, features)
    return features


def cached_features(path: Path, seq_len: int, vocab_size: int):
    """The arrays of a data/*.npz of the run folder, or a str saying why they cannot be used: a file cut
    short or damaged, arrays missing, of the wrong length, or token ids outside the vocabulary."""
    try:
        features = load_features(path)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as err:
        return f"{path} cannot be read ({type(err).__name__}: {err})"
    n, ids = len(features["input_ids"]), features["input_ids"]
    if any(len(features[k]) != n for k in FEATURE_NAMES) or ids.ndim != 2 or ids.shape[1] != seq_len:
        return f"{path} does not hold {seq_len}-token instances of one length"
    if n == 0 or ids.min() < 0 or ids.max() >= vocab_size:
        return f"{path} holds token ids outside the vocabulary of {vocab_size}"
    return features


MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask", "labels", "next_sentence_label")


def get_batch(features, rows):
    """The model inputs of these rows of the features (host arrays)."""
    return {k: features[k][rows] for k in MODEL_INPUTS}


# -- one step -------------------------------------------------------------------------------

class PretrainingObjective:
    """How a pretraining step talks to BertForPreTraining (see train/step.py): two loss terms, the
    masked-LM loss (a mean over the predicted positions) and the next-sentence loss (over the sequences)."""
    loss_keys = ("mlm_loss", "nsp_loss")
    correct_keys = ("mlm_correct", "nsp_correct")

    def counts(self, batch) -> tuple[int, int]:
        """(predicted positions, sequences) of a micro-batch: what the two losses average over."""
        return int((backend.to_host(batch["labels"]) != IGNORE_INDEX).sum()), len(batch["input_ids"])

    def forward(self, model, batch) -> dict:
        return model.forward(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
                             labels=batch["labels"], next_sentence_label=batch["next_sentence_label"])

    def backward(self, model, weights) -> None:
        model.backward(mlm_weight=weights[0], nsp_weight=weights[1])

    @staticmethod
    def step_metrics(m) -> dict:
        """The two losses and accuracies of a step (train_step's result) for the log."""
        (n_pred, n_seq), correct = m["counts"], m["correct"]
        return {**m["losses"], "mlm_accuracy": correct["mlm_correct"] / max(n_pred, 1),
                "nsp_accuracy": correct["nsp_correct"] / n_seq}


PRETRAINING = PretrainingObjective()


def pretraining_step(model, optimizer, micro_batches, lr, max_grad_norm=1.0, step=None, scaler=None) -> dict:
    """One optimizer step of pretraining over the micro-batches (dicts of host arrays: input_ids,
    token_type_ids, attention_mask, labels, next_sentence_label): exact accumulation, clipping, AdamW.
    Returns loss, mlm_loss, nsp_loss, mlm_accuracy, nsp_accuracy, grad_norm, lr, tokens, skipped,
    loss_scale. `scaler`: a minibert.train.amp.LossScaler for mixed precision (None: float32)."""
    counts = [PRETRAINING.counts(b) for b in micro_batches]
    m = train_step(model, PRETRAINING, optimizer, micro_batches, loss_weights(counts), lr, max_grad_norm, scaler,
                   step)
    m["counts"] = count_totals(counts)
    return {"loss": m["loss"], **PRETRAINING.step_metrics(m), "lr": lr, "tokens": m["tokens"],
            "grad_norm": m["grad_norm"], "skipped": m["skipped"], "loss_scale": m["loss_scale"]}


# -- evaluation ---------------------------------------------------------------------------

def evaluate(model, features, batch_size: int, max_batches: int, mask_token_id: int | None = None) -> dict:
    """Held-out MLM loss / accuracy / perplexity and NSP loss / accuracy (dropout off).

    With `mask_token_id`, also the MLM accuracy at the positions whose input is [MASK]
    (eval_mlm_accuracy_at_mask): of the predicted positions, 10% keep their token and a
    model soon learns to copy it, so the accuracy over all of them mixes guessing and copying.
    """
    n = len(features["input_ids"])
    mlm_nll = nsp_nll = 0.0
    mlm_correct = mlm_count = nsp_correct = nsp_count = at_mask_correct = at_mask_count = 0
    with model.inference():
        for i in range(0, min(n, batch_size * max_batches), batch_size):
            b = {k: features[k][i:i + batch_size] for k in MODEL_INPUTS}
            out = model.forward(b["input_ids"], b["token_type_ids"], b["attention_mask"],
                                labels=b["labels"], next_sentence_label=b["next_sentence_label"])
            mlm_nll += float(out["mlm_loss"]) * out["mlm_count"]
            nsp_nll += float(out["nsp_loss"]) * out["nsp_count"]
            mlm_correct += out["mlm_correct"]
            mlm_count += out["mlm_count"]
            nsp_correct += out["nsp_correct"]
            nsp_count += out["nsp_count"]
            if mask_token_id is not None:
                positions = backend.to_host(out["positions"])                           # (M,) into B*T
                at_mask = b["input_ids"].reshape(-1)[positions] == mask_token_id        # (M,) input was [MASK]
                guess = backend.to_host(out["mlm_logits"].argmax(axis=1))               # (M,)
                at_mask_correct += int((guess == b["labels"].reshape(-1)[positions])[at_mask].sum())
                at_mask_count += int(at_mask.sum())
    mlm_loss = mlm_nll / max(mlm_count, 1)
    result = {"eval_mlm_loss": mlm_loss, "eval_mlm_accuracy": mlm_correct / max(mlm_count, 1),
              "eval_perplexity": math.exp(min(mlm_loss, 50.0)), "eval_nsp_loss": nsp_nll / max(nsp_count, 1),
              "eval_nsp_accuracy": nsp_correct / max(nsp_count, 1),
              "eval_loss": mlm_loss + nsp_nll / max(nsp_count, 1)}
    if mask_token_id is not None:
        result["eval_mlm_accuracy_at_mask"] = at_mask_correct / max(at_mask_count, 1)
    return result


# -- baselines: what ignoring the context scores --------------------------------------------

def context_free_baselines(train: dict, held: dict, vocab_size: int, rows: int, mask_token_id: int) -> dict:
    """What a model that never looks at the context scores on the held-out rows `evaluate` reads.

    A masked-LM that only learned which words are frequent predicts the most frequent target
    every time; one that guesses a word drawn from the training targets' frequencies (a
    unigram guess) is right with probability p(target). Its loss is the unigram model's
    cross-entropy, exp of it the unigram perplexity (add-one smoothing, so a held-out word never
    seen in training costs a finite loss). For next-sentence prediction the baseline is the
    majority class of the training pairs. A model that learned something from the context
    beats all of these; one at them learned word frequencies only.
    """
    targets = train["labels"][train["labels"] != IGNORE_INDEX]                       # training targets
    counts = numpy.bincount(targets, minlength=vocab_size).astype(numpy.float64)     # (V,)
    frequency = counts / counts.sum()
    smoothed = (counts + 1.0) / (counts.sum() + vocab_size)
    labels, inputs = held["labels"][:rows], held["input_ids"][:rows]
    predicted = labels != IGNORE_INDEX                                                # the evaluated positions
    held_targets, at_mask = labels[predicted], labels[predicted & (inputs == mask_token_id)]
    majority = int(numpy.bincount(train["next_sentence_label"], minlength=2).argmax())
    return {
        "eval_mlm_accuracy_most_frequent": float((held_targets == counts.argmax()).mean()),
        "eval_mlm_accuracy_unigram": float(frequency[held_targets].mean()),
        "eval_mlm_accuracy_at_mask_most_frequent": float((at_mask == counts.argmax()).mean()),
        "eval_perplexity_unigram": float(numpy.exp(-numpy.log(smoothed[held_targets]).mean())),
        "eval_nsp_accuracy_majority": float((held["next_sentence_label"][:rows] == majority).mean()),
    }


def unigram_top(train: dict, tokenizer) -> list[tuple[str, float]]:
    """Every training target with its frequency, most frequent first: what the unigram baseline knows."""
    targets = train["labels"][train["labels"] != IGNORE_INDEX]
    counts = numpy.bincount(targets, minlength=len(tokenizer))
    order = [int(i) for i in numpy.argsort(-counts, kind="stable") if counts[i]]
    return [(tokenizer.convert_ids_to_tokens(i), float(counts[i] / counts.sum())) for i in order]


# -- the run ------------------------------------------------------------------------------

RESUME_CHANGES = ("steps", "lr", "checkpoint_every", "keep")      # the settings --resume may change


def load_run_args(run_dir, progress: bool = True) -> PretrainArgs:
    """The settings of the run in `run_dir`, from its run.json (`progress`: not a setting, the caller's),
    checked as the flags are: a run.json that is not a pretraining run's settings (a fine-tuning run's,
    another program's, one edited by hand) is an error naming the file and its first problem."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise PretrainError(f"--resume: no run to resume in {run_dir} (no run.json)")
    saved = read_json(path)
    if isinstance(saved, dict) and "task" in saved and "corpus" not in saved:
        raise PretrainError(f"{path} is the run.json of a fine-tuning run (task {saved['task']!r}), not of a "
                            f"pretraining run")
    settings = checks.settings_from_json(saved, PretrainArgs, path, PretrainError, command="pretrain",
                                         ignore=("schedule",))     # the run's learning-rate history, not a setting
    return PretrainArgs(**{**settings, "progress": progress})


def _check_resume(args: PretrainArgs, run_dir: Path) -> PretrainArgs:
    """`args` for resuming the run in `run_dir`, checked against its run.json: only the settings of
    RESUME_CHANGES may differ (any other that differs is named in one error), and --steps cannot end the
    run before its newest checkpoint."""
    checks.check_unchanged(args, load_run_args(run_dir, args.progress), run_dir / "run.json", RESUME_CHANGES,
                           PretrainError)
    checkpoints = list_checkpoints(run_dir)
    if checkpoints and args.steps < folder_step(checkpoints[-1]):
        raise PretrainError(f"--steps {args.steps} would end the run before its newest checkpoint "
                            f"{checkpoints[-1]} (step {folder_step(checkpoints[-1])}); give --steps "
                            f"{folder_step(checkpoints[-1])} or more")
    return args


def _check_run_folder(args: PretrainArgs, run_dir: Path, resume: bool) -> PretrainArgs:
    """The arguments of the run in `run_dir`: when resuming, `args` checked against those saved there
    (see _check_resume); refuse to mix two runs."""
    if resume:
        return _check_resume(args, run_dir)
    if (run_dir / "run.json").is_file():       # a run that never checkpointed (files.check_out_folder refuses others)
        old = read_json(run_dir / "run.json")
        changed = sorted(k for k, v in dataclasses.asdict(args).items() if k != "progress" and old.get(k) != v)
        if changed:   # its vocab.txt and data/ were made with other settings: never reuse them silently
            raise PretrainError(f"{run_dir} holds an unfinished run with other settings ({', '.join(changed)}); "
                                f"use another --out, or --overwrite to replace it")
    return args


def check_settings(args: PretrainArgs) -> None:
    """The settings that must fit each other or the config, checked before any work (each one's own range
    is checked when PretrainArgs is made)."""
    if args.batch_size % args.accumulate:
        raise PretrainError(f"--batch-size {args.batch_size} must be divisible by --accumulate {args.accumulate}")
    room = args.seq_len - 3                                   # [CLS] A [SEP] B [SEP]: 3 positions are not words
    if args.max_predictions is not None and args.max_predictions > room:
        raise PretrainError(f"--max-predictions {args.max_predictions} is more than the {room} word positions of "
                            f"a --seq-len {args.seq_len} instance ([CLS] and two [SEP] take 3)")
    if args.config not in PRESETS:
        if not Path(args.config).is_file():
            raise PretrainError(f"--config {args.config}: no such file, and not a preset ({', '.join(PRESETS)})")
        positions = BertConfig.load(args.config).max_position_embeddings
    else:
        positions = BertConfig.preset(args.config).max_position_embeddings
    if args.seq_len > positions:
        raise PretrainError(f"--seq-len {args.seq_len} is longer than max_position_embeddings={positions} of the "
                            f"config {args.config}")
    for flag, what, path in (("--corpus", "corpus", args.corpus),
                             ("--eval-corpus", "held-out corpus", args.eval_corpus)):
        if path is not None and not Path(path).exists():
            raise PretrainError(f"{what} not found: {path} ({flag})")


def check_vocabulary(args: PretrainArgs) -> None:
    """A new run's --vocab, read and checked before anything is written: it loads (no duplicate or empty
    token ...), and the --config agrees with its size. (A resumed run uses the one saved in its folder.)"""
    if args.vocab is None:
        return
    if not Path(args.vocab).exists():
        raise PretrainError(f"vocabulary not found: {args.vocab} (--vocab)")
    build_config(args, len(BertTokenizer.from_pretrained(args.vocab)))


@dataclasses.dataclass(frozen=True)
class SchedulePiece:
    """From step `from_step` on (0-based, the step with number from_step + 1), BERT's schedule for a run
    of `steps` steps with peak `lr`."""
    from_step: int
    steps: int
    lr: float


class LearningRateSchedule:
    """The learning rate of each step: BERT's warm-up then linear decay, in pieces when a resume changed
    --steps or --lr.

    Step i (0-based) uses the last piece with from_step <= i:

        lr(i) = linear_warmup_decay(i, piece.lr, int(warmup * piece.steps), piece.steps)

    A run never resumed with a change has one piece, (0, --steps, --lr): the usual schedule. Resumed at
    step s with `--steps T` and/or `--lr P`, the pieces from s on are replaced by (s, T, P): from step
    s + 1 the learning rate is what a run planned from the start for T steps with peak P would use
    there (still warming up if s < int(warmup * T), else on the line down to 0 at step T). So the rate
    can jump at s; what came before s is untouched. Each step's rate depends on the pieces and i
    alone, so a later resume from any checkpoint, even one before s, repeats the same rates.
    """

    def __init__(self, warmup: float, pieces: list[SchedulePiece]):
        self.warmup, self.pieces = warmup, list(pieces)

    @classmethod
    def of(cls, args: PretrainArgs, saved: dict | None = None) -> "LearningRateSchedule":
        """The schedule of a run: run.json's "schedule" when it has one (`saved`), else one piece."""
        pieces = [SchedulePiece(0, args.steps, args.lr)]
        if saved and "schedule" in saved:
            try:
                pieces = [SchedulePiece(int(p["from_step"]), int(p["steps"]), float(p["lr"]))
                          for p in saved["schedule"]]
            except (KeyError, TypeError, ValueError) as err:
                raise PretrainError(f"run.json's schedule is damaged ({type(err).__name__}: {err})") from None
            if not pieces or pieces[0].from_step != 0 or (pieces[-1].steps, pieces[-1].lr) != (args.steps, args.lr):
                raise PretrainError("run.json's schedule does not agree with its steps and lr; it was edited")
        return cls(args.warmup, pieces)

    def __call__(self, i: int) -> float:
        piece = [p for p in self.pieces if p.from_step <= i][-1]
        return linear_warmup_decay(i, piece.lr, int(self.warmup * piece.steps), piece.steps)

    @property
    def current(self) -> SchedulePiece:
        return self.pieces[-1]

    def change(self, start: int, steps: int, lr: float) -> bool:
        """From step `start` on, a run of `steps` steps with peak `lr` (no change: pieces kept); whether it
        changed."""
        if (steps, lr) == (self.current.steps, self.current.lr):
            return False
        kept = [p for p in self.pieces if p.from_step < start]
        if kept and (kept[-1].steps, kept[-1].lr) == (steps, lr):
            self.pieces = kept                          # back to the piece in force before
        else:
            self.pieces = kept + [SchedulePiece(start, steps, lr)]
        return True

    def to_json(self) -> list[dict]:
        return [dataclasses.asdict(p) for p in self.pieces]


def run_json(args: PretrainArgs, schedule: LearningRateSchedule) -> dict:
    """What run.json holds: the settings, and the schedule's pieces if a resume changed it."""
    saved = dataclasses.asdict(args)
    if len(schedule.pieces) > 1:
        saved["schedule"] = schedule.to_json()
    return saved


def describe_resume(saved: PretrainArgs, args: PretrainArgs, start: int,
                    schedule: LearningRateSchedule) -> list[str]:
    """What a resume changed, one line per setting (nothing when it changed none)."""
    lines = []
    if args.steps != saved.steps:
        lines.append(f"--steps {args.steps}: the schedule now decays to 0 at step {args.steps} (was {saved.steps})")
    if args.lr != saved.lr:
        lines.append(f"--lr {args.lr:g}: the peak learning rate from step {start + 1} on (was {saved.lr:g})")
    if lines and start < args.steps:
        lines[-1] += f"; step {start + 1} runs at lr {schedule(start):.3g}"
    lines += [f"{checks.flag_name(k)} {getattr(args, k)} (was {getattr(saved, k)})"
              for k in ("checkpoint_every", "keep") if getattr(args, k) != getattr(saved, k)]
    return lines


def describe_settings(args: PretrainArgs) -> str:
    """The settings that differ from the defaults, short: corpus=alice.txt, steps=12, ..."""
    defaults = PretrainArgs()
    shown = [f"{k}={v}" for k, v in dataclasses.asdict(args).items()
             if k not in ("out", "progress") and v != getattr(defaults, k)]
    return ", ".join(shown) + " (the rest at their defaults)" if shown else "all at their defaults"


def describe_evaluation(result: dict) -> str:
    """Each held-out figure beside its context-free baseline (in parentheses), one line per head."""
    r = result
    lines = [f"masked LM: accuracy {r['eval_mlm_accuracy']:.3f} (most frequent word "
             f"{r['eval_mlm_accuracy_most_frequent']:.3f}, unigram guess {r['eval_mlm_accuracy_unigram']:.3f}), "
             f"perplexity {r['eval_perplexity']:.1f} (unigram {r['eval_perplexity_unigram']:.1f})"]
    if "eval_mlm_accuracy_at_mask" in r:
        lines.append(f"  at the [MASK] inputs alone: accuracy {r['eval_mlm_accuracy_at_mask']:.3f} (most frequent "
                     f"word {r['eval_mlm_accuracy_at_mask_most_frequent']:.3f})")
    lines.append(f"next sentence: accuracy {r['eval_nsp_accuracy']:.3f} (majority class "
                 f"{r['eval_nsp_accuracy_majority']:.3f})")
    return "held-out\n  " + "\n  ".join(lines)


def verdict(result: dict) -> list[str]:
    """What the last evaluation says, in words: how far above its context-free baselines the model is."""
    r = result
    mlm, most = r["eval_mlm_accuracy"], r["eval_mlm_accuracy_most_frequent"]
    lines = [f"masked LM: held-out accuracy {mlm:.3f}, {mlm / max(most, 1e-9):.1f}x always guessing the most frequent "
             f"word ({most:.3f}); perplexity {r['eval_perplexity']:.0f} against the unigram model's "
             f"{r['eval_perplexity_unigram']:.0f}."]
    if "eval_mlm_accuracy_at_mask" in r:
        at, at_most = r["eval_mlm_accuracy_at_mask"], r["eval_mlm_accuracy_at_mask_most_frequent"]
        lines.append(f"  At the [MASK] inputs alone (no token to copy) {at:.3f}, {at / max(at_most, 1e-9):.1f}x the "
                     f"most frequent word ({at_most:.3f}): "
                     + ("the context is starting to help." if at > 1.2 * at_most else
                        "still hardly more than word frequencies: train longer."))
    nsp, majority = r["eval_nsp_accuracy"], r["eval_nsp_accuracy_majority"]
    if nsp > majority + 0.02:
        lines.append(f"next sentence: {nsp:.3f}, above always answering the majority class ({majority:.3f}).")
    else:
        lines.append(f"next sentence: {nsp:.3f}, no better than always answering the majority class ({majority:.3f}) "
                     f"yet; it takes longer runs (docs/pretraining.md: BERT-mini on 16 books, 1 hour: 63%).")
    return lines


def run_inputs(args: PretrainArgs) -> list[tuple[str, str | None]]:
    """(flag, path) of every file a run reads: its --out may not be, contain or lie inside any of them."""
    return [("--corpus", args.corpus), ("--eval-corpus", args.eval_corpus), ("--vocab", args.vocab),
            ("--config", None if args.config in PRESETS else args.config)]


def run(args: PretrainArgs, resume: bool = False, stream=print, callback=None, overwrite: bool = False,
        group=SINGLE) -> dict:
    """Pretrain (or continue the run in args.out with resume=True); return the last evaluation's metrics.

    Writes into args.out: run.json, vocab.txt, config.json, data/, log.jsonl, checkpoints/ and
    model.safetensors (the curves are drawn from log.jsonl by minibert.viz.plot_pretraining).
    callback(row): called with every log row as it is written.

    Validate, then work: the settings (check_settings), args.out (the rules below) and every input (the
    corpus is read, a --vocab loaded and matched with the config) are checked before anything is
    written, so a refused run leaves nothing behind.
    args.out is then claimed (minibert/files.py): a folder holding anything but a pretraining run, or
    one of the run's inputs, is refused; so is a run that has checkpoints or a model, unless resume
    (continue it) or overwrite (replace it: it says so, then empties the folder). The folder stays
    locked (RUN/.lock) until the run ends: a second process writing there is refused.

    group: a data-parallel ProcessGroup (train/distributed.py): rank 0 checks, claims and writes the
    folder as above; the other ranks read what it set up (the vocabulary, the cached instances), train
    their share of every batch and write nothing.
    """
    if group.distributed:
        check_batch(args.batch_size, args.accumulate, group.size)
    if not group.is_main:
        check_settings(args)
        return _run(args, load_documents(args), resume, stream, callback, group)
    run_dir, inputs = Path(args.out), run_inputs(args)
    check_out_folder(run_dir, PRETRAINING_RUN, inputs=inputs, resume=resume, overwrite=overwrite)
    check_settings(args)
    if not overwrite:                                    # (what --overwrite replaces is not checked against)
        _check_run_folder(args, run_dir, resume)
    documents = load_documents(args)                     # a corpus that cannot be read: an error before any write
    if not resume:
        check_vocabulary(args)
    with claim_run_folder(run_dir, PRETRAINING_RUN, inputs=inputs, resume=resume, overwrite=overwrite, say=stream):
        return _run(args, documents, resume, stream, callback, group)


def _run(args: PretrainArgs, documents, resume: bool, stream, callback, group=SINGLE) -> dict:
    """The run itself, in a folder this process has claimed (rank 0); documents: load_documents(args)."""
    run_dir, main = Path(args.out), group.is_main
    if main:
        args = _check_run_folder(args, run_dir, resume)  # again, under the lock: another process may have written
        run_dir.mkdir(parents=True, exist_ok=True)
    else:
        stream = _silent                                 # rank 0 says everything once
    train_docs, eval_docs = documents
    if resume:        # run.json is rewritten once the checkpoint's step is known, with the schedule's new piece
        saved = load_run_args(run_dir, args.progress)    # (every rank reads it before rank 0 rewrites it)
        schedule = LearningRateSchedule.of(saved, read_json(run_dir / "run.json"))
        stream(f"resuming {run_dir}; settings from its run.json: {describe_settings(saved)}")
    else:
        schedule = LearningRateSchedule.of(args)
        if main:
            write_json(run_dir / "run.json", run_json(args, schedule))

    if main:
        tokenizer, config, train, held = _set_up(args, train_docs, eval_docs, run_dir, stream)
    group.barrier()                                      # rank 0 has written the vocabulary and the instances
    if not main:
        tokenizer, config, train, held = _read_set_up(args, run_dir)
    n_train = len(train["input_ids"])

    baselines = context_free_baselines(train, held, config.vocab_size, args.batch_size * args.eval_batches,
                                       tokenizer.mask_token_id)
    if main:
        write_json(run_dir / "baselines.json", {**baselines, "unigram_top": unigram_top(train, tokenizer)})
    model = BertForPreTraining(config, seed=args.seed, dtype=args.dtype).train()
    group.seed_dropout(model, args.seed)                 # rank r > 0: a dropout stream of its own
    optimizer = AdamW(model.params, lr=args.lr, weight_decay=args.weight_decay, variant=args.optimizer)
    loop = TrainingLoop(
        model, PRETRAINING, optimizer, run_dir, max_grad_norm=args.max_grad_norm, lr_at=schedule,
        evaluate=lambda: {**evaluate(model, held, args.batch_size, args.eval_batches, tokenizer.mask_token_id),
                          **baselines},
        describe=describe_evaluation,
        eval_every=args.eval_every, checkpoint_every=args.checkpoint_every, keep=args.keep,
        checkpoint_state=lambda: {"config": config.to_dict()}, step_metrics=PRETRAINING.step_metrics,
        progress=args.progress, desc="pretrain", callback=callback, write=stream, group=group)
    start = loop.resume() if resume else 0
    if resume:
        schedule.change(start, args.steps, args.lr)
        for line in describe_resume(saved, args, start, schedule):
            stream(line)
        if main:
            write_json(run_dir / "run.json", run_json(args, schedule))
        if start == args.steps:
            stream(f"the run is at its last step ({start}) already: no step to train")
    stream(f"pretraining BERT ({config.num_hidden_layers} layers, hidden {config.hidden_size}, "
           f"{model.num_parameters():,} parameters, vocab {config.vocab_size}) on {n_train:,} instances, "
           f"{len(held['input_ids']):,} held out; backend {backend.name()}"
           + (f"; {group.size} ranks (data-parallel), {args.batch_size} sequences per step in all" if group.distributed
              else ""))
    plan = [(None, step_rows(step, args.batch_size, n_train, args.seed)) for step in range(args.steps)]
    # one process: rows[i*m:(i+1)*m] for m = batch_size / accumulate; rank r: its share, in as many pieces
    summary = loop.run(plan, lambda rows: [get_batch(train, r) for r in group.micro_rows(rows, args.accumulate, args.batch_size)],
                       start=start)
    if main:
        save_arrays(run_dir / "model.safetensors", model.params, metadata={"format": "pt", "step": args.steps})
    stream(f"saved the model to {run_dir / 'model.safetensors'}")
    return summary["last_eval"]


def _set_up(args: PretrainArgs, train_docs, eval_docs, run_dir: Path, stream):
    """(tokenizer, config, train, held): the vocabulary (learned or reused), the config and the instances,
    written into the run folder (rank 0, or the one process)."""
    tokenizer, reused = build_tokenizer(args, train_docs, run_dir, write=stream)
    config = build_config(args, len(tokenizer))
    config.save(run_dir)
    data = run_dir / "data"              # the arrays of a vocabulary made again are made again too
    train = build_features(args, train_docs, tokenizer, args.seed, args.dupe_factor, data / "train.npz",
                           write=stream, reuse=reused)
    held = build_features(args, eval_docs, tokenizer, args.seed + 1, args.eval_dupe_factor, data / "eval.npz",
                          write=stream, reuse=reused)
    return tokenizer, config, train, held


def _read_set_up(args: PretrainArgs, run_dir: Path):
    """What _set_up wrote, read back (a data-parallel rank other than 0, after rank 0 wrote it)."""
    tokenizer = saved_tokenizer(run_dir)
    if not isinstance(tokenizer, BertTokenizer):
        raise DistributedError(f"rank 0 set up {run_dir} but this rank cannot read its vocabulary ({tokenizer}); "
                               f"every rank must see the same --out folder (a shared file system)")
    config = build_config(args, len(tokenizer))
    features = [cached_features(run_dir / "data" / name, args.seq_len, len(tokenizer))
                for name in ("train.npz", "eval.npz")]
    for f in features:
        if not isinstance(f, dict):
            raise DistributedError(f"this rank cannot read the instances rank 0 wrote: {f}")
    return tokenizer, config, *features


def _silent(text) -> None:
    """The messages of a rank other than 0: not shown."""
