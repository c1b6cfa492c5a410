"""`minibert finetune` and `minibert predict`."""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field

from minibert import checks
from minibert.cli.command import Command
from minibert.cli.distributed import abort_on_error, distributed_field, process_group, timeout_field
from minibert.cli.precision import chosen_precision, precision_field, using_precision
from minibert.train import finetune
from minibert.train.finetune import FinetuneArgs, FinetuneError, load_finetuned
from minibert.viz import plot_run


@dataclass(kw_only=True)
class FinetuneCommandArgs(FinetuneArgs):
    """FinetuneArgs and --overwrite, which says how to start the run and is not one of its settings (run.json)."""
    overwrite: bool = field(default=False, metadata={
        "help": "replace the earlier fine-tuning run in --out (it says what it deletes); without it, such a "
                "folder is refused"})
    precision: str | None = precision_field()
    distributed: bool = distributed_field()
    collective_timeout: float = timeout_field()


def run_finetune(args: FinetuneCommandArgs) -> int:
    """Fine-tune; the run folder holds the best model, metrics.json, log.jsonl and the curves."""
    settings = FinetuneArgs(**{f.name: getattr(args, f.name) for f in dataclasses.fields(FinetuneArgs)})
    group = process_group(args.distributed, args.collective_timeout)
    with abort_on_error(group), using_precision(chosen_precision(args.precision, args.fp16)) as precision:
        settings = dataclasses.replace(settings, fp16=precision == "fp16")   # fp16: the run's loss scaling
        finetune.run(settings, overwrite=args.overwrite, group=group)
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
                        "every epoch, keeps the best model in OUT/best, writes OUT/metrics.json, OUT/log.jsonl\n"
                        "and OUT/curves.png."),
    Command("predict", "answer typed inputs with a fine-tuned model", PredictArgs, run_predict,
            description="A label with probabilities (classification), a tag per word (NER), or an answer span\n"
                        "(QA). Texts come from the command line or stdin."),
)
