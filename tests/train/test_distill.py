"""minibert/train/distill.py: the student made from a teacher, the two distillation objectives' gradients
against finite differences (float64, through the whole model), and both runs end to end on tiny models,
with their errors."""
import argparse
import dataclasses
import json

import numpy as np
import pytest

from helpers import DATA, TINY_PRETRAINING_CONFIG, data_path, made_up_corpus, minilm_tokenizer, write
from minibert import backend, gradcheck
from minibert.checks import SettingError
from minibert.cli.args import add_arguments, from_namespace
from minibert.cli import main
from minibert.cli.distill import DistillCommandArgs, recipe_settings
from minibert.model.bert import BertModel
from minibert.model.config import BertConfig
from minibert.model.heads import BertForSequenceClassification
from minibert.model.heads.pretraining import BertForPreTraining
from minibert.train import distill
from minibert.train.distill import (DistillError, PretrainDistillArgs, PretrainDistillation, TaskDistillArgs,
                                    TaskDistillation, student_from_teacher)
from minibert.train.finetune import FinetuneArgs, FinetuneError, load_finetuned
from minibert.train.finetune import run as finetune_run
from minibert.train.finetune_tasks import get_task

SST2 = DATA / "sst2"


def tiny_config(layers=4, **kw):
    return BertConfig(vocab_size=40, hidden_size=12, num_hidden_layers=layers, num_attention_heads=2,
                      intermediate_size=17, max_position_embeddings=16, **kw)


@pytest.mark.parametrize("cls", [BertForSequenceClassification, BertForPreTraining])
def test_student_keeps_every_other_teacher_layer(cls):
    teacher = cls(tiny_config(), seed=1)
    student = student_from_teacher(teacher)
    assert student.config.num_hidden_layers == 2 and type(student) is cls and student.training
    for name, value in student.params.items():
        source = name.replace("layer.1.", "layer.2.") if ".layer.1." in name else name
        np.testing.assert_array_equal(value, teacher.params[source], err_msg=name)
    assert set(teacher.params) - set(student.params) == {k for k in teacher.params if ".layer.2." in k or
                                                          ".layer.3." in k}      # (names: student layers 0, 1)
    other = student_from_teacher(teacher, layers=[3])
    np.testing.assert_array_equal(other.params["bert.encoder.layer.0.output.dense.weight"],
                                  teacher.params["bert.encoder.layer.3.output.dense.weight"])
    fresh = student_from_teacher(teacher, init="random", seed=5)
    assert not np.array_equal(fresh.params["bert.encoder.layer.0.output.dense.weight"],
                              teacher.params["bert.encoder.layer.0.output.dense.weight"])
    with pytest.raises(DistillError, match="layers 0..3"):
        student_from_teacher(teacher, layers=[4])
    assert distill.every_other_layer(6) == [0, 2, 4] and distill.every_other_layer(1) == [0]
    assert distill.parse_layers("1, 3", 4) == [1, 3]
    with pytest.raises(DistillError, match="5 is not one of them"):
        distill.parse_layers("0,5", 4)


def _batch(rng, B=3, T=9, V=40):
    ids = rng.integers(5, V, size=(B, T))
    mask = np.ones((B, T), dtype=np.int64)
    mask[1, 6:] = 0
    mask[2, 4:] = 0
    ids[mask == 0] = 0
    labels = np.full((B, T), -100)
    labels[0, [1, 3, 5]] = ids[0, [1, 3, 5]]
    labels[1, [2, 4]] = ids[1, [2, 4]]
    labels[2, 1] = ids[2, 1]
    return {"input_ids": ids, "token_type_ids": np.zeros((B, T), dtype=np.int64), "attention_mask": mask,
            "labels": labels, "next_sentence_label": np.array([0, 1, 0])}


