"""minibert/train/finetune.py, the fine-tuning run end to end: parity with transformers + torch.optim.AdamW,
the run folder, early stopping, freezing, fp16, predict, and the errors (a random small BERT on SST-2,
WNUT-17, XQuAD from ../shared/data). The heads themselves are in model/test_task_heads.py."""
import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import DATA, data_path, minilm_tokenizer
from minibert.model.config import BertConfig
from minibert.data.batches import epoch_batches as _batches
from minibert.train.finetune import FinetuneArgs, FinetuneError, run
from minibert.viz import plot_run
from minibert.model.bert import BertModel

SST2 = DATA / "sst2"


@pytest.fixture(scope="module")
def sst2():
    return data_path("sst2")


def small_model_dir(folder, dtype="float32", dropout=0.1):
    """A small random BERT (with the packaged MiniLM's vocabulary), saved as a model folder."""
    tok = minilm_tokenizer()
    cfg = BertConfig(vocab_size=len(tok), hidden_size=24, num_hidden_layers=2, num_attention_heads=3,
                     intermediate_size=37, max_position_embeddings=64, hidden_dropout_prob=dropout,
                     attention_probs_dropout_prob=dropout)
    BertModel(cfg, seed=3, dtype=dtype).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def args(tmp_path, model, **kw):
    base = dict(task="sst2", train=str(SST2 / "train.tsv"), dev=str(SST2 / "dev.tsv"), model=str(model),
                train_limit=64, dev_limit=48, epochs=2, batch_size=16, max_seq_len=32, lr=1e-3,
                out=str(tmp_path / "run"), progress=False)
    base.update(kw)
    return FinetuneArgs(**base)


def log_rows(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_ten_steps_equal_transformers_and_torch_adamw(sst2, tmp_path):
    """float64, dropout off, the same batches: every step's loss equals transformers' within 1e-8."""
    import torch
    import transformers

    from minibert.train.finetune_tasks import get_task
    from minibert.train.optim import decays, linear_warmup_decay
    from minibert.tokenization import BertTokenizer
    from reference import hf_config

    model_dir = small_model_dir(tmp_path / "model", "float64", dropout=0.0)
    a = args(tmp_path, model_dir, dtype="float64", train_limit=80, epochs=2, batch_size=16, accumulate=2,
             dropout=0.0, warmup=0.2)                           # 5 steps per epoch, 10 in all, 2 warm-up
    run(a, stream=lambda *x: None)
    mine = [r["loss"] for r in log_rows(tmp_path / "run") if "loss" in r]
    assert len(mine) == 10

    task = get_task("sst2")
    tok = BertTokenizer.from_pretrained(model_dir)
    train = task.load(a.train, tok, a.max_seq_len, limit=a.train_limit)
    init = task.load_model(model_dir, a)                        # the same fresh head (same seed)
    cfg = hf_config(init.config)
    ref = transformers.BertForSequenceClassification(cfg).to(torch.float64)
    ref.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in init.params.items()}, strict=False)
    ref.train()
    opt = torch.optim.AdamW([{"params": [p for n, p in ref.named_parameters() if decays(n)], "weight_decay": 0.01},
                             {"params": [p for n, p in ref.named_parameters() if not decays(n)], "weight_decay": 0.0}],
                            lr=a.lr, eps=1e-8)
    theirs, step = [], 0
    for epoch in range(a.epochs):
        for rows in _batches(len(train.encoded), a.batch_size, a.seed, epoch):
            b = train.encoded.batch(rows)
            for g in opt.param_groups:
                g["lr"] = linear_warmup_decay(step, a.lr, int(a.warmup * 10), 10)
            opt.zero_grad()
            out = ref(**{k: torch.tensor(b[k]) for k in ("input_ids", "token_type_ids", "attention_mask", "labels")})
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(ref.parameters(), a.max_grad_norm)
            opt.step()
            theirs.append(out.loss.item())
            step += 1
    rel = np.abs(np.array(mine) - np.array(theirs)) / np.abs(np.array(theirs))
    assert rel.max() <= 1e-8, (mine, theirs)
    assert theirs[-1] < theirs[0]                               # it did learn something


