"""Row blocks on threads and OpenBLAS's spinning threads: each option measured side by side.

    python benchmarks/bench_threads.py [--rounds 5] [--steps 2]

backend/blocks.py can hand the cache-sized row blocks of the elementwise ops (GELU, LayerNorm,
softmax, AdamW) to MINIBERT_THREADS threads. After each matmul OpenBLAS's own worker threads keep
spinning for a while (OPENBLAS_THREAD_TIMEOUT, default 2^28 cycles) and take the second core the
row blocks want. Options, each run in its own process (OpenBLAS reads its settings when it loads):

    1 thread              MINIBERT_THREADS=1 (blocks in the calling thread), BLAS 2 threads
    2 threads             MINIBERT_THREADS=2, OpenBLAS as it comes
    2 + timeout           MINIBERT_THREADS=2, OPENBLAS_THREAD_TIMEOUT=1 (spin 2^4 cycles, then sleep)
    2 + limit             MINIBERT_THREADS=2, BLAS set to 1 thread while the blocks run (threadpoolctl;
                          minibert's default when threadpoolctl is installed: MINIBERT_QUIET_BLAS=1)
    2 + BLAS 1            MINIBERT_THREADS=2, OPENBLAS_NUM_THREADS=1 (single-threaded matmuls throughout)
    2 + own GEMM          MINIBERT_THREADS=2, MINIBERT_MATMUL_ROWS=1: the Linear matmuls cut into blocks of
                          512 rows on the block threads, one single-threaded BLAS call each, and BLAS held at
                          one thread from the first such call on (blocks.matmul_rows)

    PyTorch 2             transformers' BertModel on torch's 2 threads: the same step, for the ratio

Timed: BertModel mini, batch 32 x 128, float32, dropout off, forward + backward (wall seconds and
process CPU seconds); the rounds interleave the options so that load on the machine hits all alike.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

OPTIONS = {
    "1 thread": {"MINIBERT_THREADS": "1"},
    "2 threads": {"MINIBERT_THREADS": "2", "MINIBERT_QUIET_BLAS": "0"},
    "2 + timeout": {"MINIBERT_THREADS": "2", "MINIBERT_QUIET_BLAS": "0", "OPENBLAS_THREAD_TIMEOUT": "1"},
    "2 + limit": {"MINIBERT_THREADS": "2", "MINIBERT_QUIET_BLAS": "1"},      # the default (threadpoolctl)
    "2 + BLAS 1": {"MINIBERT_THREADS": "2", "OPENBLAS_NUM_THREADS": "1"},
    "2 + own GEMM": {"MINIBERT_THREADS": "2", "MINIBERT_MATMUL_ROWS": "1"},
    "PyTorch 2": {"BENCH_TORCH": "2"},                  # transformers' BertModel, torch.set_num_threads(2)
}


def child(steps: int, batch: int, seq: int) -> None:
    """One process, one option (from the environment): print a JSON list of (wall, cpu) per step."""
    import numpy as np
    from minibert import BertConfig, BertModel
    cfg = BertConfig.preset("mini", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, cfg.vocab_size, (batch, seq))
    types, mask = np.zeros_like(ids), np.ones_like(ids)
    mask[batch // 2:, seq * 3 // 4:] = 0
    d_seq = rng.standard_normal((batch, seq, cfg.hidden_size), dtype=np.float32)
    d_pool = rng.standard_normal((batch, cfg.hidden_size), dtype=np.float32)
    if os.environ.get("BENCH_TORCH"):                   # the reference, same inputs and upstream gradients
        import torch
        import transformers
        from bench_model import hf_config
        torch.set_num_threads(int(os.environ["BENCH_TORCH"]))
        ref = transformers.BertModel(hf_config(cfg)).eval()
        t_ids, t_types, t_mask, t_dseq, t_dpool = (torch.tensor(a) for a in (ids, types, mask, d_seq, d_pool))

        def step():
            ref.zero_grad()
            out = ref(input_ids=t_ids, token_type_ids=t_types, attention_mask=t_mask)
            torch.autograd.backward([out.last_hidden_state, out.pooler_output], [t_dseq, t_dpool])
    else:
        model = BertModel(cfg, seed=0).eval()

        def step():
            model.forward(ids, types, mask)
            model.zero_grad()
            model.backward(d_seq, d_pool)
    step()                                                  # warm-up
    out = []
    for _ in range(steps):
        w, c = time.perf_counter(), time.process_time()
        step()
        out.append((time.perf_counter() - w, time.process_time() - c))
    print(json.dumps(out))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args.steps, args.batch, args.seq)
    times = {name: [] for name in OPTIONS}
    for _ in range(args.rounds):                            # interleaved: load hits every option alike
        for name, env in OPTIONS.items():
            full = {k: v for k, v in os.environ.items()
                    if k not in ("MINIBERT_THREADS", "MINIBERT_QUIET_BLAS", "MINIBERT_MATMUL_ROWS",
                                  "OPENBLAS_THREAD_TIMEOUT",
                                  "OPENBLAS_NUM_THREADS")}
            full.update(env)
            res = subprocess.run([sys.executable, __file__, "--child", "--steps", str(args.steps),
                                  "--batch", str(args.batch), "--seq", str(args.seq)],
                                 env=full, capture_output=True, text=True, check=True)
            times[name] += json.loads(res.stdout.strip().splitlines()[-1])
    print(f"BertModel mini {args.batch} x {args.seq} forward + backward, float32, median of "
          f"{args.rounds} rounds x {args.steps} steps, options interleaved; load average now "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    base = statistics.median(w for w, _ in times["1 thread"])
    torch_wall = statistics.median(w for w, _ in times["PyTorch 2"])
    print(f"{'option':14} {'wall s':>8} {'cpu s':>8} {'wall vs 1 thread':>17} {'vs PyTorch 2':>13}")
    for name, t in times.items():
        w, c = statistics.median(x for x, _ in t), statistics.median(y for _, y in t)
        print(f"{name:14} {w:>8.3f} {c:>8.3f} {w / base:>16.2f}x {w / torch_wall:>12.2f}x")


if __name__ == "__main__":
    main()
