"""Data-parallel training on this machine: 2 ranks x 1 thread against 1 process x 2 threads, and the
all-reduce time of minibert's real gradient sizes over loopback (docs/distributed.md).

    python benchmarks/bench_distributed.py                       # both parts (needs mpi4py + mpiexec)
    python benchmarks/bench_distributed.py --steps 5 --sizes tiny    # quicker

Part 1 runs the same pretraining steps (BertForPreTraining, --config, the same global batch of --batch
sequences of --seq tokens, random instances, float32, dropout on) twice, each in fresh processes:

    1 process,  OMP/OPENBLAS_NUM_THREADS=2      python bench_distributed.py --worker steps
    2 ranks,    OMP/OPENBLAS_NUM_THREADS=1      mpiexec -n 2 python bench_distributed.py --worker steps

and prints steps per second (the first step, a warm-up, left out) and their ratio.
Part 2, under mpiexec -n 2: an in-place float32 `Allreduce` of the flat gradient of each preset's
BertForPreTraining (vocabulary 8000 as the main job; BERT-base with 30522), the median of --repeats,
with the bytes each rank sends in a ring (2(N-1)/N x the buffer) divided by the time: the loopback's
effective bandwidth.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy

SIZES = {"tiny": 8000, "mini": 8000, "small": 8000, "base": 30522}      # preset -> vocabulary size


def parameters(preset: str) -> int:
    """The number of parameters of BertForPreTraining for a preset (from the shapes; nothing allocated)."""
    from minibert.model import BertConfig
    from minibert.model.heads.pretraining import BertForPreTraining
    model = BertForPreTraining(BertConfig.preset(preset, vocab_size=SIZES[preset]), seed=0)
    return model.num_parameters()


def worker_steps(args) -> None:
    """Timed pretraining steps on this rank's share (rank 0 prints "steps_per_s X")."""
    from minibert.model import BertConfig
    from minibert.model.heads.pretraining import BertForPreTraining
    from minibert.train.distributed import detect
    from minibert.train.optim import AdamW
    from minibert.train.pretrain import PRETRAINING
    from minibert.train.step import count_totals, loss_weights, train_step

    group = detect()
    cfg = BertConfig.preset(args.config, vocab_size=8000)
    model = BertForPreTraining(cfg, seed=0).train()
    group.seed_dropout(model, 0)
    optimizer = AdamW(model.params, lr=1e-4)
    rng = numpy.random.default_rng(0)                    # the same instances on every rank
    B, T = args.batch, args.seq
    ids = rng.integers(5, cfg.vocab_size, (B, T))
    labels = numpy.full((B, T), -100)
    labels[:, 1:T:7] = ids[:, 1:T:7]
    data = dict(input_ids=ids, token_type_ids=numpy.zeros((B, T), dtype=numpy.int64),
                attention_mask=numpy.ones((B, T), dtype=numpy.int64), labels=labels,
                next_sentence_label=rng.integers(0, 2, B))
    times = []
    for _ in range(args.steps + 1):
        group.barrier()
        t0 = time.perf_counter()
        micro = [{k: v[r] for k, v in data.items()} for r in group.micro_rows(numpy.arange(B), 1, B)]
        counts = [PRETRAINING.counts(b) for b in micro]
        totals = group.allreduce_counts(count_totals(counts))
        train_step(model, PRETRAINING, optimizer, micro, loss_weights(counts, totals), 1e-4, group=group)
        times.append(time.perf_counter() - t0)
    if group.is_main:
        print(f"steps_per_s {1 / statistics.median(times[1:]):.4f}")


def worker_allreduce(args) -> None:
    """Median time of an in-place Allreduce of each preset's gradient buffer (rank 0 prints a row each)."""
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    for preset in args.sizes.split(","):
        n = parameters(preset)
        grad = numpy.ones(n, dtype=numpy.float32)
        times = []
        for _ in range(args.repeats + 1):
            comm.Barrier()
            t0 = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, grad, op=MPI.SUM)
            times.append(time.perf_counter() - t0)
        if comm.Get_rank() == 0:
            t = statistics.median(times[1:])
            size = comm.Get_size()
            sent = 2 * (size - 1) / size * grad.nbytes
            print(f"allreduce {preset} {n} {grad.nbytes} {t:.6f} {sent / t / 1e9:.3f}")


def run(cmd, threads: int) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="tiny", help="preset of the timed steps (default: the main job's)")
    parser.add_argument("--batch", type=int, default=32, help="global batch (sequences per step)")
    parser.add_argument("--seq", type=int, default=64, help="tokens per sequence")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (after one warm-up)")
    parser.add_argument("--sizes", default="tiny,mini,small,base", help="presets whose gradients are all-reduced")
    parser.add_argument("--repeats", type=int, default=10, help="all-reduces timed per size")
    parser.add_argument("--worker", choices=["steps", "allreduce"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "steps":
        return worker_steps(args)
    if args.worker == "allreduce":
        return worker_allreduce(args)

    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit("error: no mpiexec: pip install mpi4py mpich (or pip install -e .[mpi])")
    me = [sys.executable, __file__, "--config", args.config, "--batch", str(args.batch), "--seq", str(args.seq),
          "--steps", str(args.steps), "--sizes", args.sizes, "--repeats", str(args.repeats)]
    one = float(run(me + ["--worker", "steps"], threads=2).split()[-1])
    two = float(run([mpiexec, "-n", "2"] + me + ["--worker", "steps"], threads=1).split()[-1])
    print(f"pretraining steps, --config {args.config}, global batch {args.batch} x {args.seq} tokens, float32, "
          f"median of {args.steps} steps")
    print(f"  1 process x 2 threads: {one:.3f} steps/s")
    print(f"  2 ranks x 1 thread:    {two:.3f} steps/s   ratio {two / one:.2f}x")
    print("loopback all-reduce (mpiexec -n 2, in place, float32), median of", args.repeats)
    print(f"  {'preset':<8}{'parameters':>13}{'MB':>9}{'ms':>10}{'GB/s (ring bytes / time)':>27}")
    for line in run([mpiexec, "-n", "2"] + me + ["--worker", "allreduce"], threads=1).splitlines():
        _, preset, n, nbytes, t, rate = line.split()
        print(f"  {preset:<8}{int(n):>13,}{int(nbytes) / 1e6:>9.1f}{float(t) * 1e3:>10.2f}{float(rate):>27.2f}")


if __name__ == "__main__":
    main()