def test_run_folder_best_model_early_stopping_and_predict(sst2, tmp_path):
    model_dir = small_model_dir(tmp_path / "model")
    a = args(tmp_path, model_dir, epochs=6, eval_every=2, patience=2, lr=1e-6)   # lr too small to improve
    summary = run(a, stream=lambda *x: None)
    run_dir = tmp_path / "run"
    plot_run(run_dir)                                           # what `minibert finetune` draws at the end
    rows = log_rows(run_dir)
    evals = [r for r in rows if "dev_loss" in r]
    steps = [r for r in rows if "loss" in r]
    assert summary["steps_run"] < 6 * 4                         # stopped early
    assert len(evals) >= 3 and all("accuracy" in r and "train_loss" in r for r in evals)
    best = max(evals, key=lambda r: r["accuracy"])
    assert summary["accuracy"] == best["accuracy"] and summary["best_step"] == evals.index(best) * 0 + best["step"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["accuracy"] == summary["accuracy"] and metrics["metric"] == "accuracy"
    for name in ("curves.png", "confusion.png", "best/model.safetensors", "best/config.json", "best/vocab.txt"):
        assert (run_dir / name).is_file(), name
    config = json.loads((run_dir / "best" / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert len(steps) == summary["steps_run"]

    r = subprocess.run([sys.executable, "-m", "minibert", "predict", "--model", str(run_dir),
                        "a gorgeous, witty, seductive movie."], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    label, probs, text = r.stdout.strip().split("\t")
    assert label in ("negative", "positive") and "negative" in probs and "positive" in probs


def test_one_progress_bar_and_the_plan_in_words(sst2, tmp_path, capsys):
    """One bar: an evaluation says "evaluating" in the run's bar, with no bar nested in it (a nested bar
    moves the cursor up, which a notebook or a log file cannot do: stray 100% lines); "1 epoch of 4"."""
    messages = []
    run(args(tmp_path, small_model_dir(tmp_path / "model"), epochs=1, progress=True), stream=messages.append)
    err = capsys.readouterr().err
    assert "finetune sst2" in err and "evaluating" in err
    assert "\x1b[A" not in err and "evaluate:" not in err
    assert any("for 4 steps (1 epoch of 4)" in m for m in messages), messages


def test_frozen_layers_do_not_move_and_fp16_logs_the_loss_scale(sst2, tmp_path):
    from minibert.model.io import load_arrays
    model_dir = small_model_dir(tmp_path / "model")
    before = load_arrays(model_dir / "model.safetensors")
    run(args(tmp_path, model_dir, epochs=1, freeze_embeddings=True, freeze_layers=1, fp16=True),
        stream=lambda *x: None)
    after = load_arrays(tmp_path / "run" / "best" / "model.safetensors")
    for name in before:
        frozen = "embeddings" in name or ".layer.0." in name
        moved = not np.array_equal(before[name], after["bert." + name if "bert." + name in after else name])
        assert moved != frozen, name
    steps = [r for r in log_rows(tmp_path / "run") if "loss" in r]
    assert all("loss_scale" in r and "skipped_steps" in r for r in steps)


def test_clear_errors(sst2, tmp_path):
    model_dir = small_model_dir(tmp_path / "model")
    with pytest.raises(FinetuneError, match="divisible by --accumulate"):
        run(args(tmp_path, model_dir, accumulate=3), stream=lambda *x: None)
    with pytest.raises(FinetuneError, match="no config.json"):
        run(args(tmp_path, tmp_path / "nowhere"), stream=lambda *x: None)
    with pytest.raises(ValueError, match="unknown task"):
        run(args(tmp_path, model_dir, task="mnli"), stream=lambda *x: None)
    wrong = tmp_path / "wrong.tsv"
    wrong.write_text("sentence1\tsentence2\tlabel\nx\ty\t0\n")
    r = subprocess.run([sys.executable, "-m", "minibert", "finetune", "--task", "sst2", "--train", str(wrong),
                        "--dev", str(wrong), "--model", str(model_dir), "--out", str(tmp_path / "r"), "--no-progress",
                        "--max-seq-len", "32"],             # the small model has 64 positions, the task's default is 128
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "error:" in r.stderr and "header" in r.stderr and "Traceback" not in r.stderr
    # predict with a folder that has no trained head for its task: the message names the missing weights
    (model_dir / "task.json").write_text(json.dumps({"task": "sst2", "kind": "sequence"}))
    r = subprocess.run([sys.executable, "-m", "minibert", "predict", "--model", str(model_dir), "fine"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "classifier.weight" in r.stderr and "Traceback" not in r.stderr


def test_ner_and_qa_runs_and_predict(tmp_path):
    wnut, xquad = data_path("wnut17"), data_path("xquad", "xquad.en.json")
    model_dir = small_model_dir(tmp_path / "model")
    s = run(FinetuneArgs(task="wnut17", train=str(wnut / "train.conll"), dev=str(wnut / "dev.conll"),
                         model=str(model_dir), train_limit=48, dev_limit=32, epochs=1, batch_size=16,
                         max_seq_len=64, out=str(tmp_path / "ner"), progress=False), stream=lambda *x: None)
    assert {"precision", "recall", "f1"} <= set(s) and 0 <= s["f1"] <= 1
    r = subprocess.run([sys.executable, "-m", "minibert", "predict", "--model", str(tmp_path / "ner"),
                        "I met Barack Obama in Paris"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and len(r.stdout.split()) == 6, r.stdout + r.stderr

    s = run(FinetuneArgs(task="squad", train=str(xquad), dev=str(xquad), split_articles=38, model=str(model_dir),
                         train_limit=24, dev_limit=16, epochs=1, batch_size=8, max_seq_len=64, doc_stride=16,
                         out=str(tmp_path / "qa"), progress=False), stream=lambda *x: None)
    assert {"exact_match", "f1"} <= set(s) and 0 <= s["exact_match"] <= s["f1"] <= 1
    r = subprocess.run([sys.executable, "-m", "minibert", "predict", "--model", str(tmp_path / "qa"),
                        "--question", "Where did I meet him?", "--context", "I met Barack Obama in Paris."],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "'" in r.stdout, r.stdout + r.stderr
    with pytest.raises(FinetuneError, match="split-articles is for the squad task"):
        run(args(tmp_path, model_dir, split_articles=3), stream=lambda *x: None)
