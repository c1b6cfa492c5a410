"""What the fine-tuning loop needs to know about each task: its reader, head, loss weights, metric.

    task = get_task("sst2", max_seq_len=128)                      # a task's settings are fixed when it is made
    data = task.load("dev.tsv", tokenizer)                        # Data: examples + encoded features
    out = task.forward(model, data.encoded.batch(range(32)))      # the head's forward, with labels
    task.loss_count(batch)    # what the batch's loss averages over: labelled sequences / tokens / questions
    task.metrics(data, outputs)                                   # accuracy, entity F1, or EM/F1

A task is also the *objective* of the training step (train/step.py): one loss
term, `loss`, averaged over `loss_count(batch)`; `correct` counts right answers.
One class per kind of head (sequence, token, span); the readers, encoders and
metrics themselves are in `minibert.data.tasks`.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy

from minibert.backend import to_host
from minibert.data.tasks.glue import GLUE_TASKS, SequenceExample, encode_glue, read_glue
from minibert.data.tasks.metrics import accuracy, confusion_matrix, ner_scores, squad_scores
from minibert.data.tasks.ner import WNUT17, TokenExample, encode_ner, read_conll, word_predictions
from minibert.data.tasks.squad import QAExample, encode_squad, postprocess_qa_predictions, read_squad, references
from minibert.errors import InputError
from minibert.model.heads import (BertForQuestionAnswering, BertForSequenceClassification,
                                  BertForTokenClassification)
from minibert.ops.losses import IGNORE_INDEX
from minibert.ops.softmax import softmax_forward

__all__ = ["Data", "SequenceTask", "TokenTask", "SpanTask", "get_task", "TASK_NAMES"]


@dataclass
class Data:
    """A split of a task: the examples as read, their encoded features, and what encoding counted."""
    examples: list
    encoded: object                      # minibert.data.tasks.batching.Encoded
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
    loss_keys = ("loss",)                # as an objective of train_step: one loss term ...
    correct_keys = ("correct",)          # ... and its count of right answers

    def __init__(self, max_seq_len: int | None = None):
        self.max_seq_len = max_seq_len or self.default_max_seq_len      # the length trained (and predicted) with

    def inputs(self, b):
        return b["input_ids"], b["token_type_ids"], b["attention_mask"]

    def forward(self, model, b):
        """The head's forward with the batch's labels (SpanTask passes start/end positions instead)."""
        return model.forward(*self.inputs(b), labels=b["labels"])

    def infer(self, model, b):
        """The head's forward without labels, in inference mode (dropout off, no caches): predictions."""
        with model.inference():
            return model.forward(*self.inputs(b))

    def loss_count(self, b) -> int:
        """What the batch's loss averages over: its labelled sequences, or labelled word pieces."""
        return int((to_host(b["labels"]) != IGNORE_INDEX).sum())

    def counts(self, b) -> tuple[int]:
        """The denominator of the loss term in this micro-batch (train_step's objective interface)."""
        return (self.loss_count(b),)

    def backward(self, model, weights) -> None:
        """Add d(weight * loss) into model.grads."""
        model.backward(weights[0])

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


class _LabelledTask(_Task):
    """A task whose examples carry labels from a spec (minibert.data.tasks.TaskSpec): GLUE, NER."""
    head = None                          # the model class of the task

    def __init__(self, spec, max_seq_len: int | None = None):
        super().__init__(max_seq_len)
        self.spec, self.name = spec, spec.name
        self.label_names = list(spec.label_names)

    def load(self, path, tokenizer, max_seq_len=None, limit=None, split="train") -> Data:
        """Read a file of the task (the first `limit` examples) and encode it (`max_seq_len`: the task's)."""
        examples = self.read(path)
        if limit is not None:
            examples = examples[:limit]
        return Data(examples, self.encode(examples, tokenizer, max_seq_len or self.max_seq_len))


