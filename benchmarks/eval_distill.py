"""Distillation measured against its baselines (issue 19, docs/distillation.md): prints a table, writes JSON.

    OPENBLAS_NUM_THREADS=1 MINIBERT_THREADS=1 python benchmarks/eval_distill.py task
    OPENBLAS_NUM_THREADS=1 MINIBERT_THREADS=1 python benchmarks/eval_distill.py pretraining --teacher runs/gutenberg-mini

task: a teacher (the packaged all-MiniLM-L6-v2 fine-tuned on the first --train-limit SST-2 sentences) and
two 3-layer students made from it (teacher layers 0, 2, 4), trained for the same steps with the same seed
and data order: one distilled (alpha * KL_T + (1 - alpha) * CE), one on the labels alone (alpha = 0).
Reported: dev accuracy (the full dev set by default) of the teacher and the two students, best and last
evaluation, and the inference time per example of teacher and student over the same dev batches.

pretraining: a teacher pretrained by `minibert pretrain` and three students of half its layers, each trained
--steps steps on the teacher run's instances with the same seed: DistilBERT's loss (5 soft CE + 2 MLM + 1
cosine) from the teacher's layers, MLM alone from the same layers, MLM alone from BERT's random init.
Reported: held-out masked-LM accuracy (pretrain's evaluation rows), perplexity, seconds per step.

The run folders go under --work (kept: rerun with --reuse to skip the runs already finished); the JSON
under benchmarks/results/distill/.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from minibert.apps.fill_mask import load_pretraining_model  # noqa: E402
from minibert.data.batches import consecutive_batches  # noqa: E402
from minibert.train import distill  # noqa: E402
from minibert.train.distill import PretrainDistillArgs, TaskDistillArgs  # noqa: E402
from minibert.train.finetune import FinetuneArgs, load_finetuned  # noqa: E402
from minibert.train.finetune import run as finetune  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "distill"
DATA = REPO.parent / "shared" / "data"


def quiet(*_):
    """The runs' messages: not shown (the table says what matters)."""


def _done(folder: Path, reuse: bool) -> bool:
    return reuse and (folder / "metrics.json").is_file()


