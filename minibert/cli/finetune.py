"""`minibert finetune` (and `finetune --resume`) and `minibert predict`."""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field

from minibert import checks
from minibert.cli.command import Command
from minibert.cli.distributed import abort_on_error, distributed_field, process_group, timeout_field
from minibert.cli.precision import chosen_precision, precision_field, using_precision
from minibert.files import FINETUNING_RUN, check_out_folder
from minibert.train import finetune
from minibert.train.finetune import RESUME_CHANGES, FinetuneArgs, FinetuneError, load_finetuned, load_run_args
from minibert.viz import plot_run

REQUIRED = ("task", "train", "dev")          # FinetuneArgs' fields without a default: needed unless --resume


def _optional(name: str, with_resume: str):
    """The field `name` of FinetuneArgs with default None, so that "not given" can be told from "given":
    with --resume, a flag not given keeps the run's value (run.json). Help and checks are FinetuneArgs'."""
    base = FinetuneArgs.__dataclass_fields__[name]
    default = "" if base.default is dataclasses.MISSING else f"default: {base.default}; "
    return field(default=None, metadata={**base.metadata,
                                         "help": f"{base.metadata.get('help', '')} ({default}{with_resume})"})


@dataclass(kw_only=True)
class FinetuneCommandArgs(FinetuneArgs):
    """FinetuneArgs, --resume and --overwrite, which say how to start the run and are not among its
    settings (run.json). --task, --train and --dev are required unless --resume (they are then the run's);
    the settings --resume may change (finetune.RESUME_CHANGES) default to None here: None is "not given"."""
    task: str | None = _optional("task", "required, unless --resume")
    train: str | None = _optional("train", "required, unless --resume")
    dev: str | None = _optional("dev", "required, unless --resume")
    checkpoint_every: int | None = _optional("checkpoint_every", "with --resume: the run's")
    keep: int | None = _optional("keep", "with --resume: the run's")
    resume: bool = field(default=False, metadata={
        "help": "continue the run in --out from its newest checkpoint, with the settings in its run.json, to "
                "the same numbers as a run never interrupted (docs/finetuning.md, \"Interrupted runs\"); "
                "--checkpoint-every and --keep may change; any other flag given with another value than the "
                "run's is an error"})
    overwrite: bool = field(default=False, metadata={
        "help": "replace the earlier fine-tuning run in --out (it says what it deletes); without it, such a "
                "folder is refused"})
    precision: str | None = precision_field()
    distributed: bool = distributed_field()
    collective_timeout: float = timeout_field()


def finetune_settings(args: FinetuneCommandArgs) -> FinetuneArgs:
    """The settings the run gets: the flags for a new run (a flag not given: its default); with --resume,
    the run's run.json with the flags that were given laid over it (finetune.run then refuses any that
    differ from the run's but RESUME_CHANGES).

    Given means: --task/--train/--dev or a flag of RESUME_CHANGES that was typed (not None), or any other
    flag whose value is not its default (one typed with its default value keeps the run's value).
    """
    typed = {f.name: getattr(args, f.name) for f in dataclasses.fields(FinetuneArgs)}
    optional = REQUIRED + RESUME_CHANGES
    defaults = {f.name: f.default for f in dataclasses.fields(FinetuneArgs) if f.name not in optional}
    given = {k: v for k, v in typed.items()
             if (v is not None if k in optional else v != defaults[k]) and k not in ("progress", "out")}
    if not args.resume:
        missing = [checks.flag_name(k) for k in REQUIRED if typed[k] is None]
        if missing:
            raise FinetuneError(f"the following arguments are required: {', '.join(missing)}, or --resume to "
                                f"continue the run in --out (see minibert finetune --help)")
        fields = {f.name: f.default for f in dataclasses.fields(FinetuneArgs) if f.name in RESUME_CHANGES}
        return FinetuneArgs(**{**fields, **given, "out": args.out, "progress": args.progress})
    check_out_folder(args.out, FINETUNING_RUN, resume=True, overwrite=args.overwrite)   # a fine-tuning run, free
    saved = load_run_args(args.out, args.progress)
    return dataclasses.replace(saved, **given, out=args.out)          # out: the folder as it is named now


