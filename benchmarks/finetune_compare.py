"""Fine-tuning, minibert and transformers side by side: the same features, data order, initial
weights (the packaged all-MiniLM-L6-v2 plus minibert's freshly initialised head, copied by name),
AdamW settings, warm-up/decay schedule, clipping, number of steps and evaluation points.

    python benchmarks/finetune_compare.py minibert sst2 --out runs/ft --train-limit 20000 --epochs 1
    python benchmarks/finetune_compare.py reference sst2 --out runs/ft      # reads runs/ft/sst2/minibert/run.json
    python benchmarks/finetune_compare.py minibert sst2 --out runs/ft --train-limit 20000 --epochs 1 \\
        --freeze-layers 4 --variant freeze4                                  # variants: minibert only
    python benchmarks/finetune_compare.py report --out runs/ft [--plot curves.png]

The minibert side is `minibert.train.finetune.run` (what `python -m minibert finetune` runs). The reference
is a plain loop over transformers' BertForSequenceClassification / BertForTokenClassification /
BertForQuestionAnswering with torch.optim.AdamW; its dev predictions go through minibert's task
metrics (the same post-processing and scoring code for both sides). Dropout is on in both (their
random masks differ), so the two runs are equal in distribution, not bit for bit; the
deterministic, dropout-off equality is a test (tests/train/test_finetune.py). Each side writes
OUT/TASK/SIDE/result.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import hf_config  # noqa: E402

DATA = REPO.parent / "shared" / "data"
FILES = {"sst2": ("sst2/train.tsv", "sst2/dev.tsv"), "rte": ("rte/train.tsv", "rte/dev.tsv"),
         "wnut17": ("wnut17/train.conll", "wnut17/test.conll"),
         "squad": ("xquad/xquad.en.json", "xquad/xquad.en.json")}          # with split_articles=38


def _median_seconds(log_path: Path) -> float:
    rows = [json.loads(x) for x in log_path.read_text().splitlines()]
    return float(np.median([r["seconds"] for r in rows if "seconds" in r]))


def run_minibert(task: str, out: Path, variant: str, overrides: dict) -> dict:
    from minibert.train.finetune import FinetuneArgs, run
    train, dev = overrides.pop("train", None), overrides.pop("dev", None)
    if train is None:
        train, dev = (str(DATA / f) for f in FILES[task])
    if task == "squad":
        overrides.setdefault("split_articles", 38)
    args = FinetuneArgs(task=task, train=train, dev=dev, out=str(out / task / variant), **overrides)
    start = time.time()
    best = run(args)
    result = {"side": "minibert" + ("" if variant == "minibert" else f" ({variant})"), "task": task,
              "wall_seconds": time.time() - start,
              "seconds_per_step": _median_seconds(Path(args.out) / "log.jsonl"), **best}
    (Path(args.out) / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


def _torch_model(task, minibert_model):
    """transformers' model of the task's class, with minibert's initial parameters (copied by name)."""
    import torch
    import transformers

    cls = getattr(transformers, type(minibert_model).__name__)
    cfg = hf_config(minibert_model.config)
    ref = cls(cfg)
    state = {k: torch.tensor(np.asarray(v)) for k, v in minibert_model.params.items()}
    missing, unexpected = ref.load_state_dict(state, strict=False)
    assert not unexpected and all("position_ids" in k for k in missing), (missing, unexpected)
    return ref


def _torch_forward(task, ref, b, with_labels=True):
    import torch
    inputs = {k: torch.tensor(b[k]) for k in ("input_ids", "token_type_ids", "attention_mask")}
    if with_labels:
        for k in ("labels", "start_positions", "end_positions"):
            if k in b and not isinstance(b[k], list):
                inputs[k] = torch.tensor(b[k])
    out = ref(**inputs)
    host = {"loss": out.loss}
    if task.kind == "span":
        host.update(start_logits=out.start_logits.detach().numpy(), end_logits=out.end_logits.detach().numpy())
    else:
        host["logits"] = out.logits.detach().numpy()
    return host


