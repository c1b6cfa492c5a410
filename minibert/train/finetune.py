"""Fine-tune BERT on a task: sentence (pair) classification, token classification, extractive QA.

    python -m minibert finetune --task sst2 --train ../shared/data/sst2/train.tsv \\
        --dev ../shared/data/sst2/dev.tsv --train-limit 8000 --epochs 1 --out runs/sst2
    python -m minibert predict --model runs/sst2 "a gorgeous, witty, seductive movie."

The loop is the pretraining loop's pieces, reused (not copied): AdamW with no
decay on biases and LayerNorm weights, `linear_warmup_decay` (10% warm-up then
linear decay, as in the BERT paper's fine-tuning recipe and transformers'
Trainer), `apply_gradients` (clip by global norm, optional loss scaling for
`--fp16`), exact gradient accumulation by loss weights, atomic safetensors
files. What is new here:

- a *task* (below) knows its reader, its head, its loss weights and its metric;
- evaluation on the dev set every epoch (and every `--eval-every` steps),
  the best model (by the task's metric) kept in `RUN_DIR/best/`, early stopping
  after `--patience` evaluations without improvement;
- `RUN_DIR/log.jsonl` (one row per step and per evaluation), `metrics.json`
  (the best dev scores), `curves.png` (train vs dev loss and the dev metric per
  evaluation: overfitting shows as dev loss going up while train loss goes
  down) and, for classification, `confusion.png`.

Legend: B batch, T tokens, C labels.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy

from minibert import backend
from minibert.errors import MinibertError
from minibert.model.io import read_json, write_json
from minibert.model.pretrained import default_model_dir
from minibert.tokenization import BertTokenizer
from minibert.train.amp import LossScaler, autocast
from minibert.train.finetune_tasks import TASK_NAMES, get_task
from minibert.train.optim import AdamW, linear_warmup_decay
from minibert.train.step import NonFiniteLossError, apply_gradients
from minibert.viz import plot_confusion, plot_finetuning

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
    epochs: int = field(default=3, metadata={"help": "passes over the training set"})
    lr: float = field(default=3e-5, metadata={
        "help": "peak learning rate (after 10% warm-up, linear decay to 0); small, as the encoder is already "
                "trained (BERT paper: 2e-5 .. 5e-5)"})
    batch_size: int = field(default=32, metadata={"help": "sequences per optimizer step"})
    max_seq_len: int | None = field(default=None, metadata={
        "help": "tokens per sequence (default: the task's, 128; 384 for squad)"})
    train_limit: int | None = field(default=None, metadata={"help": "use the first N training examples only"})
    dev_limit: int | None = field(default=None, metadata={"help": "evaluate on the first N dev examples only"})
    doc_stride: int = field(default=128, metadata={
        "help": "squad: context pieces shared by consecutive windows"})
    split_articles: int | None = field(default=None, metadata={
        "help": "squad: train on the first N articles of --train, evaluate on the others of --dev "
                "(XQuAD: one file, 38 articles train, 10 dev)"})
    warmup: float = field(default=0.1, metadata={"help": "fraction of the steps spent warming up"})
    weight_decay: float = field(default=0.01, metadata={
        "help": "AdamW weight decay (not on biases and LayerNorm)"})
    max_grad_norm: float = field(default=1.0, metadata={
        "help": "clip the gradients' global norm (0: no clipping)"})
    accumulate: int = field(default=1, metadata={
        "help": "micro-batches per step (gradient accumulation; --batch-size must divide by it)"})
    freeze_embeddings: bool = field(default=False, metadata={"help": "freeze the embeddings"})
    freeze_layers: int = field(default=0, metadata={
        "help": "freeze the embeddings and the first K encoder layers (no update, no backward)"})
    fp16: bool = field(default=False, metadata={
        "help": "float16 matmuls with dynamic loss scaling (emulated on NumPy, real on CuPy; "
                "minibert/train/amp.py)"})
    eval_every: int = field(default=0, metadata={
        "help": "steps between dev evaluations (default: 0, once per epoch)"})
    patience: int | None = field(default=None, metadata={
        "help": "early stopping: evaluations without a better dev metric (default: no early stopping)"})
    dropout: float | None = field(default=None, metadata={"help": "classifier dropout (default: the config's)"})
    seed: int = field(default=42, metadata={"help": "seed of the data order, the new head and dropout"})
    dtype: str = field(default="float32", metadata={
        "choices": ["float32", "float64"], "help": "floating-point type of the weights and activations"})
    out: str = field(default="runs/finetune", metadata={"help": "run folder"})
    progress: bool = field(default=True, metadata={"help": "no progress bars"})


class FinetuneError(MinibertError, RuntimeError):
    """A problem with the inputs of a fine-tuning run, said plainly."""


# -- the training step -----------------------------------------------------------------------

def finetune_step(model, task, optimizer, micro_batches, lr, max_grad_norm=1.0, scaler=None, step=None) -> dict:
    """Forward/backward every micro-batch, then `apply_gradients` (clip, AdamW, loss scale).

    Each micro-batch's loss is weighted by its share of what the whole batch's
    loss averages over (labelled sequences, labelled tokens, or questions), so
    K micro-batches give exactly the gradient of one batch of their union.
    """
    counts = [task.loss_count(b) for b in micro_batches]
    total = max(sum(counts), 1)
    model.zero_grad()
    loss = 0.0
    correct = tokens = 0
    with autocast(scaler) as loss_scale:
        for b, n in zip(micro_batches, counts):
            out = task.forward(model, b)
            weight = n / total
            model.backward(weight * loss_scale)                  # backward of (weight * loss) * scale
            loss += weight * float(out["loss"])
            correct += out.get("correct", 0)
            tokens += int(numpy.asarray(b["attention_mask"]).sum())
    if not math.isfinite(loss):
        where = f" at step {step}" if step is not None else ""
        raise NonFiniteLossError(f"loss is {loss}{where}; parameters were not updated")
    update = apply_gradients(model, optimizer, lr, max_grad_norm, scaler)
    return {"loss": loss, "accuracy": correct / total if task.kind == "sequence" else None,
            "lr": lr, "tokens": tokens, **update}


def evaluate(model, task, data, batch_size: int, progress: bool = False) -> dict:
    """Dev loss and the task's metrics, in eval mode (dropout off); the model's mode is restored."""
    from tqdm import tqdm

    loss_sum = count = 0.0
    outputs = []
    starts = range(0, len(data.encoded), batch_size)
    with model.inference():
        for i in tqdm(starts, desc="evaluate", leave=False, disable=not progress):
            b = data.encoded.batch(range(i, min(i + batch_size, len(data.encoded))))
            out = task.forward(model, b)
            n = task.loss_count(b)
            loss_sum += float(out["loss"]) * n
            count += n
            outputs.append(task.host_outputs(out, b))
    return {"dev_loss": loss_sum / max(count, 1), **task.metrics(data, outputs)}


# -- the run -----------------------------------------------------------------------------------

def _model_dir(args: FinetuneArgs) -> Path:
    if args.model is not None:
        return Path(args.model)
    return Path(default_model_dir())


def _batches(n: int, batch_size: int, seed: int, epoch: int):
    """Row indices of each step of an epoch: a fresh permutation per epoch, a pure function of (seed, epoch).
    The last, smaller batch is kept (as a PyTorch DataLoader with drop_last=False)."""
    order = numpy.random.default_rng([seed, epoch]).permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def run(args: FinetuneArgs, stream=print, callback=None) -> dict:
    """Fine-tune; return the best evaluation's metrics (also in RUN_DIR/metrics.json).

    callback(row): called with every log row as it is written (a step's row has "loss", an
    evaluation's has "dev_loss"), e.g. to redraw a live plot in a notebook.
    """
    from tqdm import tqdm


    if args.batch_size % args.accumulate:
        raise FinetuneError(f"--batch-size {args.batch_size} must be divisible by --accumulate {args.accumulate}")
    if args.fp16 and args.dtype != "float32":
        raise FinetuneError("--fp16 keeps float32 master weights: it cannot be combined with --dtype float64")
    if args.epochs < 1:
        raise FinetuneError(f"--epochs must be at least 1, got {args.epochs}")
    task = get_task(args.task)
    run_dir = Path(args.out)
    model_dir = _model_dir(args)
    if not (model_dir / "config.json").is_file():
        raise FinetuneError(f"--model {model_dir}: no config.json there (a folder with config.json, vocab.txt "
                            f"and model.safetensors, e.g. a pretraining run folder)")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "run.json", dataclasses.asdict(args))

    tokenizer = BertTokenizer.from_pretrained(model_dir)
    max_len = task.max_seq_len = args.max_seq_len or task.default_max_seq_len
    extra = {}
    if task.kind == "span":
        task.doc_stride = args.doc_stride
    if args.split_articles is not None:
        if task.kind != "span":
            raise FinetuneError("--split-articles is for the squad task (articles of a SQuAD JSON file)")
        extra["split_articles"] = args.split_articles
    train = task.load(args.train, tokenizer, max_len, limit=args.train_limit, split="train", **extra)
    dev = task.load(args.dev, tokenizer, max_len, limit=args.dev_limit, split="dev", **extra)
    if not len(train.encoded) or not len(dev.encoded):
        raise FinetuneError(f"nothing to {'train on' if not len(train.encoded) else 'evaluate'}: "
                            f"{train.describe() if not len(train.encoded) else dev.describe()}")
    stream(f"{args.task}: {train.describe()} for training, {dev.describe()} for evaluation")

    model = task.load_model(model_dir, args)
    info = model.loading_info
    if info["missing_keys"]:
        stream(f"new weights, initialised with BERT's rule (this is what fine-tuning trains first): "
               f"{', '.join(info['missing_keys'])}")
    if info["unexpected_keys"]:
        stream(f"weights of {model_dir} not used by {type(model).__name__}: {', '.join(info['unexpected_keys'][:6])}"
               f"{' ...' if len(info['unexpected_keys']) > 6 else ''}")
    model.train()
    if not 0 <= args.freeze_layers <= model.config.num_hidden_layers:
        raise FinetuneError(f"--freeze-layers {args.freeze_layers}: the model has "
                            f"{model.config.num_hidden_layers} encoder layers")
    if args.freeze_embeddings or args.freeze_layers:
        # bottom-up: freezing layers 0..K-1 freezes the embeddings below them too, so the backward
        # can stop at layer K (nothing below it needs a gradient)
        model.freeze(embeddings=True, layers=args.freeze_layers)
    optimizer = AdamW(model.params, lr=args.lr, weight_decay=args.weight_decay, frozen=model.frozen_names())
    scaler = LossScaler() if args.fp16 else None

    epochs = [_batches(len(train.encoded), args.batch_size, args.seed, e) for e in range(args.epochs)]
    total_steps = sum(len(e) for e in epochs)
    warmup_steps = int(args.warmup * total_steps)
    micro = args.batch_size // args.accumulate
    trainable = sum(int(numpy.prod(v.shape)) for k, v in model.params.items() if k not in optimizer.frozen)
    stream(f"fine-tuning {type(model).__name__} ({model.num_parameters():,} parameters, {trainable:,} trained) "
           f"for {total_steps} steps ({args.epochs} epochs of {len(epochs[0])}), warm-up {warmup_steps}, "
           f"backend {backend.name()}{', fp16 with loss scaling' if scaler else ''}")

    log_path = run_dir / "log.jsonl"
    best, best_value, evals_without_gain = None, -math.inf, 0
    since_eval = []                                            # train losses since the last evaluation
    step = 0
    bar = tqdm(total=total_steps, desc=f"finetune {args.task}", unit="step", disable=not args.progress,
               dynamic_ncols=True)
    stop = False
    with open(log_path, "w", encoding="utf-8", buffering=1) as log:
        for epoch, batches in enumerate(epochs):
            for rows in batches:
                t0 = time.perf_counter()
                micro_batches = [train.encoded.batch(rows[i:i + micro]) for i in range(0, len(rows), micro)]
                lr = linear_warmup_decay(step, args.lr, warmup_steps, total_steps)
                m = finetune_step(model, task, optimizer, micro_batches, lr, args.max_grad_norm, scaler, step + 1)
                step += 1
                dt = time.perf_counter() - t0
                row = {"step": step, "epoch": epoch + 1, "loss": m["loss"], "lr": lr, "grad_norm": m["grad_norm"],
                       "tokens_per_s": m["tokens"] / dt, "seconds": dt}
                if scaler is not None:
                    row.update(loss_scale=m["loss_scale"], skipped=m["skipped"],
                               skipped_steps=scaler.skipped_steps)
                log.write(json.dumps(row) + "\n")
                if callback is not None:
                    callback(row)
                since_eval.append(m["loss"])
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{m['loss']:.3f}", lr=f"{lr:.1e}", refresh=False)
                end_of_epoch = rows is batches[-1]
                if (args.eval_every and step % args.eval_every == 0) or end_of_epoch:
                    result = evaluate(model, task, dev, args.batch_size, progress=args.progress)
                    result = {"step": step, "epoch": epoch + 1, "train_loss": float(numpy.mean(since_eval)),
                              **result}
                    since_eval = []
                    log.write(json.dumps({k: v for k, v in result.items() if not k.startswith("_")}) + "\n")
                    if callback is not None:
                        callback(result)
                    value = result[task.metric]
                    improved = value > best_value
                    if improved:
                        best, best_value, evals_without_gain = result, value, 0
                        save_model(model, tokenizer, task, run_dir / "best")
                    else:
                        evals_without_gain += 1
                    bar.write(f"step {step} (epoch {epoch + 1}): dev loss {result['dev_loss']:.4f}, "
                              f"{task.describe_metrics(result)}{'  (best so far)' if improved else ''}")
                    if args.patience is not None and evals_without_gain >= args.patience:
                        bar.write(f"early stopping: no better dev {task.metric} in {args.patience} evaluations")
                        stop = True
                        break
            if stop:
                break
    bar.close()
    summary = {"task": args.task, "metric": task.metric, "best_step": best["step"], "best_epoch": best["epoch"],
               "steps_run": step, "skipped_steps": scaler.skipped_steps if scaler else 0,
               **{k: v for k, v in best.items() if k not in ("step", "epoch") and not k.startswith("_")}}
    write_json(run_dir / "metrics.json", summary)
    plot_finetuning(run_dir)
    if task.kind == "sequence" and "_confusion" in best:
        plot_confusion(best["_confusion"], task.label_names, run_dir / "confusion.png",
                       title=f"{args.task} dev, step {best['step']}")
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
    info = read_json(folder / "task.json")
    task = get_task(info["task"])
    if info.get("doc_stride"):
        task.doc_stride = info["doc_stride"]
    task.max_seq_len = info.get("max_seq_len") or task.default_max_seq_len
    model = task.head.from_pretrained(folder, require_head=True)
    return task, model.eval(), BertTokenizer.from_pretrained(folder)
