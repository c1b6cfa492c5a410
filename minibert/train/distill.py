"""Knowledge distillation: a smaller student trained on a teacher's outputs (DistilBERT, Sanh et al. 2019).

    student = student_from_teacher(teacher)                  # half the layers: teacher layer 2i -> student layer i
    run_task(TaskDistillArgs(teacher="runs/sst2", task="sst2", train=..., dev=..., out="runs/sst2-student"))
    run_pretraining(PretrainDistillArgs(teacher="runs/mini", out="runs/mini-student"), teacher, tokenizer)

The student. DistilBERT keeps BERT's width and takes every other layer: the student starts as a
copy of the teacher with half its encoder layers (embeddings, pooler and heads copied whole), so
it begins near the teacher instead of from noise. `layers` says which teacher layers it keeps
(default 0, 2, 4, ...: DistilBERT's choice).

Two recipes, each plugged into the training machinery that already exists (train/step.py's
objective interface, train/loop.py's loop), so the log, the evaluations, the best model and the
errors behave as `finetune` and `pretrain` do:

- *Task distillation* (a fine-tuned teacher, e.g. MiniLM-L6 on SST-2 from `minibert finetune`):

      loss = alpha * KL_T(student logits, teacher logits) + (1 - alpha) * CE(student logits, labels)

  KL_T is minibert.ops.losses.kl_div_with_temperature_forward (T^2 scaled). The teacher's logits are
  computed for every batch, in inference mode (dropout off), just before the student's forward. A
  teacher forward (L layers) costs about two thirds of a student step (L/2 layers forward + backward,
  the backward about twice the forward), so a distillation step is about 1.7x a plain one; in return
  nothing has to be stored or kept in step with the data order. Precomputing the logits once would save
  (epochs - 1) teacher passes: worth it for many epochs, little for 2. The run folder is a `finetune` run folder (best/ with task.json,
  metrics.json, log.jsonl): `minibert predict --model OUT` uses the student like any fine-tuned model.

- *Pretraining distillation* (a teacher pretrained by `minibert pretrain`):

      loss = w_ce * softCE_T(student, teacher MLM logits at the masked positions)
           + w_mlm * MLM(student)  +  w_cos * (1 - cos(student, teacher last hidden states)) at real tokens

  DistilBERT's weights are 5.0 / 2.0 / 1.0. The next-sentence head is dropped (as DistilBERT, after
  RoBERTa found it does not help): the student's NSP head and the pooler that feeds it are frozen,
  neither trained nor decayed. The data are the teacher run's own (its vocabulary, data/train.npz and
  data/eval.npz), the held-out evaluation is pretrain's (`evaluate`, with the same context-free
  baselines), so the student's held-out accuracy compares with the teacher's row for row. The run
  folder is a pretraining run folder: `minibert fill-mask --model OUT` uses the student.
  With w_ce = w_cos = 0 it is plain MLM training of the student (the baseline): the teacher is then
  not run at all.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from minibert import backend, checks
from minibert.data.batches import step_rows
from minibert.errors import MinibertError
from minibert.files import FINETUNING_RUN, PRETRAINING_RUN, check_out_folder, claim_run_folder
from minibert.model.config import BertConfig
from minibert.model.heads.base import BertWithTaskHead
from minibert.model.heads.pretraining import BertForPreTraining
from minibert.model.io import read_json, save_arrays, write_json
from minibert.ops.losses import (IGNORE_INDEX, cosine_embedding_loss_backward, cosine_embedding_loss_forward,
                                 kl_div_with_temperature_backward, kl_div_with_temperature_forward,
                                 soft_target_cross_entropy_backward, soft_target_cross_entropy_forward)
from minibert.train import finetune, pretrain
from minibert.train.finetune import FinetuneArgs, load_finetuned
from minibert.train.finetune_tasks import get_task
from minibert.train.loop import TrainingLoop
from minibert.train.optim import AdamW, linear_warmup_decay

__all__ = ["DistillError", "every_other_layer", "parse_layers", "student_from_teacher", "TaskDistillation",
           "TaskDistillArgs", "run_task", "PretrainDistillation", "PretrainDistillArgs", "run_pretraining",
           "check_teacher_run", "teacher_data", "NSP_AND_POOLER", "check_resume", "RESUME_CHANGES"]


class DistillError(MinibertError, RuntimeError):
    """A problem with the inputs of a distillation run, said plainly."""


# -- the student ------------------------------------------------------------------------------

def every_other_layer(teacher_layers: int) -> list[int]:
    """DistilBERT's choice: teacher layers 0, 2, 4, ... (half of them, at least one): student layer i = teacher 2i."""
    return list(range(0, 2 * max(1, teacher_layers // 2), 2))


def parse_layers(text: str | None, teacher_layers: int) -> list[int]:
    """"0,2,4" -> [0, 2, 4], checked against the teacher's layer count; None -> every_other_layer."""
    if text is None:
        return every_other_layer(teacher_layers)
    try:
        layers = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise DistillError(f"--student-layers {text!r}: give teacher layer numbers separated by commas, "
                           f"e.g. 0,2,4") from None
    bad = [i for i in layers if not 0 <= i < teacher_layers]
    if not layers or bad:
        raise DistillError(f"--student-layers {text!r}: the teacher has layers 0..{teacher_layers - 1}"
                           + (f"; {bad[0]} is not one of them" if bad else ""))
    return layers


def _student_name(name: str, layers: list[int]) -> str | None:
    """The teacher parameter a student parameter is copied from: encoder layer i <- teacher layer layers[i];
    everything else (embeddings, pooler, heads) under its own name."""
    parts = name.split(".")
    if parts[:3] == ["bert", "encoder", "layer"]:
        parts[3] = str(layers[int(parts[3])])
    return ".".join(parts)


def student_from_teacher(teacher, layers: list[int] | None = None, seed: int = 0, init: str = "teacher"):
    """A student of the teacher's class with len(layers) encoder layers, student layer i a copy of teacher
    layer layers[i] (default every_other_layer), the embeddings, pooler and heads copied whole.

    teacher: a BertForPreTraining or a fine-tuning head (BertForSequenceClassification, ...). The config
    is the teacher's with num_hidden_layers = len(layers). init="random": the same architecture with
    BERT's init instead (the baseline "the student trained alone, from scratch"), seeded by `seed`.
    Returns the student in training mode; its dropout generator is seeded by `seed`.
    """
    L = teacher.config.num_hidden_layers
    layers = every_other_layer(L) if layers is None else list(layers)
    if not layers or any(not 0 <= i < L for i in layers):
        raise DistillError(f"student layers {layers}: the teacher has layers 0..{L - 1}")
    config = BertConfig.from_dict({**teacher.config.to_dict(), "num_hidden_layers": len(layers)})
    cls = type(teacher)
    if init not in ("teacher", "random"):
        raise ValueError(f"init must be 'teacher' or 'random', got {init!r}")
    if cls is BertForPreTraining:
        student = BertForPreTraining(config, seed=seed, dtype=teacher.dtype, ops=teacher.ops)
    elif isinstance(teacher, BertWithTaskHead):
        student = cls(config, seed=seed, dtype=teacher.dtype)
    else:
        raise DistillError(f"a teacher must be a BertForPreTraining or a fine-tuning head, got {cls.__name__}")
    if init == "teacher":
        student.buffers.load({name: teacher.params[_student_name(name, layers)] for name in student.params})
    return student.train()


# -- task distillation ---------------------------------------------------------------------------

class TaskDistillation:
    """The objective of train/step.py for task distillation: two loss terms over the labelled sequences,

        soft_loss = alpha * KL_T(student logits || teacher logits)     hard_loss = (1 - alpha) * CE(labels)

    (each already times its weight, so the logged "loss", their sum, is the loss trained). `task` (a
    SequenceTask) reads the batches and evaluates; `teacher` is run in inference mode on every batch.
    """
    loss_keys = ("soft_loss", "hard_loss")
    correct_keys = ("correct",)

    def __init__(self, task, teacher, temperature: float = 2.0, alpha: float = 0.5):
        self.task, self.teacher, self.temperature, self.alpha = task, teacher, temperature, alpha
        self._soft = None                        # the KL's cache, from forward to backward

    def counts(self, b) -> tuple[int, int]:
        n = self.task.loss_count(b)              # both terms average over the labelled sequences
        return n, n

    def forward(self, model, b) -> dict:
        with self.teacher.inference():           # dropout off, no cache: the teacher is a constant
            teacher_logits = self.teacher.forward(*self.task.inputs(b))["logits"]           # (B, C)
        out = self.task.forward(model, b)        # the student's logits and CE (its cache kept for backward)
        xp = backend.get_xp(out["logits"])
        labelled = xp.asarray(backend.to_host(b["labels"]) != IGNORE_INDEX)                 # (B,) rows counted
        soft, self._soft = kl_div_with_temperature_forward(out["logits"], teacher_logits, self.temperature, labelled)
        return {**out, "soft_loss": self.alpha * soft, "hard_loss": (1.0 - self.alpha) * out["loss"]}

    def backward(self, model, weights) -> None:
        """d(w0 alpha KL + w1 (1 - alpha) CE): the KL's gradient on the logits goes into the head's backward."""
        dlogits = kl_div_with_temperature_backward(weights[0] * self.alpha, self._soft)     # (B, C)
        self._soft = None
        model.backward((1.0 - self.alpha) * weights[1], dlogits=dlogits)

    @staticmethod
    def step_metrics(m) -> dict:
        """The two weighted terms and the training accuracy of a step, for log.jsonl."""
        return {**m["losses"], "accuracy": m["correct"]["correct"] / max(m["counts"][1], 1)}


@dataclass(kw_only=True)
class TaskDistillArgs(FinetuneArgs):
    """A fine-tuning run's settings (FinetuneArgs: epochs, lr, batch size, ... as `finetune`) plus the
    teacher and the distillation's; saved as run.json. FinetuneArgs' --model, --freeze-* and --dropout
    are not used (the student comes from the teacher)."""
    teacher: str = field(metadata={"help": "the teacher: a `minibert finetune` run folder (or its best/)"})
    lr: float = field(default=5e-5, metadata={"check": checks.finite_positive,
                                              "help": "peak learning rate (after 10% warm-up, linear decay to 0)"})
    temperature: float = field(default=2.0, metadata={"check": checks.finite_positive,
                                                      "help": "softmax temperature T of the soft targets"})
    alpha: float = field(default=0.5, metadata={"check": checks.probability,
                                                "help": "weight of the soft (teacher) term; 1 - alpha: the labels'"})
    student_layers: str | None = field(default=None, metadata={
        "help": "teacher layers the student keeps, e.g. 0,2,4 (default: every other one, half of them)"})
    init: str = field(default="teacher", metadata={
        "choices": ["teacher", "random"], "help": "student weights: copied from the teacher, or BERT's init"})


RESUME_CHANGES = ("checkpoint_every", "keep")   # what `--resume` may change (no number depends on them)


def check_resume(args, run_dir) -> None:
    """`args` (TaskDistillArgs or PretrainDistillArgs) may continue the distillation in `run_dir`: its
    run.json holds the settings of a run of the same recipe, each fitting its field, and they are args'
    (but RESUME_CHANGES); else DistillError naming every setting that differs."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise DistillError(f"--resume: no distillation to resume in {run_dir} (no run.json)")
    saved = read_json(path)
    recipe, marker = (("`distill --pretraining`", "ce_weight") if isinstance(args, PretrainDistillArgs)
                      else ("task distillation (`distill --task`)", "alpha"))
    if not isinstance(saved, dict) or "teacher" not in saved or marker not in saved:
        raise DistillError(f"--resume: {path} is not the run.json of a {recipe} run")
    settings = type(args)(**checks.settings_from_json(saved, type(args), path, DistillError, command="distill"))
    may_change = tuple(name for name in RESUME_CHANGES if hasattr(args, name))
    checks.check_unchanged(args, settings, path, may_change, DistillError)


def run_task(args: TaskDistillArgs, stream=print, callback=None, overwrite: bool = False,
             resume: bool = False) -> dict:
    """Distil a fine-tuned sequence classifier into a student; return the best dev metrics (metrics.json).

    Everything is checked before anything is written (the teacher's folder and head, the task, the data,
    --out), as `finetune` does; then finetune's own run (train/finetune.py) trains the student with
    TaskDistillation as the objective. alpha = 0 is the student fine-tuned without the teacher's logits.
    resume=True continues the run in args.out from its newest checkpoint, exactly (finetune's machinery:
    the settings must be its run.json's, but RESUME_CHANGES); a run that has ended (metrics.json) is left
    as it is.
    """
    teacher_dir = Path(args.teacher)
    if not teacher_dir.is_dir():
        raise DistillError(f"--teacher {teacher_dir}: no such folder (a `minibert finetune` run folder)")
    finetune._check_args(args)
    task, teacher, tokenizer = load_finetuned(teacher_dir)
    if task.kind != "sequence":
        raise DistillError(f"--teacher {teacher_dir} was fine-tuned for {task.name}; task distillation is for "
                           f"sentence classification (sst2, rte, qnli)")
    if task.name != args.task:
        raise DistillError(f"--teacher {teacher_dir} was fine-tuned for {task.name}, not --task {args.task}")
    task = get_task(task.name, max_seq_len=args.max_seq_len or task.max_seq_len)
    layers = parse_layers(args.student_layers, teacher.config.num_hidden_layers)
    inputs = [("--teacher", teacher_dir), ("--train", args.train), ("--dev", args.dev)]
    check_out_folder(args.out, FINETUNING_RUN, inputs=inputs, resume=resume, overwrite=overwrite)
    if resume:
        check_resume(args, Path(args.out))
        if (Path(args.out) / "metrics.json").is_file():
            return finetune._ended(Path(args.out), stream)
    train = task.load(args.train, tokenizer, limit=args.train_limit, split="train")
    dev = task.load(args.dev, tokenizer, limit=args.dev_limit, split="dev")
    if not len(train.encoded) or not len(dev.encoded):
        raise DistillError(f"nothing to {'train on' if not len(train.encoded) else 'evaluate'}")
    teacher = _as_dtype(teacher, args.dtype)
    student = student_from_teacher(teacher, layers, seed=args.seed, init=args.init)
    stream(f"{args.task}: {train.describe()} for training, {dev.describe()} for evaluation")
    stream(f"distilling {teacher.config.num_hidden_layers} teacher layers into {len(layers)} "
           f"({'teacher layers ' + ', '.join(map(str, layers)) if args.init == 'teacher' else 'BERT init'}); "
           f"T={args.temperature:g}, alpha={args.alpha:g}")
    objective = TaskDistillation(task, teacher, args.temperature, args.alpha)
    with claim_run_folder(args.out, FINETUNING_RUN, inputs=inputs, resume=resume, overwrite=overwrite, say=stream):
        return finetune._run(args, task, tokenizer, train, dev, student, stream, callback, objective=objective,
                             resume=resume, check_resume=check_resume)


def _as_dtype(model, dtype: str):
    """The model itself when it already has `dtype`, else a copy in it (a float32 teacher for a float64 run)."""
    if model.dtype == backend.resolve_dtype(dtype):
        return model
    copy = type(model)(model.config, dtype=dtype) if not isinstance(model, BertForPreTraining) else \
        BertForPreTraining(model.config, dtype=dtype, ops=model.ops)
    copy.buffers.load(dict(model.params))
    return copy.eval()


# -- pretraining distillation ---------------------------------------------------------------------

class PretrainDistillation:
    """The objective of train/step.py for DistilBERT's pretraining loss: three terms, each times its weight,

        soft_loss = w_ce softCE_T(student, teacher)   over the masked positions   (teacher's MLM logits)
        mlm_loss  = w_mlm MLM(student)                 over the masked positions
        cos_loss  = w_cos (1 - cos(h_s, h_t))           over the real tokens        (last hidden states)

    No next-sentence term. With w_ce = w_cos = 0 the teacher is never run (plain MLM training).
    """
    loss_keys = ("soft_loss", "mlm_loss", "cos_loss")
    correct_keys = ("mlm_correct",)

    def __init__(self, teacher, temperature: float = 2.0, ce_weight: float = 5.0, mlm_weight: float = 2.0,
                 cos_weight: float = 1.0):
        self.teacher, self.temperature = teacher, temperature
        self.ce_weight, self.mlm_weight, self.cos_weight = ce_weight, mlm_weight, cos_weight
        self._soft = self._cos = None

    @property
    def uses_teacher(self) -> bool:
        return bool(self.ce_weight or self.cos_weight)

    def counts(self, b) -> tuple[int, int, int]:
        """(masked positions, masked positions, real tokens): what the three terms average over."""
        predicted = int((backend.to_host(b["labels"]) != IGNORE_INDEX).sum())
        return predicted, predicted, int(backend.to_host(b["attention_mask"]).sum())

    def forward(self, model, b) -> dict:
        inputs = (b["input_ids"], b["token_type_ids"], b["attention_mask"])
        out = model.forward(*inputs, labels=b["labels"])              # MLM only: no next_sentence_label
        result = {"mlm_loss": self.mlm_weight * out["mlm_loss"], "mlm_correct": out["mlm_correct"],
                  "soft_loss": 0.0, "cos_loss": 0.0}
        if not self.uses_teacher:
            return result
        with self.teacher.inference():                                # the same masked positions, dropout off
            t = self.teacher.forward(*inputs, labels=b["labels"])
        if self.ce_weight:
            soft, self._soft = soft_target_cross_entropy_forward(out["mlm_logits"], t["mlm_logits"], self.temperature)
            result["soft_loss"] = self.ce_weight * soft
        if self.cos_weight:
            xp = backend.get_xp(out["sequence_output"])
            real = xp.asarray(backend.to_host(b["attention_mask"]) == 1)                    # (B, T)
            cos, self._cos = cosine_embedding_loss_forward(out["sequence_output"], t["sequence_output"], real)
            result["cos_loss"] = self.cos_weight * cos
        return result

    def backward(self, model, weights) -> None:
        """The soft term's gradient enters at the MLM logits, the cosine term's at the last hidden states."""
        dlogits = dsequence = None
        if self._soft is not None:
            dlogits = soft_target_cross_entropy_backward(weights[0] * self.ce_weight, self._soft)    # (M, V)
        if self._cos is not None:
            dsequence = cosine_embedding_loss_backward(weights[2] * self.cos_weight, self._cos)      # (B, T, H)
        self._soft = self._cos = None
        model.backward(mlm_weight=weights[1] * self.mlm_weight, nsp_weight=0.0, dmlm_logits=dlogits,
                       dsequence=dsequence)

    @staticmethod
    def step_metrics(m) -> dict:
        """The three weighted terms and the MLM training accuracy of a step, for log.jsonl."""
        return {**m["losses"], "mlm_accuracy": m["correct"]["mlm_correct"] / max(m["counts"][1], 1)}


NSP_AND_POOLER = ("cls.seq_relationship.weight", "cls.seq_relationship.bias",
                  "bert.pooler.dense.weight", "bert.pooler.dense.bias")     # frozen: no NSP term trains them


@dataclass
class PretrainDistillArgs:
    """The settings of a pretraining-distillation run (saved as run.json)."""
    teacher: str = field(metadata={"help": "the teacher: a `minibert pretrain` run folder (its data/ is used)"})
    out: str = field(default="runs/distill", metadata={"help": "run folder"})
    student_layers: str | None = field(default=None, metadata={
        "help": "teacher layers the student keeps, e.g. 0,2 (default: every other one, half of them)"})
    init: str = field(default="teacher", metadata={
        "choices": ["teacher", "random"], "help": "student weights: copied from the teacher, or BERT's init"})
    temperature: float = field(default=2.0, metadata={"check": checks.finite_positive,
                                                      "help": "softmax temperature T of the soft targets"})
    ce_weight: float = field(default=5.0, metadata={"check": checks.finite_non_negative,
                                                    "help": "weight of the soft-target cross-entropy (DistilBERT: 5)"})
    mlm_weight: float = field(default=2.0, metadata={"check": checks.finite_non_negative,
                                                     "help": "weight of the masked-LM loss (DistilBERT: 2)"})
    cos_weight: float = field(default=1.0, metadata={"check": checks.finite_non_negative,
                                                     "help": "weight of the hidden-state cosine loss (DistilBERT: 1)"})
    steps: int = field(default=500, metadata={"check": checks.positive, "help": "optimizer steps"})
    batch_size: int = field(default=32, metadata={"check": checks.positive, "help": "sequences per step"})
    lr: float = field(default=5e-4, metadata={"check": checks.finite_positive, "help": "peak learning rate"})
    warmup: float = field(default=0.1, metadata={"check": checks.below_one, "help": "warm-up fraction of the steps"})
    weight_decay: float = field(default=0.01, metadata={"check": checks.finite_non_negative,
                                                        "help": "AdamW decoupled weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"check": checks.finite_non_negative,
                                                        "help": "clip the global gradient norm (0: off)"})
    eval_every: int = field(default=100, metadata={"check": checks.positive,
                                                   "help": "steps between held-out evaluations"})
    eval_batches: int = field(default=20, metadata={"check": checks.positive, "help": "batches per evaluation"})
    checkpoint_every: int = field(default=250, metadata={"check": checks.positive,
                                                         "help": "steps between checkpoints"})
    seed: int = field(default=12345, metadata={"help": "seed of the data order, a random init and dropout"})
    progress: bool = field(default=True, metadata={"help": "no progress bar"})

    def __post_init__(self):
        checks.check_fields(self)
        if not (self.ce_weight or self.mlm_weight or self.cos_weight):
            raise DistillError("--ce-weight, --mlm-weight and --cos-weight are all 0: nothing to train")


def check_teacher_run(teacher_dir) -> Path:
    """The folder of a pretraining teacher, or DistillError: it must be a `minibert pretrain` run folder (its
    run.json and data/train.npz: the student trains on the teacher's own instances)."""
    teacher_dir = Path(teacher_dir)
    if not teacher_dir.is_dir():
        raise DistillError(f"--teacher {teacher_dir}: no such folder (a `minibert pretrain` run folder)")
    if not (teacher_dir / "run.json").is_file() or not (teacher_dir / "data" / "train.npz").is_file():
        raise DistillError(f"--teacher {teacher_dir}: not a `minibert pretrain` run folder (no run.json or "
                           f"data/train.npz: the student trains on the teacher's instances)")
    return teacher_dir


def teacher_data(teacher_dir, vocab_size: int) -> tuple[dict, dict, int]:
    """(train, held-out, seq_len) of a pretraining run folder: its data/train.npz and data/eval.npz, checked."""
    teacher_dir = check_teacher_run(teacher_dir)
    seq_len = pretrain.load_run_args(teacher_dir, progress=False).seq_len
    data = []
    for name in ("train.npz", "eval.npz"):
        features = pretrain.cached_features(teacher_dir / "data" / name, seq_len, vocab_size)
        if not isinstance(features, dict):
            raise DistillError(f"--teacher {teacher_dir}: {features}")
        data.append(features)
    return data[0], data[1], seq_len


def run_pretraining(args: PretrainDistillArgs, teacher, tokenizer, stream=print, callback=None,
                    overwrite: bool = False, resume: bool = False) -> dict:
    """Train a student of `teacher` (a BertForPreTraining, e.g. from apps.fill_mask.load_pretraining_model
    on args.teacher) with DistilBERT's loss on the teacher run's instances; return the last held-out
    evaluation (student and, under "teacher_*", the teacher on the same rows).

    Writes into args.out a pretraining run folder: run.json (these settings), config.json, vocab.txt,
    log.jsonl, checkpoints/ and model.safetensors; `minibert fill-mask --model OUT` loads it.
    resume=True continues the run in args.out from its newest checkpoint (the same settings, checked
    against its run.json), exactly: the data order is a function of (seed, step), the student's weights,
    AdamW's moments and the dropout generator come from the checkpoint, the teacher is fixed.
    """
    if not isinstance(teacher, BertForPreTraining):
        raise DistillError(f"--teacher {args.teacher}: a pretraining teacher (BertForPreTraining) is needed, got "
                           f"{type(teacher).__name__}")
    train, held, _ = teacher_data(args.teacher, teacher.config.vocab_size)
    layers = parse_layers(args.student_layers, teacher.config.num_hidden_layers)
    run_dir = Path(args.out)
    inputs = [("--teacher", args.teacher)]
    check_out_folder(run_dir, PRETRAINING_RUN, inputs=inputs, resume=resume, overwrite=overwrite)
    if resume:
        check_resume(args, run_dir)
    student = student_from_teacher(teacher, layers, seed=args.seed, init=args.init)
    objective = PretrainDistillation(teacher, args.temperature, args.ce_weight, args.mlm_weight, args.cos_weight)
    mask_id, n_train = tokenizer.mask_token_id, len(train["input_ids"])
    baselines = pretrain.context_free_baselines(train, held, student.config.vocab_size,
                                                args.batch_size * args.eval_batches, mask_id)
    with teacher.inference():
        of_teacher = pretrain.evaluate(teacher, held, args.batch_size, args.eval_batches, mask_id)
    of_teacher = {"teacher_" + k: v for k, v in of_teacher.items()}
    with claim_run_folder(run_dir, PRETRAINING_RUN, inputs=inputs, resume=resume, overwrite=overwrite, say=stream):
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            check_resume(args, run_dir)              # again, under the lock
        write_json(run_dir / "run.json", dataclasses.asdict(args))
        student.config.save(run_dir)
        tokenizer.save_pretrained(run_dir)
        optimizer = AdamW(student.params, lr=args.lr, weight_decay=args.weight_decay, frozen=list(NSP_AND_POOLER))
        warmup = int(args.warmup * args.steps)
        loop = TrainingLoop(
            student, objective, optimizer, run_dir, max_grad_norm=args.max_grad_norm,
            lr_at=lambda i: linear_warmup_decay(i, args.lr, warmup, args.steps),
            evaluate=lambda: {**pretrain.evaluate(student, held, args.batch_size, args.eval_batches, mask_id),
                              **baselines, **of_teacher},
            describe=_describe_evaluation, eval_every=args.eval_every, checkpoint_every=args.checkpoint_every,
            checkpoint_state=lambda: {"config": student.config.to_dict()}, step_metrics=objective.step_metrics,
            progress=args.progress, desc="distill", callback=callback, write=stream)
        stream(f"distilling a {teacher.config.num_hidden_layers}-layer teacher into {len(layers)} layers "
               f"({'teacher layers ' + ', '.join(map(str, layers)) if args.init == 'teacher' else 'BERT init'}; "
               f"{student.num_parameters():,} parameters) on {n_train:,} instances: "
               f"{args.ce_weight:g} x soft CE (T={args.temperature:g}) + {args.mlm_weight:g} x MLM + "
               f"{args.cos_weight:g} x cosine; the teacher's held-out MLM accuracy "
               f"{of_teacher['teacher_eval_mlm_accuracy']:.3f}")
        start = loop.resume() if resume else 0
        plan = [(None, step_rows(step, args.batch_size, n_train, args.seed)) for step in range(args.steps)]
        summary = loop.run(plan, lambda rows: [pretrain.get_batch(train, rows)], start=start)
        save_arrays(run_dir / "model.safetensors", student.params, metadata={"format": "pt", "step": args.steps})
    stream(f"saved the student to {run_dir / 'model.safetensors'}")
    return summary["last_eval"]


def _describe_evaluation(r: dict) -> str:
    return (f"held-out masked LM: accuracy {r['eval_mlm_accuracy']:.3f} (teacher {r['teacher_eval_mlm_accuracy']:.3f},"
            f" most frequent word {r['eval_mlm_accuracy_most_frequent']:.3f}), perplexity {r['eval_perplexity']:.1f} "
            f"(teacher {r['teacher_eval_perplexity']:.1f})")

