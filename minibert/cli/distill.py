"""`minibert distill`: a student with half the teacher's layers, trained on the teacher's outputs.

    minibert distill --teacher runs/sst2 --task sst2 --train train.tsv --dev dev.tsv --out runs/sst2-student
    minibert distill --pretraining --teacher runs/mini --steps 500 --out runs/mini-student

The library is minibert/train/distill.py (task and pretraining distillation); docs/distillation.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from minibert import checks
from minibert.apps.fill_mask import load_pretraining_model
from minibert.cli.command import Command
from minibert.train import distill
from minibert.train.distill import DistillError, PretrainDistillArgs, TaskDistillArgs
from minibert.train.finetune_tasks import TASK_NAMES
from minibert.viz import plot_run


@dataclass(kw_only=True)
class DistillCommandArgs:
    """The flags of `minibert distill`: the teacher, the recipe's settings, the training's."""
    teacher: str = field(metadata={"help": "the teacher: a `minibert finetune` run folder (task distillation) or, "
                                           "with --pretraining, a `minibert pretrain` run folder"})
    pretraining: bool = field(default=False, metadata={
        "help": "DistilBERT's pretraining recipe (soft-target CE + MLM + cosine) on the teacher run's data"})
    task: str | None = field(default=None, metadata={"choices": TASK_NAMES,
                                                     "help": "task distillation: the teacher's task (sst2, ...)"})
    train: str | None = field(default=None, metadata={"help": "task distillation: training file"})
    dev: str | None = field(default=None, metadata={"help": "task distillation: dev file, evaluated every epoch"})
    out: str = field(default="runs/distill", metadata={"help": "run folder"})
    student_layers: str | None = field(default=None, metadata={
        "help": "teacher layers the student keeps, e.g. 0,2,4 (default: every other one, half of them)"})
    init: str = field(default="teacher", metadata={
        "choices": ["teacher", "random"], "help": "student weights: copied from the teacher, or BERT's init"})
    temperature: float = field(default=2.0, metadata={"check": checks.finite_positive,
                                                      "help": "softmax temperature T of the soft targets"})
    alpha: float = field(default=0.5, metadata={
        "check": checks.probability,
        "help": "task: weight of the teacher's soft targets, 1 - alpha the labels' (0: the labels alone)"})
    ce_weight: float = field(default=5.0, metadata={"check": checks.finite_non_negative,
                                                    "help": "pretraining: weight of the soft-target cross-entropy"})
    mlm_weight: float = field(default=2.0, metadata={"check": checks.finite_non_negative,
                                                     "help": "pretraining: weight of the masked-LM loss"})
    cos_weight: float = field(default=1.0, metadata={"check": checks.finite_non_negative,
                                                     "help": "pretraining: weight of the hidden-state cosine loss"})
    epochs: int | None = field(default=None, metadata={"check": checks.positive,
                                                       "help": "task: passes over the training set (default: 3)"})
    steps: int | None = field(default=None, metadata={"check": checks.positive,
                                                      "help": "pretraining: optimizer steps (default: 500)"})
    lr: float | None = field(default=None, metadata={
        "check": checks.finite_positive, "help": "peak learning rate (default: 5e-5 task, 5e-4 pretraining)"})
    batch_size: int = field(default=32, metadata={"check": checks.positive, "help": "sequences per step"})
    max_seq_len: int | None = field(default=None, metadata={
        "check": checks.at_least(3), "help": "task: tokens per sequence (default: the teacher's)"})
    train_limit: int | None = field(default=None, metadata={"check": checks.positive,
                                                            "help": "task: the first N training examples only"})
    dev_limit: int | None = field(default=None, metadata={"check": checks.positive,
                                                          "help": "task: the first N dev examples only"})
    eval_every: int | None = field(default=None, metadata={
        "check": checks.positive, "help": "steps between evaluations (default: every epoch; pretraining 100)"})
    eval_batches: int = field(default=20, metadata={"check": checks.positive,
                                                    "help": "pretraining: held-out batches per evaluation"})
    seed: int = field(default=42, metadata={"help": "seed of the data order, a random init and dropout"})
    overwrite: bool = field(default=False, metadata={"help": "replace an earlier run in --out"})
    progress: bool = field(default=True, metadata={"help": "no progress bar"})


TASK_ONLY = ("task", "train", "dev", "epochs", "max_seq_len", "train_limit", "dev_limit")


def task_settings(args: DistillCommandArgs) -> TaskDistillArgs:
    """The library's settings of a task distillation, with the flags it needs checked first."""
    missing = [f"--{name.replace('_', '-')}" for name in ("task", "train", "dev") if getattr(args, name) is None]
    if missing:
        raise DistillError(f"task distillation needs {', '.join(missing)} (or give --pretraining)")
    if args.steps is not None:
        raise DistillError("--steps: a setting of --pretraining; task distillation runs --epochs")
    return TaskDistillArgs(teacher=args.teacher, task=args.task, train=args.train, dev=args.dev, out=args.out,
                           student_layers=args.student_layers, init=args.init, temperature=args.temperature,
                           alpha=args.alpha, epochs=args.epochs or 3, lr=args.lr or 5e-5, batch_size=args.batch_size,
                           max_seq_len=args.max_seq_len, train_limit=args.train_limit, dev_limit=args.dev_limit,
                           eval_every=args.eval_every or 0, seed=args.seed, progress=args.progress)


