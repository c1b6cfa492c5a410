"""Time per fine-tuning step: minibert (full, --freeze-layers K, --fp16) and transformers, side by side.

    python benchmarks/bench_finetune.py [--repeats 6] [--threads 2] [--freeze-layers 4]

The packaged all-MiniLM-L6-v2 with a sequence-classification head, one real SST-2 batch
(32 sentences, padded to the longest), the whole step: forward, backward, clipping, AdamW.
Freezing skips the frozen layers' backward (and their update); fp16 emulates float16 matmuls on
NumPy (slower here: on a GPU the same code runs real float16 matmuls). Medians of --repeats steps
after one warm-up step, each configuration in turn, on the same batch.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import median_time  # noqa: E402

SST2 = REPO.parent / "shared" / "data" / "sst2" / "train.tsv"


def minibert_step_time(batch, repeats, freeze_layers=0, fp16=False):
    from minibert.train.amp import LossScaler
    from minibert.train.finetune import FinetuneArgs, _model_dir, finetune_step
    from minibert.train.finetune_tasks import get_task
    from minibert.train.optim import AdamW

    args = FinetuneArgs(task="sst2", train="", dev="")
    task = get_task("sst2")
    model = task.load_model(_model_dir(args), args).train()
    if freeze_layers:
        model.freeze(embeddings=True, layers=freeze_layers)
    opt = AdamW(model.params, lr=3e-5, frozen=model.frozen_names())
    scaler = LossScaler() if fp16 else None
    return median_time(lambda: finetune_step(model, task, opt, [batch], 3e-5, 1.0, scaler), repeats)


def torch_step_time(batch, repeats, minibert_model_dir, threads):
    import torch
    import transformers

    torch.set_num_threads(threads)
    ref = transformers.BertForSequenceClassification.from_pretrained(minibert_model_dir, num_labels=2).train()
    opt = torch.optim.AdamW(ref.parameters(), lr=3e-5)
    inputs = {k: torch.tensor(batch[k]) for k in ("input_ids", "token_type_ids", "attention_mask", "labels")}

    def step():
        opt.zero_grad()
        ref(**inputs).loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
        opt.step()

    return median_time(step, repeats)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--freeze-layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32, help="sentences in the batch")
    a = ap.parse_args(argv)
    from minibert.train.finetune import FinetuneArgs, _model_dir
    from minibert.train.finetune_tasks import get_task
    from minibert.tokenization import BertTokenizer

    model_dir = _model_dir(FinetuneArgs(task="sst2", train="", dev=""))
    task = get_task("sst2")
    data = task.load(SST2, BertTokenizer.from_pretrained(model_dir), 64, limit=a.batch)
    batch = data.encoded.batch(range(a.batch))
    B, T = batch["input_ids"].shape
    rows = [("transformers", torch_step_time(batch, a.repeats, model_dir, a.threads)),
            ("minibert", minibert_step_time(batch, a.repeats)),
            (f"minibert --freeze-layers {a.freeze_layers}", minibert_step_time(batch, a.repeats, a.freeze_layers)),
            ("minibert --fp16 (emulated)", minibert_step_time(batch, a.repeats, fp16=True))]
    print(f"MiniLM-L6 sequence classification, one SST-2 batch {B} x {T}, {a.threads} threads, "
          f"median of {a.repeats} steps")
    base = rows[0][1]
    for name, t in rows:
        print(f"  {name:32} {t:7.3f} s/step   {t / base:5.2f}x transformers")


if __name__ == "__main__":
    sys.exit(main())