class SequenceTask(_LabelledTask):
    """GLUE: one label per sentence or sentence pair, from the pooled [CLS] (accuracy)."""
    kind, metric, head = "sequence", "accuracy", BertForSequenceClassification

    def read(self, path):
        return read_glue(path, self.spec)

    def encode(self, examples, tokenizer, max_seq_len):
        return encode_glue(examples, tokenizer, max_seq_len)

    def host_outputs(self, out, b):
        return {"predictions": to_host(out["logits"]).argmax(axis=1), "labels": to_host(b["labels"]),
                "probabilities": _softmax(to_host(out["logits"]))}

    def metrics(self, data, outputs) -> dict:
        pred = numpy.concatenate([o["predictions"] for o in outputs])
        gold = numpy.concatenate([o["labels"] for o in outputs])
        return {"accuracy": accuracy(pred, gold),
                "_confusion": confusion_matrix(gold, pred, len(self.label_names)).tolist()}

    def describe_metrics(self, r) -> str:
        return f"accuracy {r['accuracy']:.4f}"

    def predict(self, model, tokenizer, inputs, top_k=3) -> list[str]:
        """One line per input: the label, then the top_k labels with their probabilities."""
        lines = []
        for text in inputs:
            if len(text) != (2 if self.spec.is_pair else 1):
                wanted = "a pair of texts (use --pair or TAB)" if self.spec.is_pair else "one text"
                raise InputError(f"{self.name} takes {wanted}, got {len(text)}")
            ex = SequenceExample(0, text[0], text[1] if len(text) == 2 else None, 0, 0)
            b = encode_glue([ex], tokenizer, self.max_seq_len).batch([0])
            probs = _softmax(to_host(self.infer(model, b)["logits"]))[0]
            order = numpy.argsort(-probs)[:top_k]
            ranked = ", ".join(f"{model.config.id2label[int(i)]} {probs[i]:.3f}" for i in order)
            lines.append(f"{model.config.id2label[int(order[0])]}\t({ranked})\t{' | '.join(text)}")
        return lines


class TokenTask(_LabelledTask):
    """CoNLL NER (WNUT-17): a label per word, predicted at its first piece (entity-level P/R/F1)."""
    kind, metric, head = "token", "f1", BertForTokenClassification

    def read(self, path):
        return read_conll(path, self.spec)

    def encode(self, examples, tokenizer, max_seq_len):
        return encode_ner(examples, tokenizer, self.spec.label2id, max_seq_len)

    def host_outputs(self, out, b):
        return {"predictions": to_host(out["logits"]).argmax(axis=-1)}          # (B, T)

    def metrics(self, data, outputs) -> dict:
        T = max(o["predictions"].shape[1] for o in outputs)
        rows = numpy.concatenate([numpy.pad(o["predictions"], ((0, 0), (0, T - o["predictions"].shape[1])))
                                  for o in outputs])
        pred = word_predictions(rows, data.encoded, self.spec.id2label)
        scores = ner_scores([list(e.tags) for e in data.examples], pred)
        return {k: scores[k] for k in ("precision", "recall", "f1", "accuracy")}

    def describe_metrics(self, r) -> str:
        return f"entity precision {r['precision']:.4f}, recall {r['recall']:.4f}, F1 {r['f1']:.4f}"

    def predict(self, model, tokenizer, inputs, top_k=3) -> list[str]:
        """One line per input: each word with its predicted tag (words split on whitespace)."""
        lines = []
        for text in inputs:
            words = tuple(re.findall(r"\w+(?:'\w+)?|[^\w\s]", " ".join(text)))     # words and punctuation, as CoNLL
            ex = TokenExample(0, words, ("O",) * len(words), 0)
            enc = encode_ner([ex], tokenizer, self.spec.label2id, self.max_seq_len)
            logits = to_host(self.infer(model, enc.batch([0]))["logits"])
            tags = word_predictions(logits, enc, {int(k): v for k, v in model.config.id2label.items()})[0]
            lines.append(" ".join(w if t == "O" else f"{w}/{t}" for w, t in zip(words, tags)))
        return lines