def pretraining_settings(args: DistillCommandArgs) -> PretrainDistillArgs:
    """The library's settings of a pretraining distillation; a task flag given with --pretraining is an error."""
    given = [f"--{name.replace('_', '-')}" for name in TASK_ONLY if getattr(args, name) is not None]
    if given:
        raise DistillError(f"{', '.join(given)}: a setting of task distillation, not of --pretraining (which "
                           f"trains on the teacher run's own data)")
    return PretrainDistillArgs(teacher=args.teacher, out=args.out, student_layers=args.student_layers, init=args.init,
                               temperature=args.temperature, ce_weight=args.ce_weight, mlm_weight=args.mlm_weight,
                               cos_weight=args.cos_weight, steps=args.steps or 500, batch_size=args.batch_size,
                               lr=args.lr or 5e-4, eval_every=args.eval_every or 100, eval_batches=args.eval_batches,
                               seed=args.seed, progress=args.progress)


def run_distill(args: DistillCommandArgs) -> int:
    """Task distillation (a finetune run folder) or, with --pretraining, DistilBERT's pretraining recipe."""
    if not args.pretraining:
        distill.run_task(task_settings(args), overwrite=args.overwrite)
        for path in plot_run(args.out):
            print(f"figure: {path}")
        return 0
    settings = pretraining_settings(args)
    distill.check_teacher_run(args.teacher)              # before loading it: a clear message for a wrong folder
    teacher, tokenizer = load_pretraining_model(args.teacher)
    result = distill.run_pretraining(settings, teacher, tokenizer, overwrite=args.overwrite)
    print(f"held-out masked LM accuracy: student {result['eval_mlm_accuracy']:.3f}, teacher "
          f"{result['teacher_eval_mlm_accuracy']:.3f} (most frequent word {result['eval_mlm_accuracy_most_frequent']:.3f})")
    return 0


COMMANDS = (
    Command("distill", "train a smaller student on a teacher's outputs (DistilBERT)", DistillCommandArgs, run_distill,
            description="Knowledge distillation (docs/distillation.md). The student keeps every other teacher layer\n"
                        "(--student-layers). Task: alpha * KL_T(teacher logits) + (1 - alpha) * CE(labels), a\n"
                        "`finetune` run folder as teacher and as output. --pretraining: 5 x soft-target CE + 2 x MLM\n"
                        "+ 1 x cosine of the hidden states on a `pretrain` run's data; the output is a pretraining\n"
                        "run folder (fill-mask uses it)."),
)
