"""`minibert finetune --resume` on the real model: what checkpoints cost, and a real kill -9 then resume.

    OPENBLAS_NUM_THREADS=1 MINIBERT_THREADS=1 PYTHONPATH=. python benchmarks/eval_finetune_resume.py \
        [--train-limit 160] [--epochs 2] [--kill-after 7] [--checkpoint-every 4]

1. The cost: one checkpoint of the packaged all-MiniLM-L6-v2 with an SST-2 head (weights and AdamW's two
   moments, float32) is written with `save_checkpoint` three times: its size on disk and the median
   seconds, beside the median seconds of one training step (batch 16, 64 tokens) of the same model.
2. Exactness: the same SST-2 run (MiniLM, --train-limit examples, batch 16, --max-seq-len 64, dropout on,
   an evaluation every 5 steps) uninterrupted; then started again in another folder, SIGKILLed (no clean-up
   possible) once its log holds --kill-after step rows, and resumed with `finetune --out OUT --resume`.
   The two folders are compared file for file: log rows (timings aside), best/ (weights, config), metrics.json
   and the kept checkpoints (weights, moments, state.json).

Prints a table and writes benchmarks/results/finetune_resume/resume.json. Needs ../shared/data/sst2.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from minibert.model.io import load_arrays
from minibert.model.pretrained import default_model_dir
from minibert.train.checkpoint import save_checkpoint
from minibert.train.finetune import FinetuneArgs, _load_model, finetune_step
from minibert.train.finetune_tasks import get_task
from minibert.train.optim import AdamW
from minibert.tokenization import BertTokenizer

REPO = Path(__file__).resolve().parent.parent
SST2 = REPO.parent / "shared" / "data" / "sst2"
OUT = REPO / "benchmarks" / "results" / "finetune_resume"
WALL_CLOCK = ("seconds", "tokens_per_s")


def checkpoint_cost(train_limit: int) -> dict:
    """Size and write time of one MiniLM checkpoint, and the time of one training step, in this process."""
    args = FinetuneArgs(task="sst2", train=str(SST2 / "train.tsv"), dev=str(SST2 / "dev.tsv"), max_seq_len=64,
                        batch_size=16, progress=False)
    task = get_task("sst2", max_seq_len=64)
    tokenizer = BertTokenizer.from_pretrained(default_model_dir())
    train = task.load(args.train, tokenizer, limit=train_limit, split="train")
    model = _load_model(task, Path(default_model_dir()), args, lambda *a: None)
    optimizer = AdamW(model.params, lr=3e-5, weight_decay=0.01)
    steps = []
    for i in range(3):
        batch = train.encoded.batch(range(16 * i, 16 * i + 16))
        t0 = time.perf_counter()
        finetune_step(model, task, optimizer, [batch], 3e-5, step=i + 1)
        steps.append(time.perf_counter() - t0)
    writes = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(3):
            t0 = time.perf_counter()
            folder = save_checkpoint(tmp, i + 1, model.params, optimizer.state_dict(), {"step": i + 1}, keep=1)
            writes.append(time.perf_counter() - t0)
        size = sum(p.stat().st_size for p in folder.iterdir())
    return {"parameters": int(model.num_parameters()), "checkpoint_bytes": size,
            "checkpoint_write_s": statistics.median(writes), "train_step_s": statistics.median(steps)}


def command(out: Path, flags) -> list[str]:
    return [sys.executable, "-m", "minibert", "finetune", "--no-progress", "--out", str(out), *flags]


def run(argv: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr}")
    return time.perf_counter() - t0, done.stdout


def killed_after(argv: list[str], log: Path, steps: int) -> float:
    """Start the run, SIGKILL it once its log has `steps` step rows; the seconds it ran."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    while proc.poll() is None:
        rows = log.read_text().splitlines() if log.is_file() else []
        if sum('"loss"' in r for r in rows) >= steps:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return time.perf_counter() - t0
        time.sleep(0.05)
    raise SystemExit(f"the run ended (code {proc.returncode}) before {steps} steps: give a smaller --kill-after")


