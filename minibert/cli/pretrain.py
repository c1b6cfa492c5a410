"""`minibert pretrain`, `minibert plot`, `minibert fill-mask`."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from minibert.apps.fill_mask import fill_mask, fill_mask_examples, load_pretraining_model
from minibert.model.config import PRESETS, ConfigError
from minibert.model.io import CheckpointError, read_json
from minibert.train import pretrain as _pretrain
from minibert.train.pretrain import PretrainArgs, PretrainError, load_documents, run
from minibert.train.step import NonFiniteLossError
from minibert.viz import plot_run

PRETRAIN_HELP = _pretrain.__doc__


def _cmd_pretrain(ns) -> int:
    fields = {f.name for f in dataclasses.fields(PretrainArgs)}
    args = PretrainArgs(**{k: v for k, v in vars(ns).items() if k in fields and v is not None})
    try:
        run(args, resume=ns.resume)
        _fill_mask_examples(args, resume=ns.resume)
    except (PretrainError, ConfigError, CheckpointError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    return 0


def _fill_mask_examples(args, resume: bool) -> None:
    """The end of `minibert pretrain`: draw the curves; mask one word in a few held-out sentences, show the guesses."""
    run_dir = Path(args.out)
    if resume:
        args = PretrainArgs(**{**read_json(run_dir / "run.json"), "progress": args.progress})
    print(f"curves: {plot_run(run_dir)[0]}")
    _, eval_docs = load_documents(args)
    model, tokenizer = load_pretraining_model(run_dir)
    for line in fill_mask_examples(model, tokenizer, eval_docs, args.seed):
        print(line)


def _cmd_plot(ns) -> int:
    try:
        for path in plot_run(ns.run_dir):
            print(path)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _cmd_fill_mask(ns) -> int:
    model, tok = load_pretraining_model(ns.model)
    for text in ns.text:
        print(text)
        for k, guesses in enumerate(fill_mask(model, tok, text, ns.top_k)):
            print(f"  [MASK] #{k + 1}: " + ", ".join(f"{t} ({p:.3f})" for t, p in guesses))
    return 0


def register(subparsers):
    d = PretrainArgs()
    p = subparsers.add_parser("pretrain", help="pretrain BERT (masked LM + next sentence)",
                              description=PRETRAIN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", help="text file, WikiText raw file, or folder of Gutenberg books "
                                    "(default: the Python standard library's docstrings)")
    p.add_argument("--eval-corpus", help="held-out text (default: held-out documents of the corpus)")
    p.add_argument("--config", default=d.config, help=f"preset ({', '.join(PRESETS)}) or config.json")
    p.add_argument("--vocab", help="folder with vocab.txt (default: learn a vocabulary on the corpus)")
    p.add_argument("--vocab-size", type=int, default=d.vocab_size, help="size of the learned vocabulary")
    p.add_argument("--vocab-score", choices=["frequency", "likelihood"], default=d.vocab_score,
                   help="merge rule of the learned vocabulary: the most frequent pair (default; frequent words "
                        "become whole tokens) or WordPiece's likelihood score")
    for name, typ, help_ in (("steps", int, "optimizer steps"), ("batch-size", int, "sequences per step"),
                             ("seq-len", int, "max_seq_length of the instances"),
                             ("max-predictions", int, "max masked positions per sequence"),
                             ("dupe-factor", int, "masked copies of the corpus"),
                             ("short-seq-prob", float, "share of instances with a shorter target length"),
                             ("heldout-fraction", float, "share of documents held out for evaluation"),
                             ("lr", float, "peak learning rate"), ("warmup", float, "warm-up fraction of the steps"),
                             ("weight-decay", float, "AdamW decoupled weight decay"),
                             ("max-grad-norm", float, "clip the global gradient norm (0: off)"),
                             ("accumulate", int, "micro-batches per step (gradient accumulation)"),
                             ("eval-every", int, "steps between held-out evaluations"),
                             ("eval-batches", int, "batches per evaluation"),
                             ("eval-dupe-factor", int, "masked versions of each held-out instance"),
                             ("checkpoint-every", int, "steps between checkpoints"),
                             ("keep", int, "checkpoints kept"), ("seed", int, "seed of data, init and dropout")):
        p.add_argument(f"--{name}", type=typ, default=getattr(d, name.replace("-", "_")), help=help_)
    p.add_argument("--optimizer", choices=["torch", "google"], default=d.optimizer,
                   help="AdamW with bias correction (torch) or Google's BERT variant")
    p.add_argument("--whole-word-mask", action="store_true", help="mask whole words")
    p.add_argument("--dtype", choices=["float32", "float64"], default=d.dtype)
    p.add_argument("--out", default=d.out, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=_cmd_pretrain)

    p = subparsers.add_parser("plot", help="redraw the curves of a pretrain or finetune run folder")
    p.add_argument("run_dir")
    p.set_defaults(func=_cmd_plot)

    p = subparsers.add_parser("fill-mask", help="predict the [MASK] tokens of a text with a pretrained run")
    p.add_argument("--model", required=True, help="run folder (config.json, vocab.txt, model.safetensors)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("text", nargs="+")
    p.set_defaults(func=_cmd_fill_mask)
