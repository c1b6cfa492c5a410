"""The real pretraining run, minibert and transformers side by side on the same instances.

    # 1. minibert: as many steps as fit in --minutes (measured), mini config, Gutenberg, learned 16k vocab
    python benchmarks/pretrain_compare.py minibert --out runs/gutenberg-mini --minutes 60
    # 2. transformers BertForPreTraining: the same instances, order, initial weights, schedule and steps
    #    (it can start as soon as step 1 has written OUT/run.json and OUT/data; it never reads minibert's progress)
    python benchmarks/pretrain_compare.py reference --out runs/gutenberg-mini
    # 3. the table
    python benchmarks/pretrain_compare.py report --out runs/gutenberg-mini

Both sides: seq 128, batch 32, 20 predictions, dupe factor 2, short_seq_prob 0.1, the two
held-out Gutenberg books for evaluation (5 masked versions of each instance), AdamW lr 5e-4 (eps 1e-8, weight decay 0.01 except
LayerNorm and biases, bias-corrected as torch's), 10% linear warm-up then linear decay, clipping
at 1.0, dropout 0.1. The reference starts from minibert's initial weights (copied by name), reads
the batches minibert read (`minibert.data.batches.step_rows`), and is evaluated by the same function on the same
held-out instances. Each side writes its result to OUT/result_<side>.json, so the two can run in
different sessions.

`--threads 1` on both sides lets the two runs share a 2-core machine, one core each, at the same
time: the step count is then what fits in --minutes on one core. Set OPENBLAS_NUM_THREADS to the
same number for the minibert side (NumPy reads it when it starts). The final figures of both sides
come from one evaluation over every held-out instance, by the same minibert function.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import hf_config  # noqa: E402
GUTENBERG = REPO.parent / "shared" / "data" / "gutenberg"


def minibert_args(out, steps, **kw):
    from minibert.train.pretrain import PretrainArgs
    settings = dict(corpus=str(GUTENBERG), config="mini", vocab_size=16000, steps=steps, batch_size=32,
                    seq_len=128, max_predictions=20, dupe_factor=2, eval_dupe_factor=5, lr=5e-4, warmup=0.1,
                    eval_every=max(50, steps // 8), eval_batches=20, checkpoint_every=100, out=str(out),
                    optimizer="torch")
    return PretrainArgs(**{**settings, **kw})


def run_minibert(out: Path, minutes: float, steps: int | None):
    import minibert.train.pretrain as pretrain
    from minibert.apps.fill_mask import load_pretraining_model
    from minibert.train.optim import AdamW

    if steps is None:
        # measure the step time on the real data first (a throw-away 6-step run in OUT/probe)
        probe = out / "probe"
        pretrain.run(minibert_args(probe, 6, eval_every=1000, checkpoint_every=1000), stream=lambda *a: None)
        rows = [json.loads(x) for x in (probe / "log.jsonl").read_text().splitlines() if '"loss"' in x]
        per_step = float(np.median([r["seconds"] for r in rows[2:]]))
        # 8 evaluations of 20 forward-only batches (about a third of a step each) and the checkpoints
        steps = int(minutes * 60 / (per_step * 1.06))
        print(f"step time {per_step:.2f} s -> {steps} steps in {minutes} min")
        for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
            if (probe / name).is_file():                       # reuse the learned vocabulary and the data
                (out / name).parent.mkdir(parents=True, exist_ok=True)
                (out / name).write_bytes((probe / name).read_bytes())
        (out / "data").mkdir(parents=True, exist_ok=True)
        for name in ("train.npz", "eval.npz"):
            (out / "data" / name).write_bytes((probe / "data" / name).read_bytes())
        # and the run's own settings: OUT is then a run that never reached a checkpoint, which pretrain.run
        # starts again with the vocabulary and data it finds there (any other folder it refuses: minibert/files.py)
        (out / "run.json").write_text(json.dumps(dataclasses.asdict(minibert_args(out, steps))))
    start = time.time()
    pretrain.run(minibert_args(out, steps))
    wall = time.time() - start
    model, _ = load_pretraining_model(out)
    result = full_evaluation(model, out)
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines() if '"loss"' in x]
    summary = {"side": "minibert", "steps": steps, "wall_seconds": wall,
               "tokens_per_s": float(np.median([r["tokens_per_s"] for r in log])),
               "seconds_per_step": float(np.median([r["seconds"] for r in log])), **result}
    (out / "result_minibert.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


def full_evaluation(model, out: Path) -> dict:
    """Every held-out instance, by minibert's evaluate (the same function for both sides)."""
    from minibert.train.pretrain import evaluate
    from minibert.data.pretraining import load_features

    held = load_features(out / "data" / "eval.npz")
    return {**evaluate(model, held, 32, 10 ** 9), "eval_instances": len(held["input_ids"])}


