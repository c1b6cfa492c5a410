"""One BertForPreTraining training step: minibert vs transformers (PyTorch CPU), side by side in one run.

    python benchmarks/bench_pretraining.py [--config mini] [--batch 32] [--seq 128] [--repeats 3]

Both take the same batch (15% of the tokens masked, labels -100 elsewhere,
NSP labels), run forward, backward and an AdamW step (clip 1.0), with dropout
on as in real training and 2 threads. minibert gathers the masked positions
before the vocabulary-sized decoder, as google-research/bert does. The ratio is
taken against the like-for-like reference: transformers' BertForPreTraining with
its MLM head run on the labelled rows only (pretrain_compare.gathered_loss, the
same loss and gradients); transformers' own forward, which computes MLM logits
at every position (about 6x the decoder work), is timed beside it for
information. Prints median step times, the ratio, minibert's achieved GFLOP/s on the FLOPs it does against NumPy's
float32 matmul peak measured in the same run, and the peak memory minibert's
arrays take during a step (tracemalloc sees every NumPy allocation).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from bench_model import hf_config, matmul_peak, model_matmul_flops
from gpu_bench import pretraining_batch
from pretrain_compare import gathered_loss


def make_batch(cfg, B, T, rng):
    """A BertForPreTraining batch with 15% of the positions masked (at most 20, Google's
    max_predictions_per_seq): gpu_bench's batch, so the CPU and GPU figures time the same work."""
    return pretraining_batch(cfg.vocab_size, B, T, rng, predictions=min(20, max(1, round(T * 0.15))))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="mini")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    import torch
    import transformers
    from minibert import BertConfig
    from minibert.model.heads.pretraining import BertForPreTraining
    from minibert.train.optim import AdamW, decays
    from minibert.train.pretrain import pretraining_step

    torch.set_num_threads(args.threads)
    cfg = BertConfig.preset(args.config)
    B, T = args.batch, args.seq
    batch = make_batch(cfg, B, T, np.random.default_rng(0))
    M = int((batch["labels"] != -100).sum())

    model = BertForPreTraining(cfg, seed=0).train()
    opt = AdamW(model.params, lr=1e-4)

    def mb_step():
        pretraining_step(model, opt, [batch], lr=1e-4, max_grad_norm=1.0)

    ref = transformers.BertForPreTraining(hf_config(cfg)).train()
    topt = torch.optim.AdamW([{"params": [p for n, p in ref.named_parameters() if decays(n)], "weight_decay": 0.01},
                              {"params": [p for n, p in ref.named_parameters() if not decays(n)], "weight_decay": 0.0}],
                             lr=1e-4)
    tb = {k: torch.tensor(v) for k, v in batch.items()}

    def pt_step(full_logits=False):
        topt.zero_grad()
        (ref(**tb).loss if full_logits else gathered_loss(ref, tb)).backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
        topt.step()

    mb_step(), pt_step(), pt_step(True)                       # warm-up
    mb_t, pt_t, full_t = [], [], []
    for _ in range(args.repeats):                             # interleaved: noise hits all alike
        t = time.perf_counter(); mb_step(); mb_t.append(time.perf_counter() - t)
        t = time.perf_counter(); pt_step(); pt_t.append(time.perf_counter() - t)
        t = time.perf_counter(); pt_step(True); full_t.append(time.perf_counter() - t)
    m, p, full = statistics.median(mb_t), statistics.median(pt_t), statistics.median(full_t)

    tracemalloc.start()
    mb_step()
    _, peak_bytes = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    peak = matmul_peak(cfg, B, T)
    H, V = cfg.hidden_size, cfg.vocab_size
    head_fwd = 2 * M * H * H + 2 * M * H * V + 2 * B * H * 2        # MLM transform + decoder on M rows, NSP
    flops = 3 * (model_matmul_flops(cfg, B, T) + head_fwd)
    print(f"BertForPreTraining {args.config} (L{cfg.num_hidden_layers} H{cfg.hidden_size} A{cfg.num_attention_heads}), "
          f"batch {B} x seq {T}, {M} masked positions, float32, dropout on, AdamW + clipping, "
          f"{args.threads} threads, median of {args.repeats}")
    print(f"NumPy float32 matmul peak on the model's shapes: {peak:.1f} GFLOP/s")
    print(f"minibert step     {m:7.3f} s   ({flops / m / 1e9:.1f} GFLOP/s on its {flops / 1e9:.1f} GFLOP, "
          f"{100 * flops / m / 1e9 / peak:.0f}% of peak)")
    print(f"transformers step {p:7.3f} s   (gather-first: MLM head on the {M} labelled rows)")
    print(f"transformers step {full:7.3f} s   (its own forward: MLM logits at all {B * T} positions)")
    print(f"ratio minibert / transformers gather-first: {m / p:.2f}x   (/ full logits: {m / full:.2f}x)")
    print(f"minibert peak memory of a step (NumPy arrays, tracemalloc): {peak_bytes / 2**20:.0f} MiB "
          f"(parameters + AdamW state: {sum(v.nbytes for v in model.params.values()) * 4 / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