class SpanTask(_Task):
    """SQuAD v1.1 (XQuAD): the answer is a span of the context; windows over long contexts (EM, F1)."""
    kind, metric = "span", "f1"
    default_max_seq_len = 384
    name = "squad"
    label_names = None
    head = BertForQuestionAnswering

    def __init__(self, max_seq_len: int | None = None, doc_stride=128, max_query_length=64, max_answer_length=30):
        super().__init__(max_seq_len)
        self.doc_stride, self.max_query_length, self.max_answer_length = doc_stride, max_query_length, max_answer_length

    def load(self, path, tokenizer, max_seq_len=None, limit=None, split="train", split_articles=None) -> Data:
        """A SQuAD v1.1 JSON file; with split_articles=N, the first N articles (train) or the rest (dev)."""
        examples = read_squad(path)
        if split_articles is not None:
            examples = [e for e in examples if (e.article < split_articles) == (split == "train")]
        if limit is not None:
            examples = examples[:limit]
        with warnings.catch_warnings(record=True):                  # counted in encoded.counts instead
            warnings.simplefilter("always")
            encoded = encode_squad(examples, tokenizer, training=True, max_seq_length=max_seq_len or self.max_seq_len,
                                   doc_stride=self.doc_stride, max_query_length=self.max_query_length)
        kept = {f["example_index"] for f in encoded.features}
        return Data(examples, encoded, extra={"kept": kept})

    def forward(self, model, b):
        return model.forward(*self.inputs(b), start_positions=b["start_positions"], end_positions=b["end_positions"])

    def loss_count(self, b) -> int:              # the loss is a mean over the windows of the batch
        return len(b["input_ids"])

    def host_outputs(self, out, b):
        return {"start_logits": to_host(out["start_logits"]), "end_logits": to_host(out["end_logits"])}

    def metrics(self, data, outputs) -> dict:
        T = max(o["start_logits"].shape[1] for o in outputs)
        pad = lambda a: numpy.pad(a, ((0, 0), (0, T - a.shape[1])), constant_values=-numpy.inf)  # noqa: E731
        start = numpy.concatenate([pad(o["start_logits"]) for o in outputs])
        end = numpy.concatenate([pad(o["end_logits"]) for o in outputs])
        answers, _ = postprocess_qa_predictions(data.examples, data.encoded, start, end,
                                                max_answer_length=self.max_answer_length)
        scores = squad_scores(answers, references(data.examples))
        return {"exact_match": scores["exact_match"] / 100, "f1": scores["f1"] / 100}

    def describe_metrics(self, r) -> str:
        return f"exact match {100 * r['exact_match']:.2f}, F1 {100 * r['f1']:.2f}"

    def predict(self, model, tokenizer, inputs, top_k=3) -> list[str]:
        """One line per (question, context): the best answers with their probabilities."""
        lines = []
        for question, context in inputs:
            ex = QAExample(id="q", question=question, context=context, answers=(), title="", article=0)
            enc = encode_squad([ex], tokenizer, training=False, max_seq_length=self.max_seq_len,
                               doc_stride=self.doc_stride, max_query_length=self.max_query_length)
            b = enc.batch(range(len(enc)))
            out = self.infer(model, b)
            _, n_best = postprocess_qa_predictions([ex], enc, to_host(out["start_logits"]),
                                                   to_host(out["end_logits"]), max_answer_length=self.max_answer_length)
            best = n_best["q"][:top_k]
            lines.append(" | ".join(f"{c['text']!r} {c['probability']:.3f}" for c in best) or "(no answer found)")
        return lines


def _softmax(logits):
    return softmax_forward(logits)[0]                  # minibert's own (stable) softmax, on host arrays


def get_task(name: str, max_seq_len: int | None = None, doc_stride: int | None = None):
    """The task object for a name: sst2, rte, qnli (sequence), wnut17 (token), squad (span).

    max_seq_len: pieces per sequence (None: the task's default, 128; 384 for squad);
    doc_stride: squad's overlap of consecutive context windows (None: 128).
    """
    if doc_stride is not None and name != "squad":
        raise ValueError(f"doc_stride is a setting of the squad task, not of {name!r}")
    if name in GLUE_TASKS:
        return SequenceTask(GLUE_TASKS[name], max_seq_len)
    if name == "wnut17":
        return TokenTask(WNUT17, max_seq_len)
    if name == "squad":
        return SpanTask(max_seq_len, doc_stride=128 if doc_stride is None else doc_stride)
    raise ValueError(f"unknown task {name!r}; known: {TASK_NAMES}")


TASK_NAMES = ["sst2", "rte", "qnli", "wnut17", "squad"]
