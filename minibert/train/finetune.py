"""Fine-tune BERT on a task: sentence (pair) classification, token classification, extractive QA.

    python -m minibert finetune --task sst2 --train ../shared/data/sst2/train.tsv \\
        --dev ../shared/data/sst2/dev.tsv --train-limit 8000 --epochs 1 --out runs/sst2
    python -m minibert predict --model runs/sst2 "a gorgeous, witty, seductive movie."

Fine-tuning runs the same step and loop as pretraining (train/step.py,
train/loop.py): AdamW with no decay on biases and LayerNorm weights,
`linear_warmup_decay` (10% warm-up then linear decay, as in the BERT paper's
fine-tuning recipe and transformers' Trainer), clipping by global norm,
optional loss scaling for `--fp16`, exact gradient accumulation by loss
weights. What fine-tuning plugs in:

- a *task* (train/finetune_tasks.py) knows its reader, its head, its loss weights and its metric;
- evaluation on the dev set every epoch (and every `--eval-every` steps),
  the best model (by the task's metric) kept in `RUN_DIR/best/`, early stopping
  after `--patience` evaluations without improvement;
- `RUN_DIR/log.jsonl` (one row per step and per evaluation) and `metrics.json`
  (the best dev scores; for classification the confusion matrix), from which
  `minibert finetune` draws `curves.png` (train vs dev loss and the dev metric per
  evaluation: overfitting shows as dev loss going up while train loss goes
  down) and, for classification, `confusion.png` (minibert.viz.plot_run);
- checkpoints (`RUN_DIR/checkpoints/step-N`, every `--checkpoint-every` steps and
  after the last) and `--resume`: a run killed at any moment continues from its
  newest checkpoint and ends with the same numbers as one never interrupted (log
  rows, best/ model, metrics.json, final weights). The data order is a pure
  function of (seed, epoch); the loop saves the weights, the optimizer and the
  dropout generator; this module adds the fp16 loss scaler's state, the best
  evaluation's confusion matrix (the loop keeps it) and digests of the training
  and dev features (a changed --train or --dev file is an error, not a silently
  different run: the dev set picks best/ and early stopping).

Legend: B batch, T tokens, C labels.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy

from minibert import backend, checks
from minibert.data.batches import consecutive_batches, epoch_batches
from minibert.errors import MinibertError
from minibert.files import FINETUNING_RUN, check_out_folder, claim_run_folder
from minibert.model.config import BertConfig
from minibert.model.io import CheckpointError, check_vocab_size, read_json, write_json
from minibert.model.pretrained import default_model_dir
from minibert.tokenization import BertTokenizer
from minibert.train.amp import LossScaler
from minibert.train.distributed import SINGLE, check_batch
from minibert.train.finetune_tasks import TASK_NAMES, get_task
from minibert.train.loop import TrainingLoop
from minibert.train.optim import AdamW, linear_warmup_decay
from minibert.train.step import count_totals, loss_weights, train_step

MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


@dataclass
class FinetuneArgs:
    """The settings of a fine-tuning run (saved as run.json); each field is a flag of `minibert finetune`."""
    task: str = field(metadata={"choices": TASK_NAMES, "help": "the task: GLUE (sst2, rte, qnli), NER (wnut17) "
                                                               "or question answering (squad)"})
    train: str = field(metadata={"help": "training file (GLUE TSV, CoNLL, SQuAD JSON)"})
    dev: str = field(metadata={"help": "dev file, evaluated every epoch"})
    model: str | None = field(default=None, metadata={
        "help": "folder with config.json, vocab.txt, model.safetensors (default: the packaged all-MiniLM-L6-v2)"})
    epochs: int = field(default=3, metadata={"check": checks.positive, "help": "passes over the training set"})
    lr: float = field(default=3e-5, metadata={
        "check": checks.finite_positive,
        "help": "peak learning rate (after 10% warm-up, linear decay to 0); small, as the encoder is already "
                "trained (BERT paper: 2e-5 .. 5e-5)"})
    batch_size: int = field(default=32, metadata={"check": checks.positive, "help": "sequences per optimizer step"})
    max_seq_len: int | None = field(default=None, metadata={
        "check": checks.at_least(3),
        "help": "tokens per sequence (default: the task's, 128; 384 for squad)"})
    train_limit: int | None = field(default=None, metadata={
        "check": checks.positive,
        "help": "use the first N training examples only"})
    dev_limit: int | None = field(default=None, metadata={
        "check": checks.positive,
        "help": "evaluate on the first N dev examples only"})
    doc_stride: int = field(default=128, metadata={
        "check": checks.positive,
        "help": "squad: context pieces shared by consecutive windows"})
    split_articles: int | None = field(default=None, metadata={
        "check": checks.positive,
        "help": "squad: train on the first N articles of --train, evaluate on the others of --dev "
                "(XQuAD: one file, 38 articles train, 10 dev)"})
    warmup: float = field(default=0.1, metadata={
        "check": checks.below_one,
        "help": "fraction of the steps spent warming up"})
    weight_decay: float = field(default=0.01, metadata={
        "check": checks.finite_non_negative,
        "help": "AdamW weight decay (not on biases and LayerNorm)"})
    max_grad_norm: float = field(default=1.0, metadata={
        "check": checks.finite_non_negative,
        "help": "clip the gradients' global norm (0: no clipping)"})
    accumulate: int = field(default=1, metadata={
        "check": checks.positive,
        "help": "micro-batches per step (gradient accumulation; --batch-size must divide by it)"})
    freeze_embeddings: bool = field(default=False, metadata={"help": "freeze the embeddings"})
    freeze_layers: int = field(default=0, metadata={
        "check": checks.non_negative,
        "help": "freeze the embeddings and the first K encoder layers (no update, no backward)"})
    fp16: bool = field(default=False, metadata={
        "help": "float16 matmuls with dynamic loss scaling (emulated on NumPy, real on CuPy; "
                "minibert/train/amp.py)"})
    eval_every: int = field(default=0, metadata={
        "check": checks.non_negative,
        "help": "steps between dev evaluations (default: 0, once per epoch)"})
    patience: int | None = field(default=None, metadata={
        "check": checks.positive,
        "help": "early stopping: evaluations without a better dev metric (default: no early stopping)"})
    dropout: float | None = field(default=None, metadata={
        "check": checks.below_one,
        "help": "classifier dropout (default: the config's)"})
    seed: int = field(default=42, metadata={"help": "seed of the data order, the new head and dropout"})
    checkpoint_every: int = field(default=200, metadata={
        "check": checks.positive,
        "help": "steps between checkpoints (and one after the last step), for --resume; 200 steps are minutes "
                "of work on a CPU, while a checkpoint (weights and two Adam moments: 12 bytes a parameter, "
                "273 MB for MiniLM) takes about 0.6 s to write (docs/finetuning.md, \"Interrupted runs\")"})
    keep: int = field(default=2, metadata={
        "check": checks.positive,
        "help": "how many of the newest checkpoints are kept (with 2 or more, a damaged newest one has one "
                "before it)"})
    dtype: str = field(default="float32", metadata={
        "choices": ["float32", "float64"], "help": "floating-point type of the weights and activations"})
    out: str = field(default="runs/finetune", metadata={"help": "run folder"})
    progress: bool = field(default=True, metadata={"help": "no progress bars"})

    def __post_init__(self):
        """Every setting within its declared range ("check" above, minibert/checks.py), before any work."""
        checks.check_fields(self)


class FinetuneError(MinibertError, RuntimeError):
    """A problem with the inputs of a fine-tuning run, said plainly."""


# -- one step, evaluation ------------------------------------------------------------------------

def finetune_step(model, task, optimizer, micro_batches, lr, max_grad_norm=1.0, scaler=None, step=None) -> dict:
    """One optimizer step over the micro-batches: `train_step` with the task as the objective.

    Each micro-batch's loss is weighted by its share of what the whole batch's
    loss averages over (labelled sequences, labelled tokens, or questions), so
    K micro-batches give exactly the gradient of one batch of their union.
    Returns loss, accuracy (sequence tasks; None otherwise), lr, tokens, grad_norm, skipped, loss_scale.
    """
    counts = [task.counts(b) for b in micro_batches]
    m = train_step(model, task, optimizer, micro_batches, loss_weights(counts), lr, max_grad_norm, scaler, step)
    (total,) = count_totals(counts)
    return {"loss": m["loss"], "accuracy": m["correct"]["correct"] / max(total, 1) if task.kind == "sequence" else None,
            "lr": lr, "tokens": m["tokens"], "grad_norm": m["grad_norm"], "skipped": m["skipped"],
            "loss_scale": m["loss_scale"]}


def evaluate(model, task, data, batch_size: int) -> dict:
    """Dev loss and the task's metrics, in inference mode (dropout off, no caches); the model's mode is restored.

    No progress bar of its own: during a run the training loop's bar says "evaluating" (a second bar
    nested in it leaves stray lines wherever the output is not a terminal: a notebook, a log file)."""
    loss_sum = count = 0.0
    outputs = []
    with model.inference():
        for rows in consecutive_batches(len(data.encoded), batch_size):
            b = data.encoded.batch(rows)
            out = task.forward(model, b)
            n = task.loss_count(b)
            loss_sum += float(out["loss"]) * n
            count += n
            outputs.append(task.host_outputs(out, b))
    return {"dev_loss": loss_sum / max(count, 1), **task.metrics(data, outputs)}


# -- the run -----------------------------------------------------------------------------------

def _model_dir(args: FinetuneArgs) -> Path:
    return Path(args.model) if args.model is not None else Path(default_model_dir())


def _check_args(args: FinetuneArgs) -> None:
    """The settings that must fit each other, and the paths, before any work (each setting's own range is
    checked when FinetuneArgs is made)."""
    for flag, path in (("--train", args.train), ("--dev", args.dev)):
        if not Path(path).is_file():
            raise FinetuneError(f"{flag} {path}: {'a folder, not a file' if Path(path).is_dir() else 'no such file'}")
    if args.batch_size % args.accumulate:
        raise FinetuneError(f"--batch-size {args.batch_size} must be divisible by --accumulate {args.accumulate}")
    if args.fp16 and args.dtype != "float32":
        raise FinetuneError("--fp16 keeps float32 master weights: it cannot be combined with --dtype float64")
    if args.split_articles is not None and args.task != "squad":
        raise FinetuneError("--split-articles is for the squad task (articles of a SQuAD JSON file)")


def _checked_tokenizer(model_dir: Path, task, args: FinetuneArgs):
    """The vocabulary of the model in model_dir, checked against its config.json, before any data is read:
    the folder holds a config that fits --max-seq-len and --freeze-layers, and a vocab.txt of vocab_size tokens."""
    if not (model_dir / "config.json").is_file():
        raise FinetuneError(f"--model {model_dir}: no config.json there (a folder with config.json, vocab.txt "
                            f"and model.safetensors, e.g. a pretraining run folder)")
    config = BertConfig.load(model_dir)
    if task.max_seq_len > config.max_position_embeddings:
        given = f"--max-seq-len {task.max_seq_len}" if args.max_seq_len else \
            f"the task's default --max-seq-len {task.max_seq_len}"
        raise FinetuneError(f"{given} is longer than the model's max_position_embeddings="
                            f"{config.max_position_embeddings}: give --max-seq-len {config.max_position_embeddings} "
                            f"or less")
    if args.freeze_layers > config.num_hidden_layers:
        raise FinetuneError(f"--freeze-layers {args.freeze_layers}: the model has {config.num_hidden_layers} encoder "
                            f"layer{'s' if config.num_hidden_layers != 1 else ''}")
    tokenizer = BertTokenizer.from_pretrained(model_dir)
    check_vocab_size(len(tokenizer), config, model_dir / "vocab.txt")
    return tokenizer


def _load_model(task, model_dir: Path, args: FinetuneArgs, stream):
    """The head on the pretrained encoder, in training mode, frozen as asked; says what is new."""
    model = task.load_model(model_dir, args)
    info = model.loading_info
    if info["missing_keys"]:
        stream(f"new weights, initialised with BERT's rule (this is what fine-tuning trains first): "
               f"{', '.join(info['missing_keys'])}")
    if info["unexpected_keys"]:
        stream(f"weights of {model_dir} not used by {type(model).__name__}: {', '.join(info['unexpected_keys'][:6])}"
               f"{' ...' if len(info['unexpected_keys']) > 6 else ''}")
    model.train()
    if args.freeze_embeddings or args.freeze_layers:
        # bottom-up: freezing layers 0..K-1 freezes the embeddings below them too, so the backward
        # can stop at layer K (nothing below it needs a gradient)
        model.freeze(embeddings=True, layers=args.freeze_layers)
    return model


def run(args: FinetuneArgs, stream=print, callback=None, overwrite: bool = False, group=SINGLE,
        resume: bool = False) -> dict:
    """Fine-tune (or continue the run in args.out with resume=True); return the best evaluation's metrics
    (also in RUN_DIR/metrics.json).

    Writes into args.out: run.json, log.jsonl, best/ (the best model so far: weights, config, vocabulary,
    task.json) and metrics.json (curves and confusion matrix: minibert.viz.plot_finetuning, plot_confusion).
    callback(row): called with every log row as it is written (a step's row has "loss", an
    evaluation's has "dev_loss"), e.g. to redraw a live plot in a notebook.

    Validate, then work: the settings, args.out (the rules below) and every input (the model, its
    vocabulary, the data files) are read and checked before anything is written, so a refused run leaves
    nothing behind. args.out is then claimed (minibert/files.py): a folder holding anything but a
    fine-tuning run, or one of the inputs (--model, --train, --dev), is refused; so is an earlier
    fine-tuning run (its best model, metrics or log) unless overwrite (it says so, then empties the
    folder). The folder stays locked (RUN/.lock) until the run ends.

    resume: continue the run in args.out from its newest checkpoint (none yet: from step 0, saying so);
    args must be its run.json's settings but for RESUME_CHANGES (_check_resume: any other that differs is
    named in one error). A run that has ended (metrics.json) is left as it is: it says so and returns
    its metrics.

    group: a data-parallel ProcessGroup (train/distributed.py): every rank reads and checks the inputs,
    rank 0 alone claims and writes the folder; each rank trains its share of every batch.
    """
    _check_args(args)
    if group.distributed:
        check_batch(args.batch_size, args.accumulate, group.size)
    if not group.is_main:
        stream = _silent                     # rank 0 says everything once
    task = get_task(args.task, max_seq_len=args.max_seq_len,
                    doc_stride=args.doc_stride if args.task == "squad" else None)
    model_dir = _model_dir(args)
    inputs = [("--model", model_dir), ("--train", args.train), ("--dev", args.dev)]
    check_out_folder(args.out, FINETUNING_RUN, inputs=inputs, resume=resume, overwrite=overwrite)
    if resume:
        _check_resume(args, Path(args.out))
        if (Path(args.out) / "metrics.json").is_file():
            return _ended(Path(args.out), stream)
    tokenizer = _checked_tokenizer(model_dir, task, args)
    extra = {"split_articles": args.split_articles} if args.split_articles is not None else {}
    train = task.load(args.train, tokenizer, limit=args.train_limit, split="train", **extra)
    dev = task.load(args.dev, tokenizer, limit=args.dev_limit, split="dev", **extra)
    if not len(train.encoded) or not len(dev.encoded):
        raise FinetuneError(f"nothing to {'train on' if not len(train.encoded) else 'evaluate'}: "
                            f"{train.describe() if not len(train.encoded) else dev.describe()}")
    stream(f"{args.task}: {train.describe()} for training, {dev.describe()} for evaluation")
    model = _load_model(task, model_dir, args, stream)
    group.barrier()                          # every rank has checked the folder before rank 0 claims it
    if not group.is_main:
        return _run(args, task, tokenizer, train, dev, model, _silent, None, group, resume=resume)
    with claim_run_folder(args.out, FINETUNING_RUN, inputs=inputs, resume=resume, overwrite=overwrite, say=stream):
        return _run(args, task, tokenizer, train, dev, model, stream, callback, group, resume=resume)


# -- resuming ------------------------------------------------------------------------------------

RESUME_CHANGES = ("checkpoint_every", "keep")      # the settings --resume may change (they change no number)


def load_run_args(run_dir, progress: bool = True) -> FinetuneArgs:
    """The settings of the fine-tuning run in `run_dir`, from its run.json (`progress`: not a setting, the
    caller's), checked as the flags are; a run.json of another kind of run, or edited into settings this
    minibert does not know or accept, is an error naming the file."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise FinetuneError(f"--resume: no run to resume in {run_dir} (no run.json)")
    saved = read_json(path)
    if isinstance(saved, dict) and "teacher" in saved:
        raise FinetuneError(f"{path} is the run.json of a distillation run (`minibert distill`), not of a "
                            f"fine-tuning run")
    settings = checks.settings_from_json(saved, FinetuneArgs, path, FinetuneError, command="finetune")
    return FinetuneArgs(**{**settings, "progress": progress})


def _check_resume(args: FinetuneArgs, run_dir: Path) -> FinetuneArgs:
    """`args` for resuming the run in `run_dir`, checked against its run.json: only the settings of
    RESUME_CHANGES may differ; every other one that differs is named in one error. (The learning-rate
    schedule spans the run's total steps, so --epochs, --batch-size and the data are fixed too.)"""
    checks.check_unchanged(args, load_run_args(run_dir, args.progress), run_dir / "run.json", RESUME_CHANGES,
                           FinetuneError)
    return args


def _ended(run_dir: Path, stream) -> dict:
    """--resume on a run that has ended (its metrics.json is written last): nothing to do; its metrics."""
    metrics = read_json(run_dir / "metrics.json")
    stream(f"the run in {run_dir} has ended already (metrics.json, best/): nothing to resume; use another --out "
           f"or --overwrite to train again")
    return metrics


def features_digest(encoded) -> str:
    """A SHA-256 of encoded features (the training or the dev set's): a checkpoint keeps both, so a resumed
    run on other data (a --train or --dev file changed since) is refused instead of silently being another
    run."""
    text = json.dumps(encoded.features, sort_keys=True,
                      default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _resume_state(scaler, train_digest: str, dev_digest: str):
    """(checkpoint_state, restore_state) for TrainingLoop: what a fine-tuning checkpoint holds besides
    the loop's own (weights, optimizer, dropout generator, the best evaluation's confusion matrix):
    the training and dev features' digests and, with --fp16, the loss scaler (scale, good steps in a row,
    skipped steps: without it a resumed run would scale, and skip, differently)."""
    def checkpoint_state() -> dict:
        state = {"train_digest": train_digest, "dev_digest": dev_digest}
        if scaler is not None:
            state["loss_scaler"] = scaler.state_dict()
        return state

    def restore_state(state: dict) -> None:        # checks first: nothing changes unless all fits
        if state.get("train_digest", train_digest) != train_digest:
            raise FinetuneError("--resume: the training data differ from those the checkpoints were trained on "
                                "(the --train file changed since?); restore it, or start a new run with "
                                "another --out")
        if state.get("dev_digest", dev_digest) != dev_digest:   # (a checkpoint of before dev digests: none)
            raise FinetuneError("--resume: the dev data differ from those the run evaluated on so far (the --dev "
                                "file changed since?): best/ and early stopping would compare scores on "
                                "different sets; restore it, or start a new run with another --out")
        if scaler is None:
            return
        try:
            scaler.load_state_dict(state["loss_scaler"])          # checks all, then sets
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"state.json has no usable loss_scaler state ({type(err).__name__}: {err})") \
                from None
    return checkpoint_state, restore_state


def _silent(text) -> None:
    """The messages of a rank other than 0: not shown (rank 0 says them once)."""


def _run(args: FinetuneArgs, task, tokenizer, train, dev, model, stream, callback, group=SINGLE,
         objective=None, resume: bool = False, check_resume=None) -> dict:
    """The run itself, in a folder this process has claimed (rank 0), on inputs read and checked before.

    objective: what the training step optimises (train/step.py), by default the task's own loss;
    distillation (train/distill.py) passes its own, evaluated and saved as the task's.
    resume: continue from the newest checkpoint in args.out (run() has checked the settings with
    check_resume(args, run_dir), by default _check_resume; distillation checks its own run.json)."""
    run_dir, main = Path(args.out), group.is_main
    group.seed_dropout(model, args.seed)     # rank r > 0: a dropout stream of its own
    if main and resume:                      # again, under the lock: another process may have written
        (check_resume or _check_resume)(args, run_dir)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:                       # resumed: rewritten below, once the checkpoint is read
            write_json(run_dir / "run.json", dataclasses.asdict(args))
    optimizer = AdamW(model.params, lr=args.lr, weight_decay=args.weight_decay, frozen=model.frozen_names())
    scaler = LossScaler() if args.fp16 else None
    plan = [(epoch + 1, rows) for epoch in range(args.epochs)
            for rows in epoch_batches(len(train.encoded), args.batch_size, args.seed, epoch)]
    total_steps = len(plan)
    warmup_steps = int(args.warmup * total_steps)
    trainable = sum(int(numpy.prod(v.shape)) for k, v in model.params.items() if k not in optimizer.frozen)
    stream(f"fine-tuning {type(model).__name__} ({model.num_parameters():,} parameters, {trainable:,} trained) "
           f"for {total_steps} steps ({args.epochs} {'epoch' if args.epochs == 1 else 'epochs'} of "
           f"{total_steps // args.epochs}), warm-up {warmup_steps}, backend {backend.name()}"
           f"{', fp16 with loss scaling' if scaler else ''}"
           + (f"; {group.size} ranks (data-parallel), {args.batch_size} sequences per step in all"
              if group.distributed else ""))

    checkpoint_state, restore_state = _resume_state(scaler, features_digest(train.encoded),
                                                    features_digest(dev.encoded))
    loop = TrainingLoop(
        model, task if objective is None else objective, optimizer, run_dir,
        step_metrics=getattr(objective, "step_metrics", None), max_grad_norm=args.max_grad_norm, scaler=scaler,
        checkpoint_every=args.checkpoint_every, keep=args.keep, checkpoint_state=checkpoint_state,
        restore_state=restore_state,
        lr_at=lambda i: linear_warmup_decay(i, args.lr, warmup_steps, total_steps),
        evaluate=lambda: evaluate(model, task, dev, args.batch_size),
        describe=lambda r: f"dev loss {r['dev_loss']:.4f}, {task.describe_metrics(r)}",
        eval_every=args.eval_every, metric=task.metric, patience=args.patience,
        save_best=lambda folder: save_model(model, tokenizer, task, folder),
        progress=args.progress, desc=f"finetune {args.task}", callback=callback, write=stream, group=group)
    start = loop.resume() if resume else 0
    if main and resume:
        write_json(run_dir / "run.json", dataclasses.asdict(args))     # with the new --checkpoint-every, --keep
    # one process: rows[i*m:(i+1)*m] for m = batch_size / accumulate; rank r: its share, in as many pieces
    done = loop.run(plan, lambda rows: [train.encoded.batch(r)
                                        for r in group.micro_rows(rows, args.accumulate, args.batch_size)],
                    start=start)
    best = done["best"]
    summary = {"task": args.task, "metric": task.metric, "best_step": best["step"], "best_epoch": best["epoch"],
               "steps_run": done["steps_run"], "skipped_steps": scaler.skipped_steps if scaler else 0,
               **{k: v for k, v in best.items() if k not in ("step", "epoch") and not k.startswith("_")}}
    if "_confusion" in best:                  # classification: the best evaluation's confusion matrix
        summary.update(confusion=best["_confusion"], label_names=list(task.label_names))
    if main:
        write_json(run_dir / "metrics.json", summary)
    stream(f"best dev {task.describe_metrics(best)} at step {best['step']}; model in {run_dir / 'best'}, "
           f"metrics in {run_dir / 'metrics.json'}")
    return summary


def save_model(model, tokenizer, task, folder: Path) -> None:
    """The model (safetensors + config.json with id2label/label2id), its vocabulary and task.json."""
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_json(folder / "task.json", {"task": task.name, "kind": task.kind, "max_seq_len": task.max_seq_len,
                                      "doc_stride": getattr(task, "doc_stride", None)})


def load_finetuned(folder):
    """(task, model, tokenizer) from a run folder (its best/ model) or a saved model folder."""

    folder = Path(folder)
    if (folder / "best" / "task.json").is_file():
        folder = folder / "best"
    if not (folder / "task.json").is_file():
        raise FinetuneError(f"{folder} has no task.json: not a folder written by `minibert finetune` "
                            f"(expected RUN_DIR or RUN_DIR/best)")
    task = _task_of(folder / "task.json")
    model = task.head.from_pretrained(folder, require_head=True)
    tokenizer = BertTokenizer.from_pretrained(folder)
    check_vocab_size(len(tokenizer), model.config, folder / "vocab.txt")
    return task, model.eval(), tokenizer


def _task_of(path: Path):
    """The task a fine-tuned model was trained for, from its task.json (written by save_model), checked."""
    info = read_json(path)
    if not isinstance(info, dict):
        raise FinetuneError(f"{path} should hold a JSON object such as {{\"task\": \"sst2\", ...}}, found "
                            f"{json_preview(info)}; `minibert finetune` writes it")
    if not isinstance(info.get("task"), str):
        raise FinetuneError(f"{path} has no \"task\" (the task the model was fine-tuned for, e.g. \"sst2\"); "
                            f"`minibert finetune` writes it")
    if info["task"] not in TASK_NAMES:
        raise FinetuneError(f"{path} names an unknown task {info['task']!r}; minibert's tasks are "
                            f"{', '.join(TASK_NAMES)}")
    for key, least in (("max_seq_len", 3), ("doc_stride", 1)):
        value = info.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise FinetuneError(f"{path}: {key} must be an integer >= {least} (or null), got {value!r}")
    doc_stride = info.get("doc_stride") if info["task"] == "squad" else None
    return get_task(info["task"], max_seq_len=info.get("max_seq_len"), doc_stride=doc_stride)


def json_preview(value, width: int = 60) -> str:
    """A short JSON rendering of `value` for a message."""
    text = json.dumps(value)
    return text if len(text) <= width else text[:width - 3] + "..."
