"""Sentence-embedding throughput: minibert vs transformers vs sentence-transformers, in one run.

    python benchmarks/bench_embed.py [--data ../shared/data] [--sentences 2000] [--padded 256]
                                     [--batch 32] [--threads 2] [--repeats 1]

The bundled all-MiniLM-L6-v2, float32, 2 threads for NumPy's BLAS and for PyTorch. Two workloads:

A. real sentences: the first --sentences SST-2 train sentences, batches of 32.
   - end to end (tokenize, sort by length, forward, mean-pool, normalise):
     `minibert.embed` vs sentence-transformers' `encode` (its Rust tokenizer, its own sorting);
   - the model alone on identical batches (minibert's token ids, sorted by length as
     minibert.embed does, padded per batch): minibert's BertModel.forward + pooling vs
     transformers' BertModel (no_grad) + the same pooling.
B. --padded sentences padded to 128 tokens (the shape of the baseline in shared/REFERENCES.md):
   minibert vs transformers on the same (32, 128) batches, model + pooling.

Every figure is sentences per second (higher is better); ratios are minibert / reference.
Each path runs once untimed first (warm-up: on these VMs the first pass over fresh large arrays
pays for page faults, up to 10x its steady time). The timed runs are interleaved (minibert,
transformers, sentence-transformers, then again) so that noise from other processes on the
machine hits all of them alike; the best of --repeats is kept.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def set_threads(n: int) -> None:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def read_sst2(path: Path, n: int) -> list[str]:
    """SST-2 TSV: split on the tab with no quote handling, strip the trailing space."""
    if not path.is_file():
        raise SystemExit(f"no SST-2 file at {path}: pass --data (the folder holding sst2/train.tsv)")
    lines = path.read_text(encoding="utf-8").split("\n")[1:]
    sentences = [line.split("\t")[0].strip() for line in lines if line]
    if len(sentences) < n:
        raise SystemExit(f"{path} has {len(sentences)} sentences, fewer than --sentences {n}")
    return sentences[:n]


def best_time(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None):
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(here.parent.parent / "shared" / "data"))
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--padded", type=int, default=256)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--no-sentence-transformers", dest="st", action="store_false")
    args = ap.parse_args(argv)
    set_threads(args.threads)

    import numpy as np
    import torch
    import transformers

    import minibert
    from minibert.apps.embed import _batches, _padded, l2_normalize, load_encoder, pool

    torch.set_num_threads(args.threads)
    sentences = read_sst2(Path(args.data) / "sst2" / "train.tsv", max(args.sentences, args.padded))
    real, padded_set = sentences[:args.sentences], sentences[:args.padded]

    encoder = load_encoder()                                   # the bundled all-MiniLM-L6-v2
    folder = str(Path(encoder.name))
    hf = transformers.BertModel.from_pretrained(folder).eval()
    tok = encoder.tokenizer

    def hf_embed(batches):
        out = []
        with torch.no_grad():
            for ids, mask in batches:
                h = hf(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state
                m = mask[:, :, None].astype(np.float32)
                u = (h.numpy() * m).sum(1) / np.maximum(m.sum(1), 1e-9)
                out.append(u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12))
        return out

    def mb_embed(batches):
        out = []
        for ids, mask in batches:
            h, _ = encoder.model.forward(ids, None, mask)
            out.append(l2_normalize(pool(h, mask)))
        return out

    # -- A: real sentences -----------------------------------------------------------------
    ids_list = tok(real, truncation=True, max_length=encoder.max_length)["input_ids"]
    batches_a = [_padded([ids_list[i] for i in index], tok.pad_token_id)
                 for index in _batches([len(x) for x in ids_list], args.batch)]
    tokens_a = sum(len(x) for x in ids_list)
    # warm-up on the longest batches (allocations at the largest shapes), and a check that the
    # two models compute the same vectors, so that the comparison is between equals
    check = np.concatenate(mb_embed(batches_a[:2])), np.concatenate(hf_embed(batches_a[:2]))
    assert np.abs(check[0] - check[1]).max() < 1e-4, "minibert and transformers disagree: not comparable"
    st = None
    if args.st:
        from sentence_transformers import SentenceTransformer
        st = SentenceTransformer(folder, device="cpu")
        st.encode(real[:2 * args.batch], batch_size=args.batch, show_progress_bar=False)      # warm-up
    times = {"minibert.embed": [], "sentence-transformers encode": [], "minibert model": [],
             "transformers model": []}
    for _ in range(args.repeats):
        times["minibert.embed"].append(best_time(lambda: minibert.embed(real, encoder, batch_size=args.batch,
                                                                       progress=False), 1))
        times["minibert model"].append(best_time(lambda: mb_embed(batches_a), 1))
        times["transformers model"].append(best_time(lambda: hf_embed(batches_a), 1))
        if st is not None:
            times["sentence-transformers encode"].append(best_time(
                lambda: st.encode(real, batch_size=args.batch, show_progress_bar=False), 1))

    # -- B: padded to 128 tokens -------------------------------------------------------------------
    enc = tok(padded_set, padding="max_length", truncation=True, max_length=args.seq, return_tensors="np")
    batches_b = [(enc["input_ids"][i:i + args.batch], enc["attention_mask"][i:i + args.batch])
                 for i in range(0, len(padded_set), args.batch)]
    mb_embed(batches_b[:1]), hf_embed(batches_b[:1])          # warm-up: the first pass at a new shape pays
    times["minibert model, padded"], times["transformers model, padded"] = [], []    # for fresh memory pages
    for _ in range(args.repeats):
        times["minibert model, padded"].append(best_time(lambda: mb_embed(batches_b), 1))
        times["transformers model, padded"].append(best_time(lambda: hf_embed(batches_b), 1))

    rate = {k: (len(real) if "padded" not in k else len(padded_set)) / min(v) for k, v in times.items() if v}
    print(f"all-MiniLM-L6-v2 (L6 H384 A12), float32, batch {args.batch}, {args.threads} threads "
          f"(NumPy {np.__version__}, torch {torch.__version__}, transformers {transformers.__version__}), "
          f"best of {args.repeats}")
    print(f"A. {len(real)} SST-2 train sentences, {tokens_a} tokens (mean {tokens_a / len(real):.1f}), "
          f"sorted by length, padded per batch")
    print(f"   {'end to end':42s} {'sentences/s':>12}")
    print(f"   {'minibert.embed':42s} {rate['minibert.embed']:>12.1f}")
    if "sentence-transformers encode" in rate:
        r = rate["minibert.embed"] / rate["sentence-transformers encode"]
        print(f"   {'sentence-transformers encode':42s} {rate['sentence-transformers encode']:>12.1f}   "
              f"ratio minibert / sentence-transformers {r:.2f}x")
    print(f"   {'model + pooling, identical batches':42s}")
    print(f"   {'minibert BertModel':42s} {rate['minibert model']:>12.1f}")
    print(f"   {'transformers BertModel':42s} {rate['transformers model']:>12.1f}   "
          f"ratio minibert / transformers {rate['minibert model'] / rate['transformers model']:.2f}x")
    print(f"B. {len(padded_set)} sentences padded to {args.seq} tokens, model + pooling")
    print(f"   {'minibert BertModel':42s} {rate['minibert model, padded']:>12.1f}")
    print(f"   {'transformers BertModel':42s} {rate['transformers model, padded']:>12.1f}   "
          f"ratio minibert / transformers "
          f"{rate['minibert model, padded'] / rate['transformers model, padded']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