def gathered_loss(ref, batch):
    """BertForPreTraining's loss from its own submodules, with the MLM head run only on the labelled rows.

    transformers computes vocabulary logits at all B*T positions and ignores the unlabelled ones in the
    cross-entropy; google-research/bert (and minibert) gather the <= 20 labelled positions first. The
    loss and every gradient are the same; the work is about a sixth.
    """
    import torch.nn.functional as F

    seq, pooled = ref.bert(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                           attention_mask=batch["attention_mask"], return_dict=False)[:2]
    labelled = batch["labels"] != -100                                    # (B, T)
    scores = ref.cls.predictions(seq[labelled])                           # (P, V), P labelled positions
    mlm = F.cross_entropy(scores, batch["labels"][labelled])
    nsp = F.cross_entropy(ref.cls.seq_relationship(pooled), batch["next_sentence_label"])
    return mlm + nsp


def run_reference(out: Path, threads: int, full_logits: bool = False):
    import torch
    import transformers
    from minibert.model.config import BertConfig
    from minibert.model.heads.pretraining import BertForPreTraining
    from minibert.train.optim import decays, linear_warmup_decay
    from minibert.data.batches import step_rows
    from minibert.train.pretrain import MODEL_INPUTS, PretrainArgs
    from minibert.data.pretraining import load_features

    torch.set_num_threads(threads)
    args = PretrainArgs(**json.loads((out / "run.json").read_text()))
    cfg = BertConfig.load(out)
    train = load_features(out / "data" / "train.npz")
    init = BertForPreTraining(cfg, seed=args.seed)                     # minibert's initial weights
    ref = transformers.BertForPreTraining(hf_config(cfg))
    missing, unexpected = ref.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in init.params.items()},
                                              strict=False)
    assert not unexpected and all("position_ids" in k or "decoder" in k for k in missing), (missing, unexpected)
    ref.train()
    opt = torch.optim.AdamW([{"params": [p for n, p in ref.named_parameters() if decays(n)], "weight_decay": 0.01},
                             {"params": [p for n, p in ref.named_parameters() if not decays(n)], "weight_decay": 0.0}],
                            lr=args.lr, eps=1e-8)
    warmup = int(args.warmup * args.steps)
    n = len(train["input_ids"])
    start = time.time()
    tokens = 0
    for step in range(args.steps):
        rows = step_rows(step, args.batch_size, n, args.seed)
        batch = {k: torch.tensor(train[k][rows]) for k in MODEL_INPUTS}
        for group in opt.param_groups:
            group["lr"] = linear_warmup_decay(step, args.lr, warmup, args.steps)
        opt.zero_grad()
        if step == 0:        # the gathered loss is BertForPreTraining's own loss: checked on the first batch
            ref.eval()       # (dropout off, so both see the same network)
            with torch.no_grad():
                mine, full = gathered_loss(ref, batch).item(), ref(**batch).loss.item()
            assert abs(mine - full) <= 1e-5 * abs(full), (mine, full)
            ref.train()
        loss = gathered_loss(ref, batch) if not full_logits else ref(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), args.max_grad_norm)
        opt.step()
        tokens += int(batch["attention_mask"].sum())
        if step % 50 == 0:
            print(f"reference step {step}/{args.steps} loss {loss.item():.3f} "
                  f"({(time.time() - start) / (step + 1):.2f} s/step)", flush=True)
    wall = time.time() - start
    # evaluate with minibert's own function: copy the trained weights back into a minibert model
    trained = BertForPreTraining(cfg, seed=args.seed)
    state = ref.state_dict()
    for k in trained.params:
        trained.params[k][...] = state[k].detach().numpy()
    result = full_evaluation(trained.eval(), out)
    summary = {"side": "transformers" + (" (full logits)" if full_logits else ""), "steps": args.steps, "wall_seconds": wall, "tokens_per_s": tokens / wall,
               "seconds_per_step": wall / args.steps, **result}
    (out / "result_reference.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


def report(out: Path):
    rows = [json.loads((out / f"result_{side}.json").read_text()) for side in ("minibert", "reference")
            if (out / f"result_{side}.json").is_file()]
    print(f"held-out instances: {rows[0].get('eval_instances', '?') if rows else '?'}")
    print(f"{'':14} {'steps':>6} {'s/step':>7} {'tokens/s':>9} {'MLM acc':>8} {'NSP acc':>8} {'perplexity':>10}")
    for r in rows:
        print(f"{r['side']:14} {r['steps']:>6} {r['seconds_per_step']:>7.2f} {r['tokens_per_s']:>9.0f} "
              f"{100 * r['eval_mlm_accuracy']:>7.1f}% {100 * r['eval_nsp_accuracy']:>7.1f}% {r['eval_perplexity']:>10.1f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("side", choices=["minibert", "reference", "report"])
    ap.add_argument("--out", default="runs/gutenberg-mini")
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--steps", type=int, default=None, help="fixed number of steps instead of a time budget")
    ap.add_argument("--full-logits", action="store_true", help="reference: let BertForPreTraining compute "
                    "vocabulary logits at every position (same loss, about 6x the decoder work)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the reference (set OPENBLAS_NUM_THREADS "
                    "for minibert's)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    if a.side == "minibert":
        run_minibert(out, a.minutes, a.steps)
    elif a.side == "reference":
        run_reference(out, a.threads, a.full_logits)
    else:
        report(out)


if __name__ == "__main__":
    sys.exit(main())
