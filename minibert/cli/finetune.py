"""`minibert finetune` and `minibert predict`."""
from __future__ import annotations

import dataclasses
import sys

from minibert.data.tasks.files import DataFormatError
from minibert.model.config import ConfigError
from minibert.model.io import CheckpointError
from minibert.train.finetune import FinetuneArgs, FinetuneError, load_finetuned, run
from minibert.train.finetune_tasks import TASK_NAMES
from minibert.train.step import NonFiniteLossError
from minibert.viz import plot_run


def _cmd_finetune(ns) -> int:

    fields = {f.name for f in dataclasses.fields(FinetuneArgs)}
    args = FinetuneArgs(**{k: v for k, v in vars(ns).items() if k in fields and v is not None})
    try:
        run(args)
        for path in plot_run(args.out):
            print(f"figure: {path}")
    except (FinetuneError, ConfigError, CheckpointError, DataFormatError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    return 0


def _read_inputs(ns, kind) -> list[tuple]:
    """The typed inputs: from the command line, else one per line of stdin (pairs TAB-separated)."""
    if kind == "span":
        if ns.question and ns.context:
            return [(ns.question, ns.context)]
        lines = [line.rstrip("\n") for line in sys.stdin if line.strip()]
        pairs = [tuple(line.split("\t", 1)) for line in lines]
        bad = [n for n, p in enumerate(pairs, 1) if len(p) != 2]
        if bad:
            raise FinetuneError(f"a question-answering model needs --question and --context, or lines "
                                f"'QUESTION<TAB>CONTEXT' on stdin (line {bad[0]} has no TAB)")
        return pairs
    texts = ns.text or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if ns.pair is not None:
        return [(t, ns.pair) for t in texts]
    return [tuple(t.split("\t", 1)) if "\t" in t else (t,) for t in texts]


def _cmd_predict(ns) -> int:

    try:
        task, model, tokenizer = load_finetuned(ns.model)
        inputs = _read_inputs(ns, task.kind)
        if not inputs:
            raise FinetuneError("nothing to predict: give a text (or --question/--context), or lines on stdin")
        for line in task.predict(model, tokenizer, inputs, top_k=ns.top_k):
            print(line)
    except (FinetuneError, CheckpointError, FileNotFoundError, ValueError) as err:     # ConfigError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def register(subparsers):

    d = FinetuneArgs(task="", train="", dev="")
    p = subparsers.add_parser("finetune", help="fine-tune BERT on a classification, NER or QA task",
                              description="Fine-tune a BERT (default: the packaged all-MiniLM-L6-v2) on a task; "
                                          "evaluates on --dev every epoch, keeps the best model in OUT/best, "
                                          "writes OUT/metrics.json, OUT/log.jsonl and OUT/curves.png.")
    p.add_argument("--task", required=True, choices=TASK_NAMES)
    p.add_argument("--train", required=True, help="training file (GLUE TSV, CoNLL, SQuAD JSON)")
    p.add_argument("--dev", required=True, help="dev file, evaluated every epoch")
    p.add_argument("--model", help="folder with config.json, vocab.txt, model.safetensors (default: the "
                                   "packaged all-MiniLM-L6-v2)")
    for name, typ, help_ in (("epochs", int, "passes over the training set"),
                             ("lr", float, "peak learning rate (after 10%% warm-up, linear decay to 0)"),
                             ("batch-size", int, "sequences per optimizer step"),
                             ("max-seq-len", int, "tokens per sequence (default: 128; 384 for squad)"),
                             ("train-limit", int, "use the first N training examples only"),
                             ("dev-limit", int, "evaluate on the first N dev examples only"),
                             ("doc-stride", int, "squad: overlap of consecutive context windows, in pieces"),
                             ("split-articles", int, "squad: train on the first N articles of --train, "
                                                     "evaluate on the others of --dev (XQuAD: 38)"),
                             ("warmup", float, "fraction of the steps spent warming up"),
                             ("weight-decay", float, "AdamW weight decay (not on biases and LayerNorm)"),
                             ("max-grad-norm", float, "clip the gradients' global norm (0: no clipping)"),
                             ("accumulate", int, "micro-batches per step (gradient accumulation)"),
                             ("freeze-layers", int, "freeze the embeddings and the first K encoder layers (no update, no backward)"),
                             ("eval-every", int, "steps between dev evaluations (default: once per epoch)"),
                             ("patience", int, "early stopping: evaluations without a better dev metric"),
                             ("dropout", float, "classifier dropout (default: the config's)"),
                             ("seed", int, "seed of the data order, the new head and dropout")):
        p.add_argument(f"--{name}", type=typ, default=getattr(d, name.replace("-", "_")), help=help_)
    p.add_argument("--freeze-embeddings", action="store_true", help="freeze the embeddings")
    p.add_argument("--fp16", action="store_true", help="float16 matmuls with dynamic loss scaling "
                                                       "(emulated on NumPy, real on CuPy)")
    p.add_argument("--dtype", choices=["float32", "float64"], default=d.dtype)
    p.add_argument("--out", default=d.out, help="run folder")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=_cmd_finetune)

    p = subparsers.add_parser("predict", help="answer typed inputs with a fine-tuned model",
                              description="A label with probabilities (classification), a tag per word (NER), or "
                                          "an answer span (QA). Texts come from the command line or stdin.")
    p.add_argument("--model", required=True, help="a finetune run folder (or its best/ folder)")
    p.add_argument("--pair", help="second text of a sentence pair (RTE, QNLI)")
    p.add_argument("--question", help="question (QA)")
    p.add_argument("--context", help="context paragraph (QA)")
    p.add_argument("--top-k", type=int, default=3, help="labels or answers shown")
    p.add_argument("text", nargs="*", help="texts to classify or tag (default: lines of stdin)")
    p.set_defaults(func=_cmd_predict)
