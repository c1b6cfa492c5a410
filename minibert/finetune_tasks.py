"""What the fine-tuning loop needs to know about each task: its reader, head, loss weights, metric.

    task = get_task("sst2")
    data = task.load("dev.tsv", tokenizer, max_seq_len=128)      # Data: examples + encoded features
    out = task.forward(model, data.encoded.batch(range(32)))      # the head's forward, with labels
    task.loss_count(batch)    # what the batch's loss averages over: labelled sequences / tokens / questions
    task.metrics(data, outputs)                                   # accuracy, entity F1, or EM/F1

One class per kind of head (sequence, token, span); the readers, encoders and
metrics themselves are in `minibert.tasks`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy

from minibert.backend import to_host
from minibert.tasks.batching import IGNORE_INDEX

__all__ = ["Data", "SequenceTask", "TokenTask", "SpanTask", "get_task", "TASK_NAMES"]


@dataclass
class Data:
    """A split of a task: the examples as read, their encoded features, and what encoding counted."""
    examples: list
    encoded: object                      # minibert.tasks.batching.Encoded
    extra: dict = field(default_factory=dict)

    def describe(self) -> str:
        counts = dict(self.encoded.counts)
        n_ex, n_feat = len(self.examples), len(self.encoded)
        text = f"{n_ex:,} examples" + (f" ({n_feat:,} features)" if n_feat != n_ex else "")
        notes = [f"{v:,} {k}" for k, v in counts.items() if k not in ("examples", "features") and v]
        return text + (f", {', '.join(notes)}" if notes else "")


class _Task:
    name: str
    kind: str
    metric: str
    default_max_seq_len = 128

    def inputs(self, b):
        return b["input_ids"], b["token_type_ids"], b["attention_mask"]

    def load_model(self, model_dir, args):
        overrides = {}
        if getattr(self, "label_names", None):
            overrides.update(id2label={i: n for i, n in enumerate(self.label_names)},
                             label2id={n: i for i, n in enumerate(self.label_names)})
        if args.dropout is not None:
            overrides["classifier_dropout"] = args.dropout
        with warnings.catch_warnings():          # the loop prints model.loading_info itself, plainly
            warnings.simplefilter("ignore")
            return self.head.from_pretrained(model_dir, dtype=args.dtype, seed=args.seed, **overrides)


class SequenceTask(_Task):
    """GLUE: one label per sentence or sentence pair, from the pooled [CLS] (accuracy)."""
    kind, metric = "sequence", "accuracy"

    def __init__(self, spec):
        from minibert.task_heads import BertForSequenceClassification
        self.spec, self.name, self.head = spec, spec.name, BertForSequenceClassification
        self.label_names = list(spec.label_names)

    def load(self, path, tokenizer, max_seq_len, limit=None, split="train") -> Data:
        from minibert.tasks.glue import encode_glue, read_glue
        examples = read_glue(path, self.spec)
        if limit is not None:
            examples = examples[:limit]
        return Data(examples, encode_glue(examples, tokenizer, max_seq_len))

    def forward(self, model, b):
        return model.forward(*self.inputs(b), labels=b["labels"])

    def loss_count(self, b) -> int:
        return int((numpy.asarray(b["labels"]) != IGNORE_INDEX).sum())

    def host_outputs(self, out, b):
        return {"predictions": to_host(out["logits"]).argmax(axis=1), "labels": numpy.asarray(b["labels"]),
                "probabilities": _softmax(to_host(out["logits"]))}

    def metrics(self, data, outputs) -> dict:
        from minibert.tasks.metrics import accuracy, confusion_matrix
        pred = numpy.concatenate([o["predictions"] for o in outputs])
        gold = numpy.concatenate([o["labels"] for o in outputs])
        return {"accuracy": accuracy(pred, gold),
                "_confusion": confusion_matrix(gold, pred, len(self.label_names)).tolist()}

    def describe_metrics(self, r) -> str:
        return f"accuracy {r['accuracy']:.4f}"

    def predict(self, model, tokenizer, inputs, top_k=3) -> list[str]:
        """One line per input: the label, then the top_k labels with their probabilities."""
        from minibert.tasks.glue import SequenceExample, encode_glue
        lines = []
        for text in inputs:
            if len(text) != (2 if self.spec.is_pair else 1):
                raise ValueError(f"{self.name} takes {'a pair of texts (use --pair or TAB)' if self.spec.is_pair else 'one text'}, "
                                 f"got {len(text)}")
            ex = SequenceExample(0, text[0], text[1] if len(text) == 2 else None, 0, 0)
            b = encode_glue([ex], tokenizer, model.config.max_position_embeddings).batch([0])
            probs = _softmax(to_host(model.forward(*self.inputs(b))["logits"]))[0]
            order = numpy.argsort(-probs)[:top_k]
            ranked = ", ".join(f"{model.config.id2label[int(i)]} {probs[i]:.3f}" for i in order)
            lines.append(f"{model.config.id2label[int(order[0])]}\t({ranked})\t{' | '.join(text)}")
        return lines


def _softmax(logits):
    z = numpy.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def get_task(name: str):
    """The task object for a name: sst2, rte, qnli (sequence), wnut17 (token), squad (span)."""
    from minibert.tasks.glue import GLUE_TASKS
    if name in GLUE_TASKS:
        return SequenceTask(GLUE_TASKS[name])
    raise ValueError(f"unknown task {name!r}; known: {TASK_NAMES}")


TASK_NAMES = ["sst2", "rte", "qnli", "wnut17", "squad"]