def _check_objective(student, objective, batch, weights):
    """model.grads after objective.backward(weights) against central differences of sum_k w_k term_k."""
    def loss():
        out = objective.forward(student, batch)
        objective._soft = objective._cos = None if hasattr(objective, "_cos") else None
        return sum(w * float(out[k]) for w, k in zip(weights, objective.loss_keys))

    objective.forward(student, batch)
    student.zero_grad()
    objective.backward(student, weights)
    results = gradcheck.check_every_parameter(student, loss, np.random.default_rng(2), 4, gradcheck.MODEL_STEP)
    worst = max(results, key=lambda r: r.max_rel_error)
    assert worst.max_rel_error < 1e-6, f"{worst.name}: {worst.max_rel_error:.2e}"


def _perturbed(model, seed):
    rng = np.random.default_rng(seed)
    for v in model.params.values():
        v += rng.normal(0.0, 0.1, size=v.shape)
    return model


def test_task_distillation_gradient_matches_finite_differences():
    cfg = tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=3)
    teacher = _perturbed(BertForSequenceClassification(cfg, seed=1, dtype="float64"), 3)
    student = _perturbed(student_from_teacher(teacher), 4)
    b = _batch(np.random.default_rng(0))
    b["labels"] = np.array([2, -100, 1])
    objective = TaskDistillation(get_task("sst2"), teacher, temperature=2.0, alpha=0.3)
    _check_objective(student, objective, b, (0.7, 1.3))


def test_pretraining_distillation_gradient_matches_finite_differences():
    cfg = tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    teacher = _perturbed(BertForPreTraining(cfg, seed=1, dtype="float64"), 3)
    student = _perturbed(student_from_teacher(teacher), 4)
    objective = PretrainDistillation(teacher, temperature=2.0, ce_weight=5.0, mlm_weight=2.0, cos_weight=1.0)
    _check_objective(student, objective, _batch(np.random.default_rng(0)), (0.5, 0.8, 1.1))


def test_a_student_equal_to_its_teacher_has_no_soft_or_cosine_loss():
    teacher = BertForPreTraining(tiny_config(layers=2), seed=1).eval()
    student = student_from_teacher(teacher, layers=[0, 1]).eval()       # every layer: a copy
    out = PretrainDistillation(teacher, ce_weight=1.0, mlm_weight=1.0, cos_weight=1.0).forward(
        student, _batch(np.random.default_rng(0)))
    assert abs(float(out["cos_loss"])) < 1e-6
    plain = teacher.forward(*(_batch(np.random.default_rng(0))[k] for k in ("input_ids", "token_type_ids",
                                                                            "attention_mask")))
    assert plain["sequence_output"].shape == (3, 9, 12)
    cls_teacher = BertForSequenceClassification(tiny_config(layers=2), seed=1)
    task_out = TaskDistillation(get_task("sst2"), cls_teacher, 2.0, 1.0).forward(
        student_from_teacher(cls_teacher, layers=[0, 1]).eval(), {**_batch(np.random.default_rng(0)),
                                                                   "labels": np.array([0, 1, 1])})
    assert abs(float(task_out["soft_loss"])) < 1e-6 and float(task_out["hard_loss"]) == 0.0


# -- the runs ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sst2_teacher(tmp_path_factory):
    """A 4-layer random BERT fine-tuned for a few steps on 64 SST-2 sentences: a `finetune` run folder."""
    data_path("sst2")
    folder = tmp_path_factory.mktemp("teacher")
    tok = minilm_tokenizer()
    cfg = BertConfig(vocab_size=len(tok), hidden_size=24, num_hidden_layers=4, num_attention_heads=3,
                     intermediate_size=37, max_position_embeddings=64)
    BertModel(cfg, seed=3).save_pretrained(folder / "model")
    tok.save_pretrained(folder / "model")
    finetune_run(FinetuneArgs(task="sst2", train=str(SST2 / "train.tsv"), dev=str(SST2 / "dev.tsv"),
                              model=str(folder / "model"), train_limit=64, dev_limit=32, epochs=1, batch_size=16,
                              max_seq_len=32, lr=1e-3, out=str(folder / "run"), progress=False),
                 stream=lambda *a: None)
    return folder / "run"


