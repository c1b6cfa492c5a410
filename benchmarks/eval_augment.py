"""Data augmentation on small SST-2 training sets: MiniLM fine-tuned with and without masked-LM augmentation.

    OPENBLAS_NUM_THREADS=1 MINIBERT_THREADS=1 python benchmarks/eval_augment.py \
        [--mlm runs/gutenberg-mini] [--sizes 50 200 1000] [--seeds 0 1 2] [--per-example 4] \
        [--data ../shared/data] [--out benchmarks/results/augment]

For each training size N and seed s:
    train set     a seeded sample of N sentences of SST-2's train.tsv (numpy default_rng(s)), the same
                  for both arms; dev = the full dev set (872 sentences)
    plain         the packaged all-MiniLM-L6-v2 + a new classifier, fine-tuned on the N sentences
    augmented     the same start, fine-tuned on the N sentences and their --per-example new rows each
                  (minibert.apps.augment: 15% of the words replaced by the --mlm's samples, T = 1, top-k 50,
                  seed s), so (1 + per-example) * N rows
Both arms take the SAME number of optimizer steps, S = max(--min-steps, 3 * ceil(N / batch)) (three
epochs of the plain set, at least --min-steps): augmentation is compared at equal compute, so a gain
comes from more varied rows, not from more updates. Batches of 16, max_seq_len 64, AdamW lr --lr (5e-5),
10% warm-up then linear decay (finetune's schedule), weight decay 0.01, dropout on, seed s for the
head, dropout and data order; evaluated once, after the last step (no model selection on dev).
The fine-tuning goes through minibert.train.finetune's API (finetune_step, evaluate), one step at a
time, so that the number of steps can be set and the dev set is read once.

Reported: dev accuracy, mean and sample standard deviation over the seeds, per N and arm, and the
time. The MLM is trained on 20 Gutenberg books (books, not film reviews): out of domain.
Writes results.json (every run) beside the printed table.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from minibert.apps.augment import Augmenter, augment_tsv                                 # noqa: E402
from minibert.data.batches import epoch_batches                                          # noqa: E402
from minibert.model.pretrained import default_model_dir                                  # noqa: E402
from minibert.tokenization import BertTokenizer                                          # noqa: E402
from minibert.train.finetune import FinetuneArgs, evaluate, finetune_step, save_model    # noqa: E402
from minibert.train.finetune_tasks import get_task                                      # noqa: E402
from minibert.train.optim import AdamW, linear_warmup_decay                              # noqa: E402

BATCH, MAX_SEQ_LEN = 16, 64


def sample_tsv(src: Path, n: int, seed: int, dst: Path) -> Path:
    """A seeded sample of n rows of an SST-2 TSV (header kept), in file order."""
    lines = src.read_text(encoding="utf-8").splitlines()
    rows = [line for line in lines[1:] if line.strip()]
    pick = sorted(numpy.random.default_rng(seed).choice(len(rows), n, replace=False))
    dst.write_text("\n".join([lines[0]] + [rows[i] for i in pick]) + "\n", encoding="utf-8")
    return dst


def finetune_steps(train_tsv: Path, dev, steps: int, seed: int, tokenizer, task, lr: float):
    """Fine-tune the packaged MiniLM for `steps` optimizer steps on train_tsv; (dev accuracy and times after
    the last step, the model)."""
    args = FinetuneArgs(task="sst2", train=str(train_tsv), dev=str(train_tsv), max_seq_len=MAX_SEQ_LEN, seed=seed,
                        lr=lr, batch_size=BATCH, progress=False)
    train = task.load(train_tsv, tokenizer, split="train")
    model = task.load_model(Path(default_model_dir()), args).train()
    optimizer = AdamW(model.params, lr=lr, weight_decay=0.01, frozen=model.frozen_names())
    plan, epoch = [], 0
    while len(plan) < steps:
        plan += epoch_batches(len(train.encoded), BATCH, seed, epoch)
        epoch += 1
    plan, warmup = plan[:steps], int(0.1 * steps)
    start = time.perf_counter()
    for i, rows in enumerate(plan):
        finetune_step(model, task, optimizer, [train.encoded.batch(rows)], linear_warmup_decay(i, lr, warmup, steps))
    train_s = time.perf_counter() - start
    result = evaluate(model, task, dev, 64)
    return {"accuracy": result["accuracy"], "dev_loss": result["dev_loss"], "rows": len(train.encoded),
            "steps": steps, "epochs": round(steps * BATCH / len(train.encoded), 2), "train_seconds": train_s,
            "eval_seconds": time.perf_counter() - start - train_s}, model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mlm", default="runs/gutenberg-mini", help="masked-LM run folder (made by the pretrain command in docs/text_prediction.md, section 3)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--size-seeds", nargs="*", default=[], metavar="N=K",
                        help="run only the first K seeds for size N (e.g. 1000=1), to fit a time budget")
    parser.add_argument("--per-example", type=int, default=4)
    parser.add_argument("--fraction", type=float, default=0.15)
    parser.add_argument("--min-steps", type=int, default=60)
    parser.add_argument("--lr", type=float, default=5e-5, help="peak learning rate of the fine-tuning")
    parser.add_argument("--filter", action="store_true",
                        help="a third arm: augmented rows kept only where the plain arm's classifier (trained on the "
                             "same N sentences) gives them their source's label")
    parser.add_argument("--dev-limit", type=int, default=None, help="the first N dev sentences only (smoke tests)")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "augment"))
    args = parser.parse_args(argv)
    data = Path(args.data) / "sst2"
    if not (data / "train.tsv").is_file():
        raise SystemExit(f"no SST-2 at {data}: pass --data (the folder holding sst2/train.tsv, dev.tsv)")
    limits = {int(k): int(v) for k, v in (s.split("=") for s in args.size_seeds)}
    task = get_task("sst2", max_seq_len=MAX_SEQ_LEN)
    tokenizer = BertTokenizer.from_pretrained(default_model_dir())
    dev = task.load(data / "dev.tsv", tokenizer, limit=args.dev_limit, split="dev")
    augmenter = Augmenter.load(args.mlm, fraction=args.fraction)
    runs, start = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            steps = max(args.min_steps, 3 * math.ceil(n / BATCH))
            for seed in args.seeds[:limits.get(n, len(args.seeds))]:
                plain_tsv = sample_tsv(data / "train.tsv", n, seed, Path(tmp) / f"plain-{n}-{seed}.tsv")
                t = time.perf_counter()
                aug_tsv = Path(tmp) / f"aug-{n}-{seed}.tsv"
                augment_tsv(augmenter, plain_tsv, aug_tsv, args.per_example, seed)
                aug_s = time.perf_counter() - t
                arms = [("plain", plain_tsv), ("augmented", aug_tsv)] + ([("filtered", None)] if args.filter else [])
                plain_model = None
                for arm, path in arms:
                    made = {"augmented": aug_s}
                    if arm == "filtered":                # the plain arm's classifier filters the MLM's rows
                        t, path = time.perf_counter(), Path(tmp) / f"filtered-{n}-{seed}.tsv"
                        save_model(plain_model, tokenizer, task, Path(tmp) / f"filter-{n}-{seed}")
                        counts = augment_tsv(augmenter, plain_tsv, path, args.per_example, seed,
                                             filter_folder=Path(tmp) / f"filter-{n}-{seed}")
                        made["filtered"] = time.perf_counter() - t
                    r, model = finetune_steps(path, dev, steps, seed, tokenizer, task, args.lr)
                    plain_model = model if arm == "plain" else plain_model
                    r.update(size=n, seed=seed, arm=arm, augment_seconds=made.get(arm, 0.0))
                    if arm == "filtered":
                        r["filtered_out"] = counts["filtered_out"]
                    runs.append(r)
                    print(f"N={n:<5} seed {seed} {arm:<10} rows {r['rows']:<5} steps {steps:<4} "
                          f"dev accuracy {r['accuracy']:.4f}  ({r['train_seconds']:.0f} s train, "
                          f"{r['eval_seconds']:.0f} s dev{f', {made[arm]:.0f} s augment' if arm in made else ''})",
                          flush=True)
    table = []
    for n in args.sizes:
        row = {"size": n}
        for arm in ("plain", "augmented") + (("filtered",) if args.filter else ()):
            acc = [r["accuracy"] for r in runs if r["size"] == n and r["arm"] == arm]
            row[arm] = {"mean": float(numpy.mean(acc)), "std": float(numpy.std(acc, ddof=1)) if len(acc) > 1 else None,
                        "seeds": len(acc), "accuracies": acc}
        table.append(row)
    seconds = time.perf_counter() - start
    print(f"\nSST-2 dev accuracy ({len(dev.encoded)} sentences), MiniLM fine-tuned on N sampled sentences, equal steps; "
          f"augmentation: {args.per_example} rows per sentence from {args.mlm}; {seconds:.0f} s in all")
    filtered = f"  {'filtered':>17}  {'difference':>10}" if args.filter else ""
    print(f"{'N':>6}  {'plain':>17}  {'augmented':>17}  {'difference':>10}{filtered}  seeds")
    for row in table:
        p, a = row["plain"], row["augmented"]
        fmt = lambda d: f"{d['mean']:.4f} ± {d['std']:.4f}" if d["std"] is not None else f"{d['mean']:.4f}"  # noqa: E731
        f = row.get("filtered")
        third = f"  {fmt(f):>17}  {f['mean'] - p['mean']:>+10.4f}" if f else ""
        print(f"{row['size']:>6}  {fmt(p):>17}  {fmt(a):>17}  {a['mean'] - p['mean']:>+10.4f}{third}  {p['seeds']}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"settings": vars(args), "batch": BATCH, "max_seq_len": MAX_SEQ_LEN,
                                                  "lr": args.lr, "seconds": seconds, "table": table, "runs": runs},
                                                 indent=1), encoding="utf-8")
    print(f"written: {out / 'results.json'}")


if __name__ == "__main__":
    main()
