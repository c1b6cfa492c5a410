"""Fine-tuning tasks: read the data, encode it for BERT, batch it, score the predictions.

    from minibert.data.tasks import TASKS, glue, ner, squad, metrics
    spec = TASKS["rte"]                       # columns, label names, label2id / id2label, files
    examples = glue.read_glue(spec.path("../shared/data", "dev"), spec)
    encoded = glue.encode_glue(examples, tokenizer, max_seq_length=128)
    batch = encoded.batch(range(16))          # dict of int64 arrays (B, T) and labels (B,)

Modules, in reading order:
    spec.py      TaskSpec: a task's columns, labels (sorted; ids = positions), files, metric
    files.py     reading lines robustly (BOM, CRLF, no splitlines traps), errors with file:line
    batching.py  features -> padded NumPy batches (pad_batch), the Encoded container
    glue.py      SST-2, RTE, QNLI: TSV readers, [CLS] A [SEP] (B [SEP]) encoding
    ner.py       WNUT-17 CoNLL reader, labels on first word pieces, predictions back to words
    squad.py     SQuAD v1.1 JSON (XQuAD), context windows, answer positions, span search
    metrics.py   accuracy, confusion matrix, entity-level P/R/F1 (seqeval), SQuAD EM/F1

docs/tasks.md describes the formats, the traps in the real files, and every
metric, with worked examples. The model heads and the training loop live elsewhere.
"""
from minibert.data.tasks import glue, metrics, ner, squad
from minibert.data.tasks.batching import IGNORE_INDEX, Encoded, pad_batch
from minibert.data.tasks.files import DataFormatError, EmptyFileError
from minibert.data.tasks.glue import GLUE_TASKS
from minibert.data.tasks.ner import WNUT17
from minibert.data.tasks.spec import TaskSpec
from minibert.data.tasks.squad import XQUAD

TASKS = {**GLUE_TASKS, "wnut17": WNUT17, "xquad": XQUAD}

__all__ = ["DataFormatError", "EmptyFileError", "Encoded", "GLUE_TASKS", "IGNORE_INDEX", "TASKS",
           "TaskSpec", "WNUT17", "XQUAD", "glue", "metrics", "ner", "pad_batch", "squad"]