def task_args(teacher, out, **kw):
    base = dict(teacher=str(teacher), task="sst2", train=str(SST2 / "train.tsv"), dev=str(SST2 / "dev.tsv"),
                train_limit=48, dev_limit=32, epochs=1, batch_size=16, max_seq_len=32, lr=1e-3, out=str(out),
                progress=False)
    base.update(kw)
    return TaskDistillArgs(**base)


def test_task_distillation_run_writes_a_finetune_run_folder(sst2_teacher, tmp_path):
    lines = []
    summary = distill.run_task(task_args(sst2_teacher, tmp_path / "student"), stream=lines.append)
    assert 0.0 <= summary["accuracy"] <= 1.0 and summary["steps_run"] == 3
    assert any("distilling 4 teacher layers into 2 (teacher layers 0, 2)" in line for line in lines)
    rows = [json.loads(r) for r in (tmp_path / "student" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert len(steps) == 3 and all(abs(r["loss"] - r["soft_loss"] - r["hard_loss"]) < 1e-9 for r in steps)
    assert json.loads((tmp_path / "student" / "run.json").read_text())["temperature"] == 2.0
    task, student, _ = load_finetuned(tmp_path / "student")
    assert task.name == "sst2" and student.config.num_hidden_layers == 2
    # alpha = 0: the labels alone, the soft term logged as 0
    distill.run_task(task_args(sst2_teacher, tmp_path / "alone", alpha=0.0), stream=lambda *a: None)
    rows = [json.loads(r) for r in (tmp_path / "alone" / "log.jsonl").read_text().splitlines()]
    assert all(r["soft_loss"] == 0.0 for r in rows if "loss" in r)


def test_task_distillation_errors(sst2_teacher, tmp_path):
    with pytest.raises(SettingError, match="--temperature"):
        task_args(sst2_teacher, tmp_path / "x", temperature=0.0)
    with pytest.raises(SettingError, match="--alpha"):
        task_args(sst2_teacher, tmp_path / "x", alpha=1.5)
    with pytest.raises(DistillError, match="no such folder"):
        distill.run_task(task_args(tmp_path / "missing", tmp_path / "x"))
    with pytest.raises(FinetuneError, match="no task.json"):
        distill.run_task(task_args(tmp_path, tmp_path / "x"))
    with pytest.raises(DistillError, match="fine-tuned for sst2, not --task rte"):
        distill.run_task(task_args(sst2_teacher, tmp_path / "x", task="rte"))
    with pytest.raises(DistillError, match="layers 0..3"):
        distill.run_task(task_args(sst2_teacher, tmp_path / "x", student_layers="0,7"))
    assert not (tmp_path / "x").exists()                 # refused runs write nothing


@pytest.fixture(scope="module")
def tiny_pretrained(tmp_path_factory):
    """A tiny 2-layer `minibert pretrain` run folder (a few seconds)."""
    from minibert.train.pretrain import PretrainArgs, run
    folder = tmp_path_factory.mktemp("mini")
    write(folder / "corpus.txt", made_up_corpus())
    write(folder / "config.json", {**TINY_PRETRAINING_CONFIG, "num_hidden_layers": 2})
    run(PretrainArgs(corpus=str(folder / "corpus.txt"), config=str(folder / "config.json"), vocab_size=120,
                     steps=12, batch_size=8, seq_len=32, eval_every=6, eval_batches=2, checkpoint_every=12,
                     heldout_fraction=0.2, out=str(folder / "run"), progress=False), stream=lambda *a: None)
    return folder / "run"


def test_pretraining_distillation_run(tiny_pretrained, tmp_path):
    from minibert.apps.fill_mask import load_pretraining_model
    teacher, tokenizer = load_pretraining_model(tiny_pretrained)
    args = PretrainDistillArgs(teacher=str(tiny_pretrained), out=str(tmp_path / "s"), steps=6, batch_size=8,
                               eval_every=3, eval_batches=2, progress=False)
    frozen = {k: teacher.params[k].copy() for k in distill.NSP_AND_POOLER}
    result = distill.run_pretraining(args, teacher, tokenizer, stream=lambda *a: None)
    assert {"eval_mlm_accuracy", "teacher_eval_mlm_accuracy", "eval_mlm_accuracy_most_frequent"} <= set(result)
    rows = [json.loads(r) for r in (tmp_path / "s" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert len(steps) == 6 and all(r["soft_loss"] > 0 and r["cos_loss"] > 0 and r["mlm_loss"] > 0 for r in steps)
    student, _ = load_pretraining_model(tmp_path / "s")
    assert student.config.num_hidden_layers == 1
    for k, v in frozen.items():                              # no NSP term: its head and the pooler stay
        np.testing.assert_array_equal(student.params[k], v)
    # MLM alone: the teacher's terms are 0 (the teacher is not run)
    alone = PretrainDistillArgs(teacher=str(tiny_pretrained), out=str(tmp_path / "a"), steps=3, batch_size=8,
                                eval_every=3, eval_batches=2, ce_weight=0.0, cos_weight=0.0, mlm_weight=1.0,
                                init="random", progress=False)
    distill.run_pretraining(alone, teacher, tokenizer, stream=lambda *a: None)
    rows = [json.loads(r) for r in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert all(r["soft_loss"] == 0.0 and r["cos_loss"] == 0.0 for r in rows if "loss" in r)


def test_pretraining_distillation_errors(tiny_pretrained, tmp_path):
    from minibert.apps.fill_mask import load_pretraining_model
    teacher, tokenizer = load_pretraining_model(tiny_pretrained)
    with pytest.raises(DistillError, match="all 0"):
        PretrainDistillArgs(teacher="x", ce_weight=0.0, mlm_weight=0.0, cos_weight=0.0)
    with pytest.raises(SettingError, match="--temperature"):
        PretrainDistillArgs(teacher="x", temperature=-1.0)
    with pytest.raises(DistillError, match="not a `minibert pretrain` run folder"):
        distill.run_pretraining(PretrainDistillArgs(teacher=str(tmp_path), out=str(tmp_path / "s")), teacher,
                                tokenizer)
    with pytest.raises(DistillError, match="BertForPreTraining"):
        distill.run_pretraining(PretrainDistillArgs(teacher=str(tiny_pretrained), out=str(tmp_path / "s")),
                                BertForSequenceClassification(teacher.config), tokenizer)
    assert not (tmp_path / "s").exists()


def test_task_distillation_runs_under_the_strict_backend(xp):
    """The objective's forward and backward on device arrays: no host/device mix, no implicit read."""
    teacher = BertForSequenceClassification(tiny_config(num_labels=2), seed=1)
    student = student_from_teacher(teacher)
    assert isinstance(student.params["classifier.weight"], xp.ndarray)
    b = {**_batch(np.random.default_rng(0)), "labels": np.array([0, 1, -100])}
    objective = TaskDistillation(get_task("sst2"), teacher, 2.0, 0.5)
    objective.forward(student, b)
    student.zero_grad()
    objective.backward(student, (1.0, 1.0))
    pre_teacher = BertForPreTraining(tiny_config(), seed=1)
    pre_student = student_from_teacher(pre_teacher)
    objective = PretrainDistillation(pre_teacher)
    objective.forward(pre_student, _batch(np.random.default_rng(0)))
    pre_student.zero_grad()
    objective.backward(pre_student, (1.0, 1.0, 1.0))
    assert float(backend.to_host((pre_student.grads["bert.encoder.layer.0.output.dense.weight"] ** 2).sum())) > 0


def test_the_command_line_runs_both_recipes(sst2_teacher, tiny_pretrained, tmp_path, capsys):
    from minibert.cli import main
    assert main(["distill", "--no-progress", "--teacher", str(sst2_teacher), "--task", "sst2", "--train",
                 str(SST2 / "train.tsv"), "--dev", str(SST2 / "dev.tsv"), "--train-limit", "16", "--dev-limit", "16",
                 "--epochs", "1", "--batch-size", "8", "--max-seq-len", "32", "--out", str(tmp_path / "t")]) == 0
    assert (tmp_path / "t" / "best" / "task.json").is_file() and "figure:" in capsys.readouterr().out
    assert main(["distill", "--no-progress", "--pretraining", "--teacher", str(tiny_pretrained), "--steps", "2",
                 "--batch-size", "8", "--eval-every", "2", "--eval-batches", "1", "--out", str(tmp_path / "p")]) == 0
    assert "held-out masked LM accuracy: student" in capsys.readouterr().out
    assert (tmp_path / "p" / "model.safetensors").is_file()


def test_the_command_line_passes_the_flags_given_and_keeps_each_recipes_defaults():
    """`distill`'s flags default to None: a recipe gets the flags given and its own defaults for the others
    (train/distill.py declares them once); a flag of the other recipe is refused, never ignored."""
    parser = argparse.ArgumentParser()
    add_arguments(parser, DistillCommandArgs)
    parse = lambda *flags: from_namespace(DistillCommandArgs, parser.parse_args(["--teacher", "t", *flags]))  # noqa: E731
    assert recipe_settings(parse("--pretraining"), PretrainDistillArgs) == \
        PretrainDistillArgs(teacher="t", out="runs/distill", seed=42)
    given = parse("--task", "sst2", "--train", "a", "--dev", "b", "--lr", "1e-4", "--temperature", "3", "--alpha", "0.9")
    assert recipe_settings(given, TaskDistillArgs) == TaskDistillArgs(
        teacher="t", task="sst2", train="a", dev="b", out="runs/distill", seed=42, lr=1e-4, temperature=3.0, alpha=0.9)
    assert TaskDistillArgs(teacher="t", task="sst2", train="a", dev="b").lr == 5e-5
    with pytest.raises(DistillError, match="--alpha: a setting of task distillation, not of --pretraining"):
        recipe_settings(parse("--pretraining", "--alpha", "0.9"), PretrainDistillArgs)
    with pytest.raises(DistillError, match="--mlm-weight: a setting of --pretraining, not of task distillation"):
        recipe_settings(parse("--task", "sst2", "--train", "a", "--dev", "b", "--mlm-weight", "1"), TaskDistillArgs)


class Stop(Exception):
    """Raised from the log callback: the run stops there as a killed one would (after its last checkpoint)."""


def _steps_and_evaluations(run_dir) -> list[dict]:
    """log.jsonl without its wall-clock fields."""
    rows = [json.loads(r) for r in (run_dir / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("seconds", "tokens_per_s")} for r in rows]


def test_a_pretraining_distillation_resumes_exactly(tiny_pretrained, tmp_path):
    """Stopped at step 5 (last checkpoint: step 4), then resumed: the log and the student are those of the
    run never stopped, to the bit (dropout on: the generator's state is in the checkpoint)."""
    from minibert.apps.fill_mask import load_pretraining_model
    from minibert.model.io import load_arrays
    teacher, tokenizer = load_pretraining_model(tiny_pretrained)
    assert teacher.config.hidden_dropout_prob > 0
    quiet = lambda *a: None  # noqa: E731
    settings = dict(teacher=str(tiny_pretrained), steps=8, batch_size=8, eval_every=3, eval_batches=2,
                    checkpoint_every=2, progress=False)
    whole = PretrainDistillArgs(out=str(tmp_path / "whole"), **settings)
    distill.run_pretraining(whole, teacher, tokenizer, stream=quiet)

    cut = PretrainDistillArgs(out=str(tmp_path / "cut"), **settings)

    def stop_at_5(row):
        if row.get("step") == 5 and "loss" in row:
            raise Stop
    with pytest.raises(Stop):
        distill.run_pretraining(cut, teacher, tokenizer, stream=quiet, callback=stop_at_5)
    assert not (tmp_path / "cut" / "model.safetensors").exists()
    said = []
    distill.run_pretraining(cut, teacher, tokenizer, stream=said.append, resume=True)
    assert any("resuming from" in line and "step 4" in line for line in said), said
    assert _steps_and_evaluations(tmp_path / "cut") == _steps_and_evaluations(tmp_path / "whole")
    # the command: `distill --out OUT --resume` takes the recipe and the settings from OUT/run.json
    with pytest.raises(Stop):
        distill.run_pretraining(cut, teacher, tokenizer, stream=quiet, callback=stop_at_5, overwrite=True)
    assert main(["distill", "--no-progress", "--out", str(tmp_path / "cut"), "--resume"]) == 0
    assert _steps_and_evaluations(tmp_path / "cut") == _steps_and_evaluations(tmp_path / "whole")
    a, b = load_arrays(tmp_path / "whole" / "model.safetensors"), load_arrays(tmp_path / "cut" / "model.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)

    with pytest.raises(DistillError, match=r"--resume keeps the settings .*--steps 9 .*\(the run's: 8\)"):
        distill.run_pretraining(dataclasses.replace(cut, steps=9), teacher, tokenizer, stream=quiet, resume=True)
    with pytest.raises(DistillError, match="no distillation to resume"):
        distill.run_pretraining(dataclasses.replace(cut, out=str(tmp_path / "none")), teacher, tokenizer,
                                stream=quiet, resume=True)
    distill.run_pretraining(cut, teacher, tokenizer, stream=quiet, overwrite=True)     # a distillation run folder
    assert _steps_and_evaluations(tmp_path / "cut") == _steps_and_evaluations(tmp_path / "whole")


def test_a_task_distillation_resumes_exactly(sst2_teacher, tmp_path):
    """Task distillation runs through finetune's loop: stopped at step 5 (checkpoint: step 4) and resumed, its
    log, best model and metrics are those of the run never stopped; a changed setting is named."""
    from minibert.model.io import load_arrays
    quiet = lambda *a: None  # noqa: E731
    whole = task_args(sst2_teacher, tmp_path / "whole", epochs=2, eval_every=2, checkpoint_every=2)
    distill.run_task(whole, stream=quiet)
    cut = dataclasses.replace(whole, out=str(tmp_path / "cut"))

    def stop_at_5(row):
        if row.get("step") == 5 and "loss" in row:
            raise Stop
    with pytest.raises(Stop):
        distill.run_task(cut, stream=quiet, callback=stop_at_5)
    said = []
    distill.run_task(cut, stream=said.append, resume=True)
    assert any("resuming from" in line and "step 4" in line for line in said), said
    assert _steps_and_evaluations(tmp_path / "cut") == _steps_and_evaluations(tmp_path / "whole")
    a = load_arrays(tmp_path / "whole" / "best" / "model.safetensors")
    b = load_arrays(tmp_path / "cut" / "best" / "model.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path / "cut" / "metrics.json").read_text()) == \
        json.loads((tmp_path / "whole" / "metrics.json").read_text())
    said = []
    distill.run_task(cut, stream=said.append, resume=True)                 # ended: nothing to do
    assert any("has ended already" in line for line in said)
    assert main(["distill", "--no-progress", "--out", str(tmp_path / "cut"), "--resume"]) == 0        # the same
    with pytest.raises(SystemExit, match="--pretraining --resume: the run in .* is a task distillation"):
        main(["distill", "--pretraining", "--out", str(tmp_path / "cut"), "--resume"])
    with pytest.raises(DistillError, match=r"--resume keeps the settings .*--alpha 0.9 \(the run's: 0.5\)"):
        distill.run_task(dataclasses.replace(cut, alpha=0.9), stream=quiet, resume=True)
    (tmp_path / "fine-tuned").mkdir()
    write(tmp_path / "fine-tuned" / "run.json", {"task": "sst2"})          # a fine-tuning run's, not started
    with pytest.raises(DistillError, match=r"is not the run.json of a task distillation"):
        distill.run_task(dataclasses.replace(cut, out=str(tmp_path / "fine-tuned")), stream=quiet, resume=True)