def seconds_per_example(model, task, data, batch_size: int, repeats: int = 1) -> float:
    """Inference time per example over the dev batches (dropout off, no caches), the best of `repeats`."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        with model.inference():
            for rows in consecutive_batches(len(data.encoded), batch_size):
                model.forward(*task.inputs(data.encoded.batch(rows)))
        best = min(best, time.perf_counter() - t0)
    return best / len(data.encoded)


def last_accuracy(run_dir: Path) -> float:
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [r for r in rows if "accuracy" in r and "dev_loss" in r][-1]["accuracy"]


def task_experiment(a) -> dict:
    work = Path(a.work)
    train, dev = str(Path(a.data) / "train.tsv"), str(Path(a.data) / "dev.tsv")
    common = dict(task="sst2", train=train, dev=dev, train_limit=a.train_limit, dev_limit=a.dev_limit,
                  epochs=a.epochs, lr=a.lr, batch_size=a.batch_size, max_seq_len=a.max_seq_len, seed=a.seed,
                  progress=False)
    timings = {}
    teacher_dir = work / "teacher"
    t0 = time.perf_counter()
    if not _done(teacher_dir, a.reuse):
        finetune(FinetuneArgs(model=a.model, out=str(teacher_dir), **common), stream=quiet, overwrite=True)
    timings["teacher"] = time.perf_counter() - t0
    runs = {"distilled": dict(alpha=a.alpha, temperature=a.temperature), "alone": dict(alpha=0.0)}
    for name, extra in runs.items():
        t0 = time.perf_counter()
        if not _done(work / name, a.reuse):
            distill.run_task(TaskDistillArgs(teacher=str(teacher_dir), out=str(work / name),
                                             student_layers=a.student_layers, **common, **extra),
                             stream=quiet, overwrite=True)
        timings[name] = time.perf_counter() - t0
    task, teacher, tokenizer = load_finetuned(teacher_dir)
    dev_data = task.load(dev, tokenizer, limit=a.dev_limit, split="dev")
    rows = {}
    for name in ("teacher", "distilled", "alone"):
        folder = work / name
        metrics = json.loads((folder / "metrics.json").read_text())
        _, model, _ = load_finetuned(folder)
        rows[name] = {"layers": model.config.num_hidden_layers, "parameters": model.num_parameters(),
                      "dev_accuracy_best": metrics["accuracy"], "best_step": metrics["best_step"],
                      "dev_accuracy_last": last_accuracy(folder), "steps": metrics["steps_run"],
                      "ms_per_example": 1000 * seconds_per_example(model, task, dev_data, a.batch_size, a.repeats),
                      "train_seconds": timings[name]}
    return {"settings": {**{k: v for k, v in vars(a).items() if k not in ("func",)}, "dev_examples": len(dev_data.encoded),
                         "threads": os.environ.get("OPENBLAS_NUM_THREADS")}, "rows": rows}


def print_task(result: dict) -> None:
    s = result["settings"]
    print(f"SST-2: teacher MiniLM-L6 fine-tuned on {s['train_limit']} sentences, {s['epochs']} epochs; "
          f"students of 3 layers; dev {s['dev_examples']} sentences; T={s['temperature']}, alpha={s['alpha']}")
    print(f"{'model':<34} {'layers':>6} {'params':>11} {'dev acc (best)':>14} {'dev acc (last)':>14} "
          f"{'ms/example':>10} {'train s':>8}")
    names = {"teacher": "teacher (fine-tuned)", "distilled": "student distilled (KL_T + CE)",
             "alone": "student, labels alone (alpha 0)"}
    for key, label in names.items():
        r = result["rows"][key]
        print(f"{label:<34} {r['layers']:>6} {r['parameters']:>11,} {r['dev_accuracy_best']:>14.4f} "
              f"{r['dev_accuracy_last']:>14.4f} {r['ms_per_example']:>10.2f} {r['train_seconds']:>8.0f}")


PRETRAIN_RUNS = {
    "distilled": dict(init="teacher", ce_weight=5.0, mlm_weight=2.0, cos_weight=1.0),
    "mlm_from_teacher_layers": dict(init="teacher", ce_weight=0.0, mlm_weight=1.0, cos_weight=0.0),
    "mlm_from_random_init": dict(init="random", ce_weight=0.0, mlm_weight=1.0, cos_weight=0.0),
}


def pretraining_experiment(a) -> dict:
    work = Path(a.work)
    teacher, tokenizer = load_pretraining_model(a.teacher)
    rows, teacher_row = {}, None
    for name, weights in PRETRAIN_RUNS.items():
        out = work / name
        log = out / "log.jsonl"
        t0 = time.perf_counter()
        if not (a.reuse and (out / "model.safetensors").is_file()):
            distill.run_pretraining(PretrainDistillArgs(
                teacher=a.teacher, out=str(out), steps=a.steps, batch_size=a.batch_size, lr=a.lr,
                temperature=a.temperature, eval_every=a.eval_every, eval_batches=a.eval_batches, seed=a.seed,
                checkpoint_every=a.steps, progress=False, **weights), teacher, tokenizer, stream=quiet, overwrite=True)
        seconds = time.perf_counter() - t0
        entries = [json.loads(line) for line in log.read_text().splitlines()]
        evals = [r for r in entries if "eval_mlm_accuracy" in r]
        steps = [r for r in entries if "loss" in r]
        last = evals[-1]
        rows[name] = {"eval_mlm_accuracy": last["eval_mlm_accuracy"],
                      "eval_mlm_accuracy_at_mask": last["eval_mlm_accuracy_at_mask"],
                      "eval_perplexity": last["eval_perplexity"], "steps": last["step"],
                      "curve": [(r["step"], r["eval_mlm_accuracy"]) for r in evals],
                      "seconds_per_step": sum(r["seconds"] for r in steps) / len(steps), "wall_seconds": seconds}
        teacher_row = {"eval_mlm_accuracy": last["teacher_eval_mlm_accuracy"],
                       "eval_mlm_accuracy_at_mask": last["teacher_eval_mlm_accuracy_at_mask"],
                       "eval_perplexity": last["teacher_eval_perplexity"],
                       "most_frequent_word": last["eval_mlm_accuracy_most_frequent"]}
    return {"settings": {**vars(a), "teacher_layers": teacher.config.num_hidden_layers,
                         "threads": os.environ.get("OPENBLAS_NUM_THREADS")},
            "teacher": teacher_row, "rows": rows}


def print_pretraining(result: dict) -> None:
    s, t = result["settings"], result["teacher"]
    print(f"held-out masked LM ({s['eval_batches']} x {s['batch_size']} rows of the teacher run's eval set), "
          f"students of {s['teacher_layers'] // 2} layers, {s['steps']} steps each, lr {s['lr']}, T={s['temperature']}")
    print(f"{'model':<40} {'MLM acc':>8} {'at [MASK]':>9} {'perplexity':>10} {'s/step':>7}")
    print(f"{'teacher (' + str(s['teacher_layers']) + ' layers)':<40} {t['eval_mlm_accuracy']:>8.4f} "
          f"{t['eval_mlm_accuracy_at_mask']:>9.4f} {t['eval_perplexity']:>10.1f} {'':>7}")
    labels = {"distilled": "student distilled (5 CE_T + 2 MLM + 1 cos)",
              "mlm_from_teacher_layers": "student MLM alone, teacher's layers",
              "mlm_from_random_init": "student MLM alone, random init"}
    for key, label in labels.items():
        r = result["rows"][key]
        print(f"{label:<40} {r['eval_mlm_accuracy']:>8.4f} {r['eval_mlm_accuracy_at_mask']:>9.4f} "
              f"{r['eval_perplexity']:>10.1f} {r['seconds_per_step']:>7.2f}")
    print(f"{'(always the most frequent word)':<40} {t['most_frequent_word']:>8.4f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="part", required=True)
    task = sub.add_parser("task", help="task distillation on SST-2")
    task.add_argument("--data", default=str(DATA / "sst2"), help="folder with train.tsv and dev.tsv")
    task.add_argument("--model", default=None, help="the teacher's starting model (default: packaged MiniLM-L6)")
    task.add_argument("--train-limit", type=int, default=2000)
    task.add_argument("--dev-limit", type=int, default=None, help="default: the full dev set (872)")
    task.add_argument("--epochs", type=int, default=2)
    task.add_argument("--lr", type=float, default=5e-5)
    task.add_argument("--batch-size", type=int, default=32)
    task.add_argument("--max-seq-len", type=int, default=64)
    task.add_argument("--alpha", type=float, default=0.5)
    task.add_argument("--student-layers", default=None, help="default: every other teacher layer")
    task.add_argument("--repeats", type=int, default=2, help="timing repeats (the best is kept)")
    pre = sub.add_parser("pretraining", help="pretraining distillation from a `minibert pretrain` run")
    pre.add_argument("--teacher", default="runs/gutenberg-mini",
                     help="a minibert pretrain run folder (the command: docs/text_prediction.md, section 3)")
    pre.add_argument("--steps", type=int, default=300)
    pre.add_argument("--batch-size", type=int, default=32)
    pre.add_argument("--lr", type=float, default=5e-4)
    pre.add_argument("--eval-every", type=int, default=100)
    pre.add_argument("--eval-batches", type=int, default=20)
    for p in (task, pre):
        p.add_argument("--temperature", type=float, default=2.0)
        p.add_argument("--seed", type=int, default=42)
        p.add_argument("--work", default=None, help="folder of the runs (default: /tmp/eval_distill/PART)")
        p.add_argument("--reuse", action="store_true", help="skip the runs already finished in --work")
        p.add_argument("--json", default=None, help="where the JSON goes (default: benchmarks/results/distill/PART.json)")
    a = parser.parse_args(argv)
    a.work = a.work or f"/tmp/eval_distill/{a.part}"
    t0 = time.perf_counter()
    result = task_experiment(a) if a.part == "task" else pretraining_experiment(a)
    result["wall_seconds"] = time.perf_counter() - t0
    (print_task if a.part == "task" else print_pretraining)(result)
    print(f"wall time {result['wall_seconds']:.0f} s")
    path = Path(a.json) if a.json else RESULTS / f"{a.part}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
