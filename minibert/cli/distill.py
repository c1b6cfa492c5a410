"""`minibert distill`: a student with half the teacher's layers, trained on the teacher's outputs.

    minibert distill --teacher runs/sst2 --task sst2 --train train.tsv --dev dev.tsv --out runs/sst2-student
    minibert distill --pretraining --teacher runs/mini --steps 500 --out runs/mini-student
    minibert distill --out runs/mini-student --resume          # continue a run that was stopped

The library is minibert/train/distill.py (task and pretraining distillation); docs/distillation.md.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from minibert import checks
from minibert.apps.fill_mask import load_pretraining_model
from minibert.cli.command import Command
from minibert.model.io import read_json
from minibert.train import distill
from minibert.train.distill import DistillError, PretrainDistillArgs, TaskDistillArgs
from minibert.viz import plot_run


TASK, PRETRAINING = TaskDistillArgs, PretrainDistillArgs        # the two recipes' settings (train/distill.py)
SEED = 42                                                       # the command's seed for both recipes
RECIPE_NAMES = {TASK: "task distillation", PRETRAINING: "--pretraining"}


def recipe_option(name: str, *recipes, help: str | None = None):
    """A flag that sets the field `name` of the recipes' dataclasses (TASK, PRETRAINING): its check, choices
    and help are that field's, so each setting is declared once, in train/distill.py. Its default is None:
    a recipe not given the flag keeps its own default (said in the help); metadata "recipes" lets
    `recipe_settings` refuse the flag for the other recipe instead of ignoring it."""
    fields = [next(f for f in dataclasses.fields(r) if f.name == name) for r in recipes]
    defaults = [f.default for f in fields if f.default not in (None, dataclasses.MISSING)]
    said = ""
    if len(defaults) == len(recipes) and len(set(defaults)) == 1:
        said = f" (default: {defaults[0]})"
    elif len(defaults) == len(recipes):
        said = " (default: " + ", ".join(f"{d} for {RECIPE_NAMES[r]}" for d, r in zip(defaults, recipes)) + ")"
    scope = "" if len(recipes) > 1 else f"{RECIPE_NAMES[recipes[0]].removeprefix('--')}: "
    metadata = {k: v for k, v in fields[0].metadata.items() if k != "help"}
    metadata.update(help=scope + (help or fields[0].metadata["help"]) + said, recipes=recipes)
    return field(default=None, metadata=metadata)


@dataclass(kw_only=True)
class DistillCommandArgs:
    """The flags of `minibert distill`: the teacher, then the settings of one recipe or of both (recipe_option:
    declared in train/distill.py); a flag of the other recipe is an error."""
    teacher: str | None = field(default=None, metadata={
        "help": "the teacher: a `minibert finetune` run folder (task distillation) or, with --pretraining, a "
                "`minibert pretrain` run folder (required, unless --resume: then the run's)"})
    pretraining: bool = field(default=False, metadata={
        "help": "DistilBERT's pretraining recipe (soft-target CE + MLM + cosine) on the teacher run's data"})
    task: str | None = recipe_option("task", TASK, help="the teacher's task (sst2, rte, qnli)")
    train: str | None = recipe_option("train", TASK, help="training file (GLUE TSV)")
    dev: str | None = recipe_option("dev", TASK)
    out: str = field(default="runs/distill", metadata={"help": "run folder"})
    student_layers: str | None = recipe_option("student_layers", TASK, PRETRAINING)
    init: str | None = recipe_option("init", TASK, PRETRAINING)
    temperature: float | None = recipe_option("temperature", TASK, PRETRAINING)
    alpha: float | None = recipe_option("alpha", TASK)
    ce_weight: float | None = recipe_option("ce_weight", PRETRAINING)
    mlm_weight: float | None = recipe_option("mlm_weight", PRETRAINING)
    cos_weight: float | None = recipe_option("cos_weight", PRETRAINING)
    epochs: int | None = recipe_option("epochs", TASK)
    steps: int | None = recipe_option("steps", PRETRAINING)
    lr: float | None = recipe_option("lr", TASK, PRETRAINING, help="peak learning rate")
    batch_size: int | None = recipe_option("batch_size", TASK, PRETRAINING)
    max_seq_len: int | None = recipe_option("max_seq_len", TASK, help="tokens per sequence (default: the teacher's)")
    train_limit: int | None = recipe_option("train_limit", TASK)
    dev_limit: int | None = recipe_option("dev_limit", TASK)
    eval_every: int | None = recipe_option("eval_every", TASK, PRETRAINING, help="steps between evaluations "
                                           "(0: at the end of every epoch)")
    eval_batches: int | None = recipe_option("eval_batches", PRETRAINING)
    checkpoint_every: int | None = recipe_option("checkpoint_every", TASK, PRETRAINING)
    keep: int | None = recipe_option("keep", TASK)
    seed: int | None = field(default=None, metadata={
        "help": f"seed of the data order, a random init and dropout (default: {SEED})"})
    overwrite: bool = field(default=False, metadata={"help": "replace an earlier run in --out"})
    resume: bool = field(default=False, metadata={
        "help": "continue the run in --out from its newest checkpoint: its settings come from its run.json "
                "(--checkpoint-every and --keep may change; any other flag given must be the run's)"})
    progress: bool = field(default=True, metadata={"help": "no progress bar"})


def recipe_settings(args: DistillCommandArgs, recipe, saved: dict | None = None):
    """The library's settings of `recipe` (TASK or PRETRAINING): the flags given (not None) passed on, the
    recipe's own defaults for the others, or with --resume the run's `saved` settings (its run.json: the
    library then refuses a flag given with another value than the run's, but --checkpoint-every and
    --keep); a flag given that belongs to the other recipe only is an error."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(args)
             if ("recipes" in f.metadata or f.name in ("teacher", "seed")) and getattr(args, f.name) is not None}
    options = {f.name: f.metadata["recipes"] for f in dataclasses.fields(args) if "recipes" in f.metadata}
    wrong = [checks.flag_name(name) for name in given if name in options and recipe not in options[name]]
    if wrong:
        other = PRETRAINING if recipe is TASK else TASK
        hint = " (task distillation runs --epochs)" if "--steps" in wrong else \
            " (which trains on the teacher run's own data)" if recipe is PRETRAINING else ""
        raise DistillError(f"{', '.join(wrong)}: a setting of {RECIPE_NAMES[other]}, not of "
                           f"{RECIPE_NAMES[recipe]}{hint}")
    if saved is not None:
        settings = checks.settings_from_json(saved, recipe, Path(args.out) / "run.json", DistillError,
                                             command="distill")
        return recipe(**{**settings, **given, "out": args.out, "progress": args.progress})
    needed = ("teacher",) + (("task", "train", "dev") if recipe is TASK else ())
    missing = [f"--{name}" for name in needed if name not in given]
    if missing:
        raise DistillError(f"{RECIPE_NAMES[recipe].removeprefix('--')} needs {', '.join(missing)} (or --resume to "
                           f"continue the run in --out" + (", or --pretraining)" if recipe is TASK else ")"))
    return recipe(**{"seed": SEED, **given, "out": args.out, "progress": args.progress})


