"""`minibert pretrain`, `minibert plot`, `minibert fill-mask`."""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

from minibert import checks
from minibert.apps.fill_mask import fill_mask, fill_mask_examples, load_pretraining_model
from minibert.cli.command import Command
from minibert.model.io import read_json
from minibert.train import pretrain
from minibert.train.pretrain import PretrainArgs, load_documents
from minibert.viz import plot_run


@dataclass
class PretrainCommandArgs(PretrainArgs):
    """PretrainArgs and --resume, which says how to start the run and is not one of its settings (run.json)."""
    resume: bool = field(default=False, metadata={"help": "continue the run in --out from its newest checkpoint"})


def run_pretrain(args: PretrainCommandArgs) -> int:
    """Pretrain, then show the model filling in blanks in held-out sentences."""
    settings = PretrainArgs(**{f.name: getattr(args, f.name) for f in dataclasses.fields(PretrainArgs)})
    last = pretrain.run(settings, resume=args.resume)
    _fill_mask_examples(settings, resume=args.resume)
    if last:
        print("\n".join(pretrain.verdict(last)))
    return 0


def _fill_mask_examples(args: PretrainArgs, resume: bool) -> None:
    """The end of `minibert pretrain`: draw the curves; mask one word in a few held-out sentences, show the guesses."""
    run_dir = Path(args.out)
    if resume:
        args = PretrainArgs.saved(run_dir, progress=args.progress)
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
