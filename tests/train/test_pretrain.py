"""minibert/train/pretrain.py: one pretraining step against transformers' BertForPreTraining + torch.optim.AdamW
for 20 steps, gradient accumulation, a NaN loss; then the run end to end: a short run, exact resume after
SIGKILL, plots, fill-mask, errors."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import data_path, pretraining_batch, write
from minibert import BertConfig, gradcheck
from minibert.model.heads.pretraining import BertForPreTraining
from minibert.model.io import load_arrays
from minibert.train.optim import AdamW, decays, linear_warmup_decay
from minibert.train.pretrain import PretrainArgs, PretrainError, pretraining_step, run
from minibert.train.step import NonFiniteLossError
from minibert.viz import plot_run
from reference import hf_model

SMALL_CONFIG = dict(vocab_size=600, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64, max_position_embeddings=64)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, request):
    """A plain-text corpus: the first chapters of Alice in Wonderland, a blank line between documents."""
    from minibert.data.pretraining import read_gutenberg
    docs = read_gutenberg(data_path("gutenberg"), books=["carroll-alice_in_wonderland.txt"])[:6]
    return write(tmp_path_factory.mktemp("corpus") / "alice.txt", "\n\n".join(" ".join(d) for d in docs) + "\n")


def small_args(corpus, out, **kw):
    cfg_path = write(out.parent / f"{out.name}-config.json", SMALL_CONFIG)
    base = dict(corpus=str(corpus), config=str(cfg_path), vocab_size=600, steps=12, batch_size=8, seq_len=64,
                eval_every=6, eval_batches=2, checkpoint_every=4, heldout_fraction=0.2, out=str(out),
                progress=False, lr=1e-3)
    base.update(kw)
    return PretrainArgs(**base)


def cli(args: PretrainArgs, *extra):
    cmd = [sys.executable, "-m", "minibert", "pretrain", "--no-progress"]
    for k, v in vars(args).items():
        if k != "progress" and v is not None and not isinstance(v, bool):
            cmd += [f"--{k.replace('_', '-')}", str(v)]
    return cmd + list(extra)


# -- one step: against transformers for 20 steps, accumulation, a NaN loss -------------------------

def reference_optimizer(ref, lr, warmup, total):
    import torch
    import transformers
    decay = [p for n, p in ref.named_parameters() if decays(n)]
    no_decay = [p for n, p in ref.named_parameters() if not decays(n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr)
    return opt, transformers.get_linear_schedule_with_warmup(opt, warmup, total)


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-8), ("float32", 1e-3)])
def test_loss_curve_matches_transformers_for_20_steps(dtype, tol):
    """Same weights, same batches, dropout off: 20 AdamW steps with warm-up and clipping give
    the same loss at every step as BertForPreTraining + torch.optim.AdamW + the same schedule."""
    import torch
    cfg = BertConfig.preset("tiny", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = BertForPreTraining(cfg, seed=0, dtype=dtype)
    ref = hf_model(model)
    model.eval(), ref.eval()
    rng = np.random.default_rng(0)
    batches = [pretraining_batch(cfg, rng, B=4, T=24) for _ in range(20)]
    lr, warmup, total = 1e-3, 4, 20
    opt = AdamW(model.params, lr=lr, weight_decay=0.01)
    topt, tsched = reference_optimizer(ref, lr, warmup, total)
    clipped = 0
    for step, batch in enumerate(batches):
        m = pretraining_step(model, opt, [batch], linear_warmup_decay(step, lr, warmup, total), max_grad_norm=1.0)
        topt.zero_grad()
        r = ref(**{k: torch.tensor(v) for k, v in batch.items()})
        r.loss.backward()
        tnorm = torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
        topt.step()
        tsched.step()
        clipped += float(tnorm) > 1.0
        assert abs(m["loss"] - r.loss.item()) <= tol * abs(r.loss.item()), (step, m["loss"], r.loss.item())
        assert abs(m["grad_norm"] - float(tnorm)) <= tol * float(tnorm), step
    assert clipped >= 10        # clipping really was exercised


def test_gradient_accumulation_equals_one_big_batch():
    cfg = gradcheck.odd_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    rng = np.random.default_rng(0)
    big = pretraining_batch(cfg, rng, B=32, T=12)
    big["labels"][5, 1:6] = big["input_ids"][5, 1:6]         # micro-batches with unequal prediction counts
    micro = [{k: v[i * 8:(i + 1) * 8] for k, v in big.items()} for i in range(4)]
    results = []
    for batches in ([big], micro):
        model = BertForPreTraining(cfg, seed=0, dtype="float64").eval()
        opt = AdamW(model.params, lr=1e-3)
        metrics = pretraining_step(model, opt, batches, lr=1e-3)
        results.append((metrics, {k: v.copy() for k, v in model.params.items()}))
    (m1, p1), (m2, p2) = results
    assert abs(m1["loss"] - m2["loss"]) < 1e-10 and abs(m1["grad_norm"] - m2["grad_norm"]) < 1e-10
    for k in p1:
        assert np.max(np.abs(p1[k] - p2[k])) < 1e-10, k


def test_nan_loss_names_the_step():
    cfg = gradcheck.odd_config()
    model = BertForPreTraining(cfg, seed=0, dtype="float64").eval()
    model.params["cls.predictions.bias"][:] = np.nan
    before = model.params["cls.seq_relationship.weight"].copy()
    with pytest.raises(NonFiniteLossError, match="loss is nan at step 17"):
        pretraining_step(model, AdamW(model.params), [pretraining_batch(cfg, np.random.default_rng(0))], 1e-3, step=17)
    assert np.array_equal(before, model.params["cls.seq_relationship.weight"])


# -- the run end to end ---------------------------------------------------------------------------

def test_short_run_writes_log_plot_checkpoints_and_model(corpus, tmp_path):
    out = tmp_path / "run"
    result = run(small_args(corpus, out), stream=lambda *a: None)
    plot_run(out)                                                   # what `minibert pretrain` draws at the end
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    train = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train] == list(range(1, 13))
    for key in ("loss", "mlm_loss", "nsp_loss", "lr"):
        assert all(np.isfinite(r[key]) for r in train), key
    assert train[-1]["loss"] < train[0]["loss"]
    assert {"eval_mlm_accuracy", "eval_nsp_accuracy", "eval_perplexity"} <= set(result)
    assert (out / "curves.png").stat().st_size > 10_000
    assert [p.name for p in sorted((out / "checkpoints").iterdir())] == ["step-00000004", "step-00000008",
                                                                       "step-00000012"]
    assert "cls.predictions.bias" in load_arrays(out / "model.safetensors")
    r = subprocess.run([sys.executable, "-m", "minibert", "fill-mask", "--model", str(out), "alice was [MASK] ."],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "[MASK] #1:" in r.stdout, r.stderr
    r = subprocess.run([sys.executable, "-m", "minibert", "plot", str(out)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip().endswith("curves.png")


def test_resume_after_sigkill_matches_an_uninterrupted_run(corpus, tmp_path):
    full = tmp_path / "full"
    subprocess.run(cli(small_args(corpus, full)), check=True, capture_output=True, timeout=300)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(cli(small_args(corpus, killed)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = killed / "log.jsonl"
    while proc.poll() is None:             # kill between the checkpoints at 4 and 8 (the run ends by itself anyway)
        if log.is_file() and sum(1 for line in log.read_text().splitlines() if '"loss"' in line) >= 6:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "model.safetensors").exists()
    r = subprocess.run(cli(small_args(corpus, killed), "--resume"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "resuming from" in r.stdout
    a, b = load_arrays(full / "model.safetensors"), load_arrays(killed / "model.safetensors")
    assert set(a) == set(b)
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    losses = lambda d: [json.loads(x)["loss"] for x in (d / "log.jsonl").read_text().splitlines() if '"loss"' in x]
    assert losses(full) == losses(killed)


def test_clear_errors(corpus, tmp_path):
    with pytest.raises(PretrainError, match="corpus not found"):
        run(small_args(tmp_path / "nope.txt", tmp_path / "a"))
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(Exception, match="(?i)empty|no document|nothing"):
        run(small_args(tmp_path / "empty.txt", tmp_path / "b"))
    args = small_args(corpus, tmp_path / "c", vocab_size=500)        # config says 600
    with pytest.raises(PretrainError, match="vocab_size=600 but the vocabulary has 500 tokens"):
        run(args)
    with pytest.raises(PretrainError, match="no run to resume"):
        run(small_args(corpus, tmp_path / "d"), resume=True)
    with pytest.raises(PretrainError, match="divisible by --accumulate"):
        run(small_args(corpus, tmp_path / "e", accumulate=3))
    with pytest.raises(PretrainError, match="longer than max_position_embeddings"):
        run(small_args(corpus, tmp_path / "f", seq_len=128))


def test_nan_loss_stops_with_the_step_and_the_checkpoint(corpus, tmp_path, monkeypatch):
    import minibert.train.loop as loop
    real = loop.train_step

    def poisoned(model, objective, optimizer, batches, weights, lr, max_grad_norm, scaler, step=None, group=None):
        if step == 6:
            model.params["cls.predictions.bias"][:] = np.nan
        return real(model, objective, optimizer, batches, weights, lr, max_grad_norm, scaler, step=step, group=group)

    monkeypatch.setattr(loop, "train_step", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 6 .*step-00000004.*--resume"):
        run(small_args(corpus, tmp_path / "nan"), stream=lambda *a: None)


def test_a_stale_unfinished_run_folder_is_not_reused_silently(corpus, tmp_path):
    import dataclasses
    out = tmp_path / "stale"
    out.mkdir()
    old = dataclasses.asdict(small_args(corpus, out, seq_len=32))
    (out / "run.json").write_text(json.dumps(old))
    with pytest.raises(PretrainError, match=r"unfinished run with other settings \(seq_len\)"):
        run(small_args(corpus, out))


def test_context_free_baselines_by_hand():
    """Targets 5, 5, 5, 7 in training (frequencies 3/4, 1/4); held out: a [MASK] (id 1) at a 5 and a kept 7."""
    from minibert.train.pretrain import context_free_baselines, verdict
    ignore = -100
    train = {"labels": np.array([[5, 5, ignore], [5, 7, ignore]]), "next_sentence_label": np.array([1, 1, 0])}
    held = {"labels": np.array([[5, 7, ignore]]), "input_ids": np.array([[1, 7, 9]]),
            "next_sentence_label": np.array([0])}
    b = context_free_baselines(train, held, vocab_size=10, rows=1, mask_token_id=1)
    assert b["eval_mlm_accuracy_most_frequent"] == 0.5                   # 5 right, 7 wrong
    assert b["eval_mlm_accuracy_at_mask_most_frequent"] == 1.0           # only the 5 was a [MASK]
    assert b["eval_mlm_accuracy_unigram"] == pytest.approx((3 / 4 + 1 / 4) / 2)
    smoothed = {5: 4 / 14, 7: 2 / 14}                                    # add-one over 10 ids
    assert b["eval_perplexity_unigram"] == pytest.approx(np.exp(-(np.log(smoothed[5]) + np.log(smoothed[7])) / 2))
    assert b["eval_nsp_accuracy_majority"] == 0.0                        # majority 1, the held-out pair is 0
    lines = verdict({**b, "eval_mlm_accuracy": 0.75, "eval_perplexity": 2.0, "eval_mlm_accuracy_at_mask": 1.0,
                     "eval_nsp_accuracy": 0.0})
    assert lines[0].startswith("masked LM: held-out accuracy 0.750, 1.5x always guessing the most frequent word")
    assert "hardly more than word frequencies" in lines[1] and "no better than" in lines[2]