def run_finetune(args: FinetuneCommandArgs) -> int:
    """Fine-tune (or continue with --resume); the run folder holds the best model, metrics.json, log.jsonl,
    the checkpoints and the curves."""
    group = process_group(args.distributed, args.collective_timeout)
    with abort_on_error(group):
        settings = finetune_settings(args)   # --resume: run.json's fp16 too (--fp16 need not be typed again)
        with using_precision(chosen_precision(args.precision, settings.fp16)) as precision:
            settings = dataclasses.replace(settings, fp16=precision == "fp16")   # fp16: the run's loss scaling
            finetune.run(settings, overwrite=args.overwrite, group=group, resume=args.resume)
    if not group.is_main:                    # rank 0 draws the curves
        return 0
    for path in plot_run(args.out):
        print(f"figure: {path}")
    return 0


@dataclass(kw_only=True)
class PredictArgs:
    model: str = field(metadata={"help": "a finetune run folder (or its best/ folder)"})
    pair: str | None = field(default=None, metadata={"help": "second text of a sentence pair (RTE, QNLI)"})
    question: str | None = field(default=None, metadata={"help": "question (QA)"})
    context: str | None = field(default=None, metadata={"help": "context paragraph (QA)"})
    top_k: int = field(default=3, metadata={"check": checks.positive, "help": "labels or answers shown"})
    text: list[str] = field(metadata={"positional": True, "nargs": "*",
                                      "help": "texts to classify or tag (default: lines of stdin)"})


def _read_inputs(args: PredictArgs, kind) -> list[tuple]:
    """The typed inputs: from the command line, else one per line of stdin (pairs TAB-separated)."""
    if kind == "span":
        if args.question and args.context:
            return [(args.question, args.context)]
        lines = [line.rstrip("\n") for line in sys.stdin if line.strip()]
        pairs = [tuple(line.split("\t", 1)) for line in lines]
        bad = [n for n, p in enumerate(pairs, 1) if len(p) != 2]
        if bad:
            raise FinetuneError(f"a question-answering model needs --question and --context, or lines "
                                f"'QUESTION<TAB>CONTEXT' on stdin (line {bad[0]} has no TAB)")
        return pairs
    texts = args.text or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if args.pair is not None:
        return [(t, args.pair) for t in texts]
    return [tuple(t.split("\t", 1)) if "\t" in t else (t,) for t in texts]


def run_predict(args: PredictArgs) -> int:
    """One line per input: a label with probabilities, a tag per word, or an answer span."""
    task, model, tokenizer = load_finetuned(args.model)
    inputs = _read_inputs(args, task.kind)
    if not inputs:
        raise FinetuneError("nothing to predict: give a text (or --question/--context), or lines on stdin")
    for line in task.predict(model, tokenizer, inputs, top_k=args.top_k):
        print(line)
    return 0


COMMANDS = (
    Command("finetune", "fine-tune BERT on a classification, NER or QA task", FinetuneCommandArgs, run_finetune,
            description="Fine-tune a BERT (default: the packaged all-MiniLM-L6-v2) on a task; evaluates on --dev\n"
                        "every epoch, keeps the best model in OUT/best, writes OUT/metrics.json, OUT/log.jsonl,\n"
                        "OUT/checkpoints/ and OUT/curves.png. A run killed at any moment continues with\n"
                        "`minibert finetune --out OUT --resume`, to the numbers of a run never interrupted."),
    Command("predict", "answer typed inputs with a fine-tuned model", PredictArgs, run_predict,
            description="A label with probabilities (classification), a tag per word (NER), or an answer span\n"
                        "(QA). Texts come from the command line or stdin."),
)
