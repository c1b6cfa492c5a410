"""`minibert pretrain`, `minibert plot`, `minibert fill-mask`."""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

from minibert import checks
from minibert.apps.fill_mask import fill_mask, fill_mask_examples, load_pretraining_model
from minibert.cli.command import Command
from minibert.cli.distributed import abort_on_error, distributed_field, process_group, timeout_field
from minibert.cli.precision import PrecisionError, precision_field, using_precision
from minibert.files import PRETRAINING_RUN, check_out_folder
from minibert.model.io import read_json
from minibert.train import pretrain
from minibert.train.pretrain import RESUME_CHANGES, PretrainArgs, load_documents, load_run_args
from minibert.viz import plot_run


def _given_or_none(name: str):
    """The field `name` of PretrainArgs with default None, so that "not given" can be told from "given with
    the default value": with --resume, a flag that is not given keeps the run's value (run.json). The
    metadata (help, checks) are PretrainArgs'; the help says the default."""
    base = PretrainArgs.__dataclass_fields__[name]
    text = base.metadata.get("help", "")
    return field(default=None, metadata={**base.metadata,
                                         "help": f"{text} (default: {base.default}; with --resume: the run's)"})


@dataclass
class PretrainCommandArgs(PretrainArgs):
    """PretrainArgs, --resume and --overwrite, which say how to start the run and are not among its
    settings (run.json).

    The settings --resume may change (pretrain.RESUME_CHANGES) default to None here: None is "not given".
    """
    steps: int | None = _given_or_none("steps")
    lr: float | None = _given_or_none("lr")
    checkpoint_every: int | None = _given_or_none("checkpoint_every")
    keep: int | None = _given_or_none("keep")
    resume: bool = field(default=False, metadata={
        "help": "continue the run in --out from its newest checkpoint, with the settings in its run.json; "
                "--steps, --lr, --checkpoint-every and --keep may change them (see docs/pretraining.md, "
                "section 10); any other flag given with another value than the run's is an error"})
    overwrite: bool = field(default=False, metadata={
        "help": "replace the earlier pretraining run in --out (it says what it deletes); without it, such a "
                "folder is refused"})
    precision: str | None = precision_field()
    distributed: bool = distributed_field()
    collective_timeout: float = timeout_field()


def pretrain_settings(args: PretrainCommandArgs) -> PretrainArgs:
    """The settings the run gets: the flags for a new run (a flag not given: its default); with --resume,
    the run's run.json with the flags that were given laid over it.

    Given means: a flag of RESUME_CHANGES that was typed (not None), or any other flag whose value is not
    its default; an other flag typed with its default value cannot be told from one not typed, so it
    keeps the run's value (the line "settings from its run.json" shows which).
    """
    defaults = PretrainArgs()
    typed = {f.name: getattr(args, f.name) for f in dataclasses.fields(PretrainArgs)}
    given = {k: v for k, v in typed.items()
             if (v is not None if k in RESUME_CHANGES else v != getattr(defaults, k)) and k not in ("progress", "out")}
    if not args.resume:
        return dataclasses.replace(defaults, **given, out=args.out, progress=args.progress)
    check_out_folder(args.out, PRETRAINING_RUN, resume=True, overwrite=args.overwrite)   # a pretraining run, free
    saved = load_run_args(args.out, args.progress)
    return dataclasses.replace(saved, **given, out=args.out)          # out: the folder as it is named now


def run_pretrain(args: PretrainCommandArgs) -> int:
    """Pretrain, then show the model filling in blanks in held-out sentences."""
    if args.precision == "fp16":
        raise PrecisionError("minibert pretrain has no loss scaling yet: --precision fp16 is finetune's "
                             "(pretraining_step takes a scaler, the command does not make one); use fp32 or tf32")
    group = process_group(args.distributed, args.collective_timeout)
    with abort_on_error(group):
        settings = pretrain_settings(args)
        group.barrier()                      # every rank has checked the folder before rank 0 claims it
        with using_precision(args.precision):
            last = pretrain.run(settings, resume=args.resume, overwrite=args.overwrite, group=group)
    if not group.is_main:                    # rank 0 draws the curves and shows the examples
        return 0
    _fill_mask_examples(settings, resume=args.resume)
    if last:
        print("\n".join(pretrain.verdict(last)))
    return 0


def _fill_mask_examples(args: PretrainArgs, resume: bool) -> None:
    """The end of `minibert pretrain`: draw the curves; mask one word in a few held-out sentences, show the guesses."""
    run_dir = Path(args.out)
    if resume:
        args = load_run_args(run_dir, args.progress)
    print(f"curves: {plot_run(run_dir)[0]}")
    _, eval_docs = load_documents(args)
    model, tokenizer = load_pretraining_model(run_dir)
    baselines = run_dir / "baselines.json"
    baseline = read_json(baselines)["unigram_top"] if baselines.is_file() else None
    for line in fill_mask_examples(model, tokenizer, eval_docs, args.seed, baseline=baseline):
        print(line)


@dataclass(kw_only=True)
class PlotArgs:
    run_dir: str = field(metadata={"positional": True, "help": "a pretrain or finetune run folder"})


def run_plot(args: PlotArgs) -> int:
    """Redraw the figures of a run folder (curves.png; confusion.png for classification); print their paths."""
    run_json = Path(args.run_dir) / "run.json"
    if run_json.is_file():
        read_json(run_json)                    # damaged: an error naming it, before any figure is drawn
    for path in plot_run(args.run_dir):
        print(path)
    return 0


@dataclass(kw_only=True)
class FillMaskArgs:
    model: str = field(metadata={"help": "run folder (config.json, vocab.txt, model.safetensors)"})
    top_k: int = field(default=5, metadata={"check": checks.positive, "help": "guesses shown per [MASK]"})
    text: list[str] = field(metadata={"positional": True, "nargs": "+", "help": "texts with [MASK] tokens"})


def run_fill_mask(args: FillMaskArgs) -> int:
    """Each text, then the top-k guesses for each of its [MASK] tokens."""
    model, tok = load_pretraining_model(args.model)
    if args.top_k > len(tok):
        print(f"note: --top-k {args.top_k} is more than the {len(tok)} tokens of the vocabulary: showing {len(tok)}",
              file=sys.stderr)
    for text in args.text:
        print(text)
        for k, guesses in enumerate(fill_mask(model, tok, text, args.top_k)):
            print(f"  [MASK] #{k + 1}: " + ", ".join(f"{t} ({p:.3f})" for t, p in guesses))
    return 0


COMMANDS = (
    Command("pretrain", "pretrain BERT (masked LM + next sentence)", PretrainCommandArgs, run_pretrain,
            description=pretrain.__doc__),
    Command("plot", "redraw the curves of a pretrain or finetune run folder", PlotArgs, run_plot),
    Command("fill-mask", "predict the [MASK] tokens of a text with a pretrained run", FillMaskArgs, run_fill_mask),
)