def run_reference(task_name: str, out: Path, threads: int) -> dict:
    import torch
    from minibert.data.batches import epoch_batches
    from minibert.train.finetune import FinetuneArgs, _model_dir
    from minibert.train.finetune_tasks import get_task
    from minibert.train.optim import decays, linear_warmup_decay
    from minibert.tokenization import BertTokenizer

    torch.set_num_threads(threads)
    args = FinetuneArgs(**json.loads((out / task_name / "minibert" / "run.json").read_text()))
    task = get_task(task_name, max_seq_len=args.max_seq_len,
                    doc_stride=args.doc_stride if task_name == "squad" else None)
    model_dir = _model_dir(args)
    tokenizer = BertTokenizer.from_pretrained(model_dir)
    extra = {"split_articles": args.split_articles} if args.split_articles is not None else {}
    train = task.load(args.train, tokenizer, limit=args.train_limit, split="train", **extra)
    dev = task.load(args.dev, tokenizer, limit=args.dev_limit, split="dev", **extra)
    ref = _torch_model(task, task.load_model(model_dir, args))          # same initial head as minibert's
    ref.train()
    opt = torch.optim.AdamW([{"params": [p for n, p in ref.named_parameters() if decays(n)],
                              "weight_decay": args.weight_decay},
                             {"params": [p for n, p in ref.named_parameters() if not decays(n)], "weight_decay": 0.0}],
                            lr=args.lr, eps=1e-8)
    epochs = [epoch_batches(len(train.encoded), args.batch_size, args.seed, e) for e in range(args.epochs)]
    total = sum(len(e) for e in epochs)
    warmup = int(args.warmup * total)
    evals, seconds, step = [], [], 0
    for epoch, batches in enumerate(epochs):
        for rows in batches:
            t0 = time.perf_counter()
            for g in opt.param_groups:
                g["lr"] = linear_warmup_decay(step, args.lr, warmup, total)
            opt.zero_grad()
            loss = _torch_forward(task, ref, train.encoded.batch(rows))["loss"]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ref.parameters(), args.max_grad_norm)
            opt.step()
            step += 1
            seconds.append(time.perf_counter() - t0)
            if step % 50 == 0:
                print(f"reference {task_name} step {step}/{total} loss {loss.item():.4f}", flush=True)
            if (args.eval_every and step % args.eval_every == 0) or rows is batches[-1]:
                evals.append({"step": step, "epoch": epoch + 1, **evaluate_torch(task, ref, dev, args.batch_size)})
                print(f"reference step {step}: {task.describe_metrics(evals[-1])}", flush=True)
    best = max(evals, key=lambda r: r[task.metric])
    result = {"side": "transformers", "task": task_name, "seconds_per_step": float(np.median(seconds)),
              "steps_run": step, "best_step": best["step"], "metric": task.metric,
              **{k: v for k, v in best.items() if not k.startswith("_") and k not in ("step", "epoch")},
              "evaluations": [_scalars(e) for e in evals]}          # every evaluation, for the plot
    folder = out / task_name / "reference"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


def _scalars(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("_") and isinstance(v, (int, float))}


def evaluate_torch(task, ref, data, batch_size):
    import torch
    ref.eval()
    loss_sum = count = 0.0
    outputs = []
    with torch.no_grad():
        for i in range(0, len(data.encoded), batch_size):
            b = data.encoded.batch(range(i, min(i + batch_size, len(data.encoded))))
            out = _torch_forward(task, ref, b)
            n = task.loss_count(b)
            loss_sum += out["loss"].item() * n
            count += n
            outputs.append(task.host_outputs(out, b))
    ref.train()
    return {"dev_loss": loss_sum / max(count, 1), **task.metrics(data, outputs)}


def report(out: Path, plot: str | None = None):
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("*/*/result.json"))]
    if plot:
        plot_curves(out, plot)
    keys = ["accuracy", "precision", "recall", "f1", "exact_match"]
    print(f"{'task':8} {'side':28} {'steps':>6} {'s/step':>7} " + " ".join(f"{k:>11}" for k in keys))
    for r in sorted(rows, key=lambda r: (r["task"], r["side"])):
        vals = " ".join(f"{100 * r[k]:>10.2f}%" if k in r else f"{'':>11}" for k in keys)
        print(f"{r['task']:8} {r['side']:28} {r['steps_run']:>6} {r['seconds_per_step']:>7.3f} {vals}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("side", choices=["minibert", "reference", "report"])
    ap.add_argument("task", nargs="?")
    ap.add_argument("--out", default="runs/ft-compare")
    ap.add_argument("--variant", default="minibert", help="name of a minibert variant run (e.g. freeze4, fp16)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the reference")
    ap.add_argument("--train")
    ap.add_argument("--dev")
    for name, typ in (("epochs", int), ("lr", float), ("batch-size", int), ("max-seq-len", int),
                      ("train-limit", int), ("dev-limit", int), ("freeze-layers", int), ("eval-every", int),
                      ("seed", int)):
        ap.add_argument(f"--{name}", type=typ)
    ap.add_argument("--fp16", action="store_true")
    ap.add_argument("--plot", help="report: also draw each task's dev metric per evaluation, both sides, to this PNG")
    a = ap.parse_args(argv)
    out = Path(a.out)
    if a.side == "report":
        return report(out, a.plot)
    if a.task is None:
        ap.error("give the task (sst2, wnut17, squad, ...)")
    if a.side == "reference":
        return run_reference(a.task, out, a.threads) and None
    overrides = {k: v for k, v in vars(a).items()
                 if k not in ("side", "task", "out", "variant", "threads") and v not in (None, False)}
    overrides["progress"] = False
    run_minibert(a.task, out, a.variant, overrides)


def plot_curves(out: Path, path: str):
    """One panel per task: the dev metric at every evaluation, minibert against transformers."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted(p.name for p in out.iterdir() if (p / "reference" / "result.json").exists()
                   and (p / "minibert" / "log.jsonl").exists())
    if not tasks:
        raise SystemExit(f"no task under {out} has both a minibert log and a reference result")
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        ref = json.loads((out / task / "reference" / "result.json").read_text())
        metric = ref["metric"]
        mine = [json.loads(x) for x in (out / task / "minibert" / "log.jsonl").read_text().splitlines()]
        mine = [r for r in mine if metric in r]
        theirs = ref.get("evaluations", [])
        for rows, label, style in ((mine, "minibert", "o-"), (theirs, "transformers", "s--")):
            ax.plot([r["step"] for r in rows], [100 * r[metric] for r in rows], style, label=label)
        ax.set(title=f"{task}: dev {metric.replace('_', ' ')}", xlabel="optimizer step", ylabel=f"{metric} (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
