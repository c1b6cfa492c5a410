"""BertModel forward+backward: minibert vs transformers (PyTorch CPU), side by side in one run.

    python benchmarks/bench_model.py [--config mini] [--batch 32] [--seq 128] [--repeats 5]

Both run the same config with dropout off (eval mode) and 2 threads; the
backward is driven by the same fixed upstream gradients of both outputs.
Prints the median times, the ratio minibert / PyTorch, and minibert's achieved
GFLOP/s (matmul FLOPs of forward + backward) against this machine's float32
matmul peak, measured in the same run with NumPy on the model's own shapes.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np


def hf_config(cfg):
    """transformers.BertConfig with the fields of minibert BertConfig `cfg`."""
    import transformers
    return transformers.BertConfig(**{k: v for k, v in cfg.to_dict().items()
                                      if k not in ("model_type", "architectures")})


def model_inputs(cfg, B, T):
    """(ids, token types, attention mask, d_sequence, d_pooled) for a (B, T) batch, drawn from seed 0: the
    same numbers for every benchmark that times BertModel (here and run_all.py)."""
    rng = np.random.default_rng(0)
    ids = rng.integers(1, cfg.vocab_size, (B, T))
    types = np.zeros_like(ids)
    mask = np.ones_like(ids)
    mask[B // 2:, T * 3 // 4:] = 0                       # some padding, as in real batches
    d_seq = rng.standard_normal((B, T, cfg.hidden_size), dtype=np.float32)
    d_pool = rng.standard_normal((B, cfg.hidden_size), dtype=np.float32)
    return ids, types, mask, d_seq, d_pool


def model_matmul_flops(cfg, B, T) -> float:
    """Matmul FLOPs of one forward pass (2 per multiply-add); the backward does twice as many."""
    H, I, L = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    N = B * T
    per_layer = 2 * N * H * 3 * H + 2 * (2 * B * T * T * H) + 2 * N * H * H + 2 * 2 * N * H * I
    return L * per_layer + 2 * B * H * H


def matmul_peak(cfg, B, T, repeats=5) -> float:
    """Best float32 GFLOP/s of NumPy's matmul on the model's shapes, this machine, now."""
    N, H, I = B * T, cfg.hidden_size, cfg.intermediate_size
    rng = np.random.default_rng(0)
    best = 0.0
    for m, k, n in ((N, H, 3 * H), (N, H, I), (N, I, H)):
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        a @ b
        for _ in range(repeats):
            t = time.perf_counter()
            a @ b
            best = max(best, 2 * m * k * n / (time.perf_counter() - t) / 1e9)
    return best


def median_time(fn, repeats):
    fn()                                    # warm-up (allocations, caches)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="mini")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    import torch
    import transformers
    from minibert import BertConfig, BertModel

    torch.set_num_threads(args.threads)
    cfg = BertConfig.preset(args.config, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    B, T = args.batch, args.seq
    ids, types, mask, d_seq, d_pool = model_inputs(cfg, B, T)
    model = BertModel(cfg, seed=0).eval()

    def mb_forward():
        return model.forward(ids, types, mask)

    def mb_step():
        model.forward(ids, types, mask)
        model.zero_grad()
        model.backward(d_seq, d_pool)

    ref = transformers.BertModel(hf_config(cfg)).eval()
    t_ids, t_types, t_mask = (torch.tensor(a) for a in (ids, types, mask))
    t_dseq, t_dpool = torch.tensor(d_seq), torch.tensor(d_pool)

    def pt_forward():
        with torch.no_grad():
            return ref(input_ids=t_ids, token_type_ids=t_types, attention_mask=t_mask)

    def pt_step():
        ref.zero_grad()
        out = ref(input_ids=t_ids, token_type_ids=t_types, attention_mask=t_mask)
        torch.autograd.backward([out.last_hidden_state, out.pooler_output], [t_dseq, t_dpool])

    peak = matmul_peak(cfg, B, T)
    flops = model_matmul_flops(cfg, B, T)
    rows = []
    for label, mb, pt, f in (("forward", mb_forward, pt_forward, flops),
                             ("forward+backward", mb_step, pt_step, 3 * flops)):
        # interleave the two so that machine noise hits both alike
        mb_t, pt_t = [], []
        for _ in range(args.repeats):
            mb_t.append(median_time(mb, 1))
            pt_t.append(median_time(pt, 1))
        m, p = statistics.median(mb_t), statistics.median(pt_t)
        rows.append((label, m, p, f / m / 1e9))

    print(f"BertModel {args.config} (L{cfg.num_hidden_layers} H{cfg.hidden_size} A{cfg.num_attention_heads} "
          f"I{cfg.intermediate_size}), batch {B} x seq {T}, float32, dropout off, {args.threads} threads, "
          f"median of {args.repeats}")
    print(f"NumPy float32 matmul peak on the model's shapes: {peak:.1f} GFLOP/s")
    print(f"{'':18} {'minibert':>10} {'PyTorch':>10} {'ratio':>7} {'GFLOP/s':>8} {'% of peak':>9}")
    for label, m, p, g in rows:
        print(f"{label:18} {m:>9.3f}s {p:>9.3f}s {m / p:>6.2f}x {g:>8.1f} {100 * g / peak:>8.0f}%")


if __name__ == "__main__":
    main()