def resumed_run(args: DistillCommandArgs) -> dict:
    """--resume: the settings of the distillation in --out (its run.json), which say its recipe."""
    path = Path(args.out) / "run.json"
    if not path.is_file():
        raise DistillError(f"--resume: no distillation to resume in {args.out} (no run.json)")
    saved = read_json(path)
    if not isinstance(saved, dict) or "teacher" not in saved or not {"alpha", "ce_weight"} & set(saved):
        raise DistillError(f"--resume: {path} is not the run.json of a `minibert distill` run")
    if args.pretraining and "ce_weight" not in saved:
        raise DistillError(f"--pretraining --resume: the run in {args.out} is a task distillation")
    return saved


def run_distill(args: DistillCommandArgs) -> int:
    """Task distillation (a finetune run folder) or, with --pretraining, DistilBERT's pretraining recipe;
    --resume: the run in --out continued, whichever recipe it is."""
    saved = resumed_run(args) if args.resume else None
    if not (args.pretraining or (saved is not None and "ce_weight" in saved)):
        distill.run_task(recipe_settings(args, TASK, saved), overwrite=args.overwrite, resume=args.resume)
        for path in plot_run(args.out):
            print(f"figure: {path}")
        return 0
    settings = recipe_settings(args, PRETRAINING, saved)
    distill.check_teacher_run(settings.teacher)          # before loading it: a clear message for a wrong folder
    teacher, tokenizer = load_pretraining_model(settings.teacher)
    result = distill.run_pretraining(settings, teacher, tokenizer, overwrite=args.overwrite, resume=args.resume)
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