def rows(out: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in WALL_CLOCK}
            for line in (out / "log.jsonl").read_text().splitlines()]


def compare(ref: Path, out: Path) -> dict:
    """Which files of the two run folders differ (the log without timings; arrays exactly)."""
    names = {str(p.relative_to(ref)) for p in ref.rglob("*") if p.is_file()}
    other = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    differ = sorted(names ^ other)
    for name in sorted(names & other):
        a, b = ref / name, out / name
        if name == "log.jsonl":
            same = rows(ref) == rows(out)
        elif name.endswith(".safetensors"):
            x, y = load_arrays(a), load_arrays(b)
            same = set(x) == set(y) and all(np.array_equal(x[k], y[k]) for k in x)
        elif name == "run.json":
            same = {k: v for k, v in json.loads(a.read_text()).items() if k != "out"} == \
                {k: v for k, v in json.loads(b.read_text()).items() if k != "out"}
        elif name.endswith(".png"):
            continue                                   # drawn from the log: its timings differ
        else:
            same = a.read_bytes() == b.read_bytes()
        if not same:
            differ.append(name)
    return {"files_compared": len(names), "differ": differ}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-limit", type=int, default=160)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--kill-after", type=int, default=7)
    parser.add_argument("--checkpoint-every", type=int, default=4)
    a = parser.parse_args()
    cost = checkpoint_cost(a.train_limit)
    flags = ["--task", "sst2", "--train", str(SST2 / "train.tsv"), "--dev", str(SST2 / "dev.tsv"),
             "--train-limit", str(a.train_limit), "--dev-limit", "64", "--epochs", str(a.epochs),
             "--batch-size", "16", "--max-seq-len", "64", "--lr", "5e-5", "--eval-every", "5",
             "--checkpoint-every", str(a.checkpoint_every)]
    with tempfile.TemporaryDirectory() as tmp:
        ref, cut = Path(tmp) / "ref", Path(tmp) / "cut"
        whole_s, _ = run(command(ref, flags))
        killed_s = killed_after(command(cut, flags), cut / "log.jsonl", a.kill_after)
        steps_before = sum("loss" in r for r in rows(cut))
        checkpoint_before = sorted(p.name for p in (cut / "checkpoints").glob("step-*"))
        resumed_s, printed = run(command(cut, ["--resume"]))
        result = {"settings": vars(a), **cost, "uninterrupted_s": whole_s, "killed_after_s": killed_s,
                  "steps_logged_at_kill": steps_before, "checkpoints_at_kill": checkpoint_before,
                  "resumed_s": resumed_s, "resumed_from": [l for l in printed.splitlines() if "resuming from" in l],
                  "steps": sum("loss" in r for r in rows(ref)), **compare(ref, cut)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "resume.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"| MiniLM + SST-2 head, {cost['parameters']:,} parameters | |")
    print("|---|---|")
    print(f"| checkpoint on disk (weights + 2 Adam moments) | {cost['checkpoint_bytes'] / 1e6:.0f} MB |")
    print(f"| checkpoint write (median of 3) | {cost['checkpoint_write_s']:.2f} s |")
    print(f"| one training step, batch 16 x 64 tokens (median of 3) | {cost['train_step_s']:.2f} s |")
    print(f"| uninterrupted run, {result['steps']} steps | {whole_s:.0f} s |")
    print(f"| killed (SIGKILL) after | {killed_s:.0f} s, {steps_before} step rows logged, "
          f"checkpoints {', '.join(checkpoint_before) or 'none'} |")
    print(f"| resumed to the end | {resumed_s:.0f} s ({'; '.join(result['resumed_from'])}) |")
    print(f"| files differing from the uninterrupted run | {len(result['differ'])} of "
          f"{result['files_compared']} {result['differ'] or ''} |")


if __name__ == "__main__":
    main()
