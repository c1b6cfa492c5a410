"""The fused fast paths (minibert/ops/fused.py) against the readable ops they replace, one op at a time.

    python benchmarks/bench_fused.py [--batch 32] [--seq 128] [--hidden 256] [--heads 4] [--repeats 9]

BERT-mini's shapes by default (N = batch * seq rows, I = 4 H, dropout 0.1). Each row runs the fused
function and the readable composition alternately (interleaved, so machine noise hits both alike),
prints the medians and their ratio, and checks that both gave the same numbers, bit for bit.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from minibert.ops.activations import gelu_backward, gelu_forward
from minibert.ops.attention import attention_mask_bias
from minibert.ops.dropout import dropout_backward, dropout_forward, dropout_mask
from minibert.ops.fused import (bias_gelu_backward, bias_gelu_forward, masked_softmax_dropout_forward,
                                residual_layer_norm_backward, residual_layer_norm_forward, softmax_dropout_backward)
from minibert.ops.layer_norm import layer_norm_backward, layer_norm_forward
from minibert.ops.softmax import softmax_backward, softmax_forward


def cases(B, T, H, A, p):
    rng = np.random.default_rng(0)
    N, I = B * T, 4 * H
    f32 = np.float32
    z, dz = rng.standard_normal((N, I), dtype=f32), rng.standard_normal((N, I), dtype=f32)
    b = rng.standard_normal(I, dtype=f32)
    x, sub, dy = (rng.standard_normal((N, H), dtype=f32) for _ in range(3))
    g, be = rng.standard_normal(H, dtype=f32), rng.standard_normal(H, dtype=f32)
    hmask = dropout_mask(x.shape, p, rng, np, x.dtype)
    s, ds = rng.standard_normal((B, A, T, T), dtype=f32), rng.standard_normal((B, A, T, T), dtype=f32)
    am = np.ones((B, T), dtype=int)
    am[B // 2:, T * 3 // 4:] = 0
    bias = attention_mask_bias(am, np.dtype(f32))
    amask = dropout_mask(s.shape, p, rng, np, s.dtype)

    def gelu_readable():
        u = z.copy()
        u += b
        y, d = gelu_forward(u)
        du = gelu_backward(dz, d)
        return y, du, du.sum(axis=0)

    def gelu_fused():
        y, d = bias_gelu_forward(z.copy(), b)
        du, db = bias_gelu_backward(dz.copy(), d)
        return y, du, db

    def add_norm_readable():
        d, c_drop = dropout_forward(sub, p, mask=hmask)
        y, c = layer_norm_forward(d + x, g, be, 1e-12)
        ds_, dg, db = layer_norm_backward(dy, c)
        return y, ds_, dropout_backward(ds_, c_drop), dg, db

    def add_norm_fused():
        y, c = residual_layer_norm_forward(x, sub, g, be, 1e-12, hmask)
        return (y,) + tuple(residual_layer_norm_backward(dy, c))

    def softmax_readable():
        sc = s.copy()
        sc += bias
        probs, _ = softmax_forward(sc, inplace=True)
        dropped, c = dropout_forward(probs, p, mask=amask)
        return probs, dropped, softmax_backward(dropout_backward(ds, c), probs)

    def softmax_fused():
        probs, dropped = masked_softmax_dropout_forward(s.copy(), bias, amask)
        return probs, dropped, softmax_dropout_backward(ds.copy(), probs, amask)

    return [(f"bias + GELU fwd+bwd ({N}, {I})", gelu_fused, gelu_readable),
            (f"dropout + residual + LayerNorm fwd+bwd ({N}, {H})", add_norm_fused, add_norm_readable),
            (f"mask + softmax + dropout fwd+bwd ({B}, {A}, {T}, {T})", softmax_fused, softmax_readable)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args(argv)
    print(f"fused vs readable, float32, median of {args.repeats} interleaved repeats (the fused side also "
          f"times the copies of the inputs it overwrites)")
    print(f"{'':52} {'fused':>9} {'readable':>9} {'ratio':>6}  same numbers")
    for label, fused, readable in cases(args.batch, args.seq, args.hidden, args.heads, 0.1):
        tf, tr = [], []
        for _ in range(args.repeats):
            for fn, times in ((fused, tf), (readable, tr)):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
        same = all(np.array_equal(a, b) for a, b in zip(fused(), readable()))
        f, r = statistics.median(tf), statistics.median(tr)
        print(f"{label:52} {1e3 * f:>7.1f}ms {1e3 * r:>7.1f}ms {f / r:>5.2f}x  {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
