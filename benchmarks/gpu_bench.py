"""Time minibert on a GPU: BERT-base training steps and MiniLM inference, per precision (issue 17).

    python benchmarks/gpu_bench.py                 # CuPy: BERT-base seq 128 batch 32, MiniLM inference
    python benchmarks/gpu_bench.py --dry-run       # NumPy, tiny shapes: checks the script itself (CI)
    python benchmarks/gpu_bench.py --budget 300 --steps 10 --precisions fp32,tf32,fp16

Run by benchmarks/gpu_check.sh on the day a GPU is lent. For each precision (fp32, tf32, fp16 with loss
scaling) it runs warm-up steps, then times N steps with the device synchronised before and after
(cupy.cuda.Device().synchronize(); the wall time of N steps divided by N, so host work between kernels
counts, as it does in training), and prints the achieved TFLOP/s and the fraction of the device's peak.

FLOP model (matmuls only, 2 FLOP per multiply-add; the elementwise work is not counted; the backward
does twice the forward's matmul FLOPs, so a training step is 3x a forward), for L layers, hidden H, FFN
width I, vocabulary V, batch B, sequence T, N = B T tokens:
    encoder layer forward   2 N H (3H)  Q/K/V  +  2 (2 B T^2 H)  QK^T and PV  +  2 N H H  output
                            + 2 (2 N H I)  the FFN's two matmuls
    pretraining heads       MLM transform 2 M H H and tied decoder 2 M H V on the M = B * 20 gathered
                            masked positions (Google's max_predictions_per_seq = 20 at T = 128),
                            pooler 2 B H H, NSP 2 B H 2
BERT-base (L12 H768 I3072 V30522), B 32, T 128: 3 x 0.746 = 2.24 TFLOP per training step (issue 17's
figure; 4.5 ms at an H100's dense TF32 peak). Inference: one forward of the encoder.

Peaks (dense, no sparsity; vendor datasheets; TFLOP/s): the table PEAKS below, read from the device name;
an unknown device prints "peak unknown". fp32 is compared with the device's plain FP32 (CUDA-core) peak,
tf32 with its TF32 tensor-core peak, fp16 with its FP16 tensor-core peak.

Every section runs in its own try/except: an error prints one line (`error: <section>: <message>`) and the
script goes on; --budget SECONDS stops starting new sections once the time is spent (each one says so).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

# dense peaks in TFLOP/s: fp32 (CUDA cores), tf32 and fp16 (tensor cores). H100/H200: SXM parts.
PEAKS = {
    "H200": {"fp32": 67.0, "tf32": 495.0, "fp16": 989.0},
    "H100": {"fp32": 67.0, "tf32": 495.0, "fp16": 989.0},
    "A100": {"fp32": 19.5, "tf32": 156.0, "fp16": 312.0},
    "L4": {"fp32": 30.3, "tf32": 60.0, "fp16": 121.0},
}

PREDICTIONS_PER_SEQ = 20        # Google's max_predictions_per_seq at T = 128


def encoder_forward_flops(L, H, I, B, T) -> float:
    """Matmul FLOPs of one encoder forward (see the module docstring)."""
    N = B * T
    per_layer = 2 * N * H * 3 * H + 2 * (2 * B * T * T * H) + 2 * N * H * H + 2 * (2 * N * H * I)
    return float(L * per_layer)


def pretraining_step_flops(L, H, I, V, B, T, predictions_per_seq=PREDICTIONS_PER_SEQ) -> float:
    """Matmul FLOPs of one BertForPreTraining training step (forward + backward = 3 forwards)."""
    M = B * predictions_per_seq
    heads = 2 * M * H * H + 2 * M * H * V + 2 * B * H * H + 2 * B * H * 2
    return 3.0 * (encoder_forward_flops(L, H, I, B, T) + heads)


def device_peak(device_name: str, precision: str):
    """The dense peak (TFLOP/s) of this precision on the device named so, or None when unknown."""
    words = device_name.replace("-", " ").split()
    for key, peaks in PEAKS.items():
        if key in words:                    # "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "NVIDIA L4"
            return peaks.get(precision)
    return None


def _fmt_row(label, seconds, flops, peak):
    tflops = flops / seconds / 1e12
    share = f"{100 * tflops / peak:5.1f}% of {peak:g}" if peak else "peak unknown"
    return f"{label:<34} {seconds * 1e3:10.2f} ms {tflops:9.4g} TFLOP/s   {share}"


class Bench:
    """The sections, each guarded, and the time budget."""

    def __init__(self, args):
        self.args = args
        self.start = time.perf_counter()
        self.errors = 0

    def left(self) -> float:
        return self.args.budget - (time.perf_counter() - self.start)

    def section(self, name, fn, *a):
        if self.left() <= 0:
            print(f"skipped: {name}: the --budget of {self.args.budget:g} s is spent")
            return None
        try:
            return fn(*a)
        except Exception as err:            # one line per failed section, then the next one
            self.errors += 1
            print(f"error: {name}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            return None


def _sync():
    """Wait for the device (CuPy) to finish what was queued; nothing on NumPy."""
    from minibert import backend
    if backend.name() == "cupy":
        import cupy
        cupy.cuda.Device().synchronize()


def _timed(fn, warmup, steps) -> float:
    """Seconds per call of fn: warm-up calls, then `steps` calls between two synchronisations."""
    for _ in range(warmup):
        fn()
    _sync()
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync()
    return (time.perf_counter() - t) / steps


def pretraining_batch(V, B, T, rng, predictions=PREDICTIONS_PER_SEQ):
    """Host arrays of a BertForPreTraining batch: `predictions` masked positions per sequence."""
    ids = rng.integers(5, V, (B, T))
    labels = np.full((B, T), -100)
    for b in range(B):
        pos = rng.choice(np.arange(1, T - 1), size=min(predictions, T - 2), replace=False)
        labels[b, pos] = ids[b, pos]
        ids[b, pos] = 4
    types = np.zeros((B, T), dtype=np.int64)
    types[:, T // 2:] = 1
    return dict(input_ids=ids, token_type_ids=types, attention_mask=np.ones((B, T), dtype=np.int64),
                labels=labels, next_sentence_label=rng.integers(0, 2, B))


def train_section(cfg, B, T, precision, args, peak):
    from minibert.backend.precision import using_precision
    from minibert.model.heads.pretraining import BertForPreTraining
    from minibert.train.amp import LossScaler
    from minibert.train.optim import AdamW
    from minibert.train.pretrain import pretraining_step

    batch = pretraining_batch(cfg.vocab_size, B, T, np.random.default_rng(0))
    with using_precision(precision):
        model = BertForPreTraining(cfg, seed=0).train()
        opt = AdamW(model.params, lr=1e-4)
        scaler = LossScaler() if precision == "fp16" else None

        def step():
            pretraining_step(model, opt, [batch], lr=1e-4, max_grad_norm=1.0, scaler=scaler)
        seconds = _timed(step, args.warmup, args.steps)
    flops = pretraining_step_flops(cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size,
                                   cfg.vocab_size, B, T)
    print(_fmt_row(f"train step {precision}", seconds, flops, peak))
    return seconds


def inference_section(cfg, B, T, precision, args, peak):
    from minibert.backend.precision import mixed_precision, using_precision
    from minibert.model.bert import BertModel

    rng = np.random.default_rng(1)
    ids = rng.integers(5, cfg.vocab_size, (B, T))
    mask = np.ones((B, T), dtype=np.int64)
    with using_precision(precision):
        model = BertModel(cfg, seed=0)

        def forward():
            with model.inference(), mixed_precision(precision == "fp16"):
                model.forward(ids, attention_mask=mask)
        seconds = _timed(forward, args.warmup, args.steps)
    flops = encoder_forward_flops(cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size, B, T)
    print(_fmt_row(f"inference {precision}", seconds, flops, peak))
    return seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="NumPy, tiny shapes, 1 step: check the script")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per section")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation, memory pool)")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds after which no new section starts")
    ap.add_argument("--precisions", default="fp32,tf32,fp16")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    args = ap.parse_args(argv)

    from minibert import backend
    from minibert.model.config import BertConfig

    if args.dry_run:
        backend.use("numpy")
        args.steps, args.warmup = 1, 1
        base = BertConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=128)
        minilm = BertConfig(vocab_size=1000, hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=96)
        B, T = 2, 16
        device = "cpu (NumPy dry run)"
    else:
        backend.use(os.environ.get("MINIBERT_BACKEND") or "cupy")
        base = BertConfig()                                    # BERT-base
        minilm = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
        B, T = args.batch, args.seq
        device = _device_name()
    bench = Bench(args)
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    print(f"device: {device}; backend {backend.name()}; {args.steps} timed steps after {args.warmup} warm-up; "
          f"budget {args.budget:g} s")
    print(f"FLOP model: BERT-base-shaped training step {pretraining_step_flops(12, 768, 3072, 30522, 32, 128) / 1e12:.3f}"
          f" TFLOP at B32 T128 (this run: L{base.num_hidden_layers} H{base.hidden_size}, B{B} T{T}: "
          f"{pretraining_step_flops(base.num_hidden_layers, base.hidden_size, base.intermediate_size, base.vocab_size, B, T) / 1e12:.4g} TFLOP)")
    print(f"{'section':<34} {'time/step':>13} {'achieved':>17}   fraction of the dense peak (TFLOP/s)")
    for p in precisions:
        bench.section(f"train {p}", train_section, base, B, T, p, args, device_peak(device, p))
    for p in precisions:
        bench.section(f"inference {p}", inference_section, minilm, B, T, p, args, device_peak(device, p))
    print(f"done in {time.perf_counter() - bench.start:.1f} s, {bench.errors} section(s) failed")
    return 0


def _device_name() -> str:
    import cupy
    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


if __name__ == "__main__":
    sys.exit(main())
