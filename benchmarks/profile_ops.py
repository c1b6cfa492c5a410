"""Where one forward + backward goes, op by op: the per-op table of docs/performance.md.

    OPENBLAS_NUM_THREADS=1 python benchmarks/profile_ops.py [--config mini] [--batch 32] [--seq 128]
                                                             [--mode eval|train|inference] [--repeats 3]

The model calls every op through its op table (minibert/model/ops_table.py), so this script builds a
table whose functions are minibert's own, each wrapped in a timer, and runs the model with it: the
numbers are those of the real model, with no profiler hooks inside NumPy. Linear layers are split by
shape (QKV and attention output: H -> H; FFN: H -> 4H and 4H -> H), forward and backward apart.
"outside the op table" is the rest of the step: residual adds, reshapes, the model's own glue.

--mode eval: dropout off, forward + backward (the issue's profile); train: dropout on, forward +
backward; inference: `with model.inference()`, forward only. Run it with OPENBLAS_NUM_THREADS=1 for
the one-core profile (the issue's figures), or 2 to see what threads change. The median over
--repeats steps (after one warm-up step) is shown for each op.

It also measures the two elementwise kernels the docs quote, in cache (64 Ki float32 = 256 KB, the
size of one row block): `numpy.exp` and GELU's forward, in ns per element.
"""
from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def ns_per_element(fn, n=1 << 16, repeats=200) -> float:
    """Best time of fn(x, out) over a cache-resident float32 array of n elements, in ns per element."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n, dtype=np.float32)
    out = np.empty_like(x)
    fn(x, out)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x, out)
        best = min(best, time.perf_counter() - t)
    return best / n * 1e9


def timed_table(base, totals, H):
    """A copy of op table `base` whose every function adds its wall time to totals[label]."""
    from minibert.model.ops_table import FUSED_OPS
    def label_of(name, args, result):
        if name == "linear_forward":
            w = args[1]
            return f"linear {w.shape[1]}->{w.shape[0]} fwd"
        if name == "linear_backward":
            w = args[1].weight
            return f"linear {w.shape[1]}->{w.shape[0]} bwd"
        return name.replace("_forward", " fwd").replace("_backward", " bwd")

    def wrap(name, fn):
        def timed(*args, **kw):
            t = time.perf_counter()
            result = fn(*args, **kw)
            dt = time.perf_counter() - t
            key = label_of(name, args, result)
            totals[key][0] += dt
            totals[key][1] += 1
            if name == "linear_forward":                  # 2 FLOPs per multiply-add, rows x in x out
                totals[key][2] += 2 * args[0].size * args[1].shape[0]
            elif name == "linear_backward":               # dx and dW: twice the forward's
                totals[key][2] += 4 * args[1].x.size * args[1].weight.shape[0]
            return result
        timed.__name__ = fn.__name__
        timed.__doc__ = fn.__doc__
        return timed

    # the fused fields are wrapped too (and so kept: replace() drops a fused field only when it is not
    # given), so the profile is that of the model as it runs by default, fast paths included
    names = base.names() + [f for f in FUSED_OPS if getattr(base, f) is not None]
    return base.replace(**{name: wrap(name, getattr(base, name)) for name in names})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="mini")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--mode", choices=["eval", "train", "inference"], default="eval")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    from minibert import BertConfig, BertModel
    from minibert.model.ops_table import REFERENCE_OPS

    cfg = BertConfig.preset(args.config)
    B, T, H = args.batch, args.seq, cfg.hidden_size
    rng = np.random.default_rng(0)
    ids = rng.integers(1, cfg.vocab_size, (B, T))
    types = np.zeros_like(ids)
    mask = np.ones_like(ids)
    mask[B // 2:, T * 3 // 4:] = 0
    d_seq = rng.standard_normal((B, T, H), dtype=np.float32)
    d_pool = rng.standard_normal((B, H), dtype=np.float32)

    totals = collections.defaultdict(lambda: [0.0, 0, 0])
    model = BertModel(cfg, seed=0, ops=timed_table(REFERENCE_OPS, totals, H))
    model.train() if args.mode == "train" else model.eval()
    runs, walls = [], []
    for step in range(args.repeats + 1):                   # step 0: warm-up, not counted
        totals.clear()
        t = time.perf_counter()
        if args.mode == "inference":
            with model.inference():
                model.forward(ids, types, mask)
        else:
            model.forward(ids, types, mask)
            model.zero_grad()
            model.backward(d_seq, d_pool)
        if step > 0:
            walls.append(time.perf_counter() - t)
            runs.append({k: list(v) for k, v in totals.items()})

    wall = statistics.median(walls)
    labels = sorted({k for r in runs for k in r}, key=lambda k: -statistics.median(r.get(k, [0, 0, 0])[0] for r in runs))
    print(f"BertModel {args.config} (L{cfg.num_hidden_layers} H{H} I{cfg.intermediate_size}), batch {B} x seq {T}, "
          f"mode {args.mode}, median of {args.repeats} steps: {wall:.3f} s "
          f"(NumPy {np.__version__})")
    print(f"{'op':34s} {'calls':>6s} {'ms':>8s} {'share':>6s} {'GFLOP/s':>8s}")
    inside = 0.0
    for k in labels:
        s = statistics.median(r.get(k, [0, 0, 0])[0] for r in runs)
        calls, flops = runs[0].get(k, [0, 0, 0])[1:]
        inside += s
        g = f"{flops / s / 1e9:8.1f}" if flops and s > 0 else ""
        print(f"{k:34s} {calls:>6d} {1e3 * s:>8.1f} {100 * s / wall:>5.1f}% {g}")
    print(f"{'outside the op table':34s} {'':>6s} {1e3 * (wall - inside):>8.1f} {100 * (wall - inside) / wall:>5.1f}%")

    from minibert.ops.activations import gelu_forward

    def exp_kernel(x, out):
        np.exp(x, out=out)

    def gelu_kernel(x, out):
        gelu_forward(x.reshape(256, -1))

    print(f"in cache (64 Ki float32): numpy.exp {ns_per_element(exp_kernel):.2f} ns/element, "
          f"gelu_forward {ns_per_element(gelu_kernel, repeats=50):.2f} ns/element")
    return 0


if __name__ == "__main__":
    sys.exit(main())
