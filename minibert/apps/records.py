"""Records with text fields: embed the rows of a CSV, cluster them, learn their labels, check them.

    python -m minibert records --csv examples/xquad_records.csv --text-columns question,answer \\
        --label-column article --plot runs/records/records.png      # report: runs/records/report.csv

Each row's text columns are joined into one text and embedded (mean-pooled,
unit-length vectors of the bundled all-MiniLM-L6-v2 unless --model says
otherwise). Then:

(a) clusters: k-means (k-means++ starts) on the vectors; with a label column,
    the agreement of clusters and labels (adjusted Rand index, best-match accuracy);
(b) a classifier head, when a label column is given: softmax regression on the
    frozen vectors (logits = v W^T + b), trained with minibert's own AdamW and
    cross-entropy; accuracy is measured held out by k-fold cross-validation,
    so every labelled row gets a prediction from a head that never saw it;
(c) row checks, written as flags (';'-separated) in the report:
      empty:COL         a text column is empty or only spaces
      placeholder:COL   it holds a placeholder such as "N/A", "none", "?", "-", "TBD"
      missing_label     the label column is empty or a placeholder
      malformed         the row has more or fewer fields than the header
      duplicate         the same text (case and spacing ignored) on another row
      conflicting_labels  ... and that row has another label
      far_from_clusters the row's vector is far from every cluster centre: its
                        distance to the nearest centre is above the upper Tukey fence
                        (Q3 + 1.5 IQR of all rows' nearest-centre distances)
      label_disagrees   the held-out head gives the row's own label a probability
                        below 5% and predicts another label (a possible labelling error)

The report CSV holds the input columns, then row (1-based line of data), text,
cluster, cluster_distance, predicted, p_given_label and flags.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import re
from pathlib import Path

import numpy

from minibert.apps.embed import embed
from minibert.apps.vectors import adjusted_rand_index, best_match_accuracy, kmeans
from minibert.checks import decode_utf8
from minibert.errors import InputError
from minibert.files import atomic_open
from minibert.ops.linear import linear_backward, linear_forward
from minibert.ops.losses import cross_entropy_backward, cross_entropy_forward
from minibert.train.optim import AdamW

PLACEHOLDERS = {"n/a", "na", "n.a.", "none", "null", "nil", "nan", "-", "--", "---", "?", "??", "???",
                "tbd", "tba", "todo", "unknown", "missing", "xxx", "...", "…", "empty", "#n/a", "undefined"}
FAR_FENCE_IQR = 1.5                 # Tukey's outer-ish fence: Q3 + 1.5 IQR
LABEL_DISAGREE_P = 0.05


class RecordsError(InputError):
    """A CSV or an option that `records` cannot work with (the message says what to change)."""


# -- reading -------------------------------------------------------------------------------

@dataclasses.dataclass
class Table:
    columns: list
    rows: list                       # dicts column -> str ("" for a missing field)
    malformed: list                  # bool per row: wrong number of fields
    path: str = ""


def read_csv(path, delimiter=None) -> Table:
    """Read a CSV with a header row (UTF-8, an optional BOM; quotes as in RFC 4180). Bytes that are not
    UTF-8 are an error naming the line (checks.NotUTF8Error), not characters replaced without a word.

    The delimiter defaults to a tab for .tsv/.tab files and a comma otherwise.
    A row with too few fields gets "" for the missing ones; extra fields are
    dropped; both are marked malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise RecordsError(f"no CSV file at {path}")
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    text = decode_utf8(path.read_bytes(), path).removeprefix("\ufeff")     # a Latin-1 CSV: an error naming the line
    with io.StringIO(text, newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise RecordsError(f"{path} is empty: it needs a header row and at least one row") from None
        except csv.Error as err:
            raise RecordsError(f"{path} is not a readable CSV: {err}") from None
        header = [h.strip() for h in header]
        if not any(header):
            raise RecordsError(f"{path}: the first line should be a header with the column names")
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise RecordsError(f"{path}: the header names column(s) {dupes} more than once")
        rows, malformed = [], []
        try:
            for fields in reader:
                if not fields or (len(fields) == 1 and not fields[0].strip()):
                    continue                                    # blank line
                malformed.append(len(fields) != len(header))
                fields = (fields + [""] * len(header))[:len(header)]
                rows.append(dict(zip(header, fields)))
        except csv.Error as err:
            raise RecordsError(f"{path}, line {reader.line_num}: {err}") from None
    if not rows:
        raise RecordsError(f"{path} has a header but no rows")
    return Table(header, rows, malformed, str(path))


def parse_columns(spec: str, table: Table, what="text column") -> list:
    names = [c.strip() for c in spec.split(",") if c.strip()] if isinstance(spec, str) else list(spec)
    if not names:
        raise RecordsError(f"no {what}s given: name one or more of {table.columns}")
    unknown = [c for c in names if c not in table.columns]
    if unknown:
        raise RecordsError(f"{what}(s) {unknown} not in the CSV's header; it has: {', '.join(table.columns)}")
    return names


def is_placeholder(value: str) -> bool:
    return value.strip().lower() in PLACEHOLDERS


def row_text(row: dict, columns) -> str:
    """The row's text columns joined: empty and placeholder fields left out, each field kept
    as written, a ". " between fields unless the previous one already ends in punctuation."""
    parts = [row[c].strip() for c in columns if row[c].strip() and not is_placeholder(row[c])]
    text = ""
    for part in parts:
        if text:
            text += " " if text[-1] in ".!?;:" else ". "
        text += part
    return text


def _normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


# -- the classifier head -------------------------------------------------------------------

class SoftmaxHead:
    """logits = v W^T + b on frozen sentence vectors, trained by cross-entropy with minibert's AdamW.

    The forward and backward are minibert's own ops (linear, cross_entropy), as in
    the model; the parameters are a flat dict with Hugging Face's classifier names.
    """

    def __init__(self, hidden_size: int, classes: list, seed: int = 0):
        self.classes = list(classes)
        rng = numpy.random.default_rng(seed)
        self.params = {"classifier.weight": rng.normal(0, 0.02, (len(self.classes), hidden_size)),  # (C, H)
                       "classifier.bias": numpy.zeros(len(self.classes))}                          # (C,)

    def logits(self, x):
        return linear_forward(x, self.params["classifier.weight"], self.params["classifier.bias"])

    def fit(self, x, y, epochs=100, batch_size=64, lr=1e-2, weight_decay=0.01, seed=0) -> list:
        """Mini-batch AdamW on (N, H) vectors and (N,) class indices; returns the loss per epoch."""

        x = numpy.asarray(x, dtype=numpy.float64)
        y = numpy.asarray(y, dtype=numpy.int64)
        opt = AdamW(self.params, lr=lr, weight_decay=weight_decay)
        grads = {k: numpy.zeros_like(v) for k, v in self.params.items()}
        rng = numpy.random.default_rng(seed)
        history = []
        for _ in range(epochs):
            order = rng.permutation(len(x))
            total = 0.0
            for start in range(0, len(x), batch_size):
                batch = order[start:start + batch_size]
                logits, c_lin = self.logits(x[batch])                        # (b, C)
                loss, c_ce = cross_entropy_forward(logits, y[batch])
                dlogits = cross_entropy_backward(1.0, c_ce)                   # (b, C)
                _, dw, db = linear_backward(dlogits, c_lin, need_dx=False)
                grads["classifier.weight"][...] = dw
                grads["classifier.bias"][...] = db
                opt.step(grads)
                total += float(loss) * len(batch)
            history.append(total / len(x))
        return history

    def predict_proba(self, x) -> numpy.ndarray:
        logits, _ = self.logits(numpy.asarray(x, dtype=numpy.float64))
        logits -= logits.max(axis=1, keepdims=True)
        p = numpy.exp(logits)
        return p / p.sum(axis=1, keepdims=True)                              # (N, C)


def stratified_folds(y, k, seed=0) -> numpy.ndarray:
    """A fold number in [0, k) for every row; each class is dealt round-robin over the folds
    after a seeded shuffle, so every fold sees every class in about the same share."""
    y = numpy.asarray(y)
    rng = numpy.random.default_rng(seed)
    fold = numpy.empty(len(y), dtype=numpy.int64)
    offset = 0
    for cls in numpy.unique(y):
        idx = rng.permutation(numpy.flatnonzero(y == cls))
        fold[idx] = (numpy.arange(len(idx)) + offset) % k
        offset += len(idx)
    return fold


def cross_validate(x, labels, folds=5, seed=0, **fit_args) -> dict:
    """Out-of-fold predictions: the head is trained k times, each time on k-1 folds, and
    predicts the fold it did not see. Returns {"classes", "proba" (N, C), "predicted" (N,),
    "accuracy", "majority" (the accuracy of always answering the most common label)}."""
    labels = numpy.asarray(labels)
    classes = sorted(set(labels.tolist()))
    y = numpy.array([classes.index(v) for v in labels])
    if len(classes) < 2:
        raise RecordsError(f"the label column has only one value ({classes}): nothing to classify")
    k = min(folds, len(y))
    if k < 2:
        raise RecordsError("cross-validation needs at least 2 labelled rows")
    fold = stratified_folds(y, k, seed)
    proba = numpy.zeros((len(y), len(classes)))
    for f in range(k):
        train, test = fold != f, fold == f
        if not test.any():
            continue
        head = SoftmaxHead(x.shape[1], classes, seed=seed)
        head.fit(x[train], y[train], seed=seed, **fit_args)
        proba[test] = head.predict_proba(x[test])
    predicted = proba.argmax(axis=1)
    counts = numpy.bincount(y, minlength=len(classes))
    return {"classes": classes, "proba": proba, "predicted": predicted, "y": y,
            "accuracy": float((predicted == y).mean()), "majority": float(counts.max() / len(y)), "folds": k}


# -- the whole analysis --------------------------------------------------------------------

def far_from_clusters(distances, iqr=FAR_FENCE_IQR):
    """(flags (N,), nearest-centre distance (N,), fence) for an (N, k) matrix of distances to the
    k-means centres: a row is far from every cluster when even its nearest centre lies beyond
    Tukey's upper fence, Q3 + iqr * (Q3 - Q1) of all rows' nearest-centre distances. The rule
    adapts to how spread the data are and flags nothing when no row stands out."""
    nearest = numpy.asarray(distances).min(axis=1)
    q1, q3 = numpy.percentile(nearest, [25, 75])
    fence = float(q3 + iqr * (q3 - q1))
    return nearest > fence, nearest, fence


def analyse(table: Table, text_columns, label_column=None, k=None, model=None, folds=5, seed=0,
            batch_size=32, epochs=100, progress=None) -> dict:
    """Embed, cluster, classify and check the rows of `table`. Returns a dict with the report
    rows ("report"), the vectors, the k-means result and, with labels, the cross-validation."""

    text_columns = parse_columns(text_columns, table)
    if label_column is not None:
        parse_columns([label_column], table, "label column")
        if label_column in text_columns:
            raise RecordsError(f"{label_column!r} is both a text column and the label column: the head "
                               f"would read the answer")
    texts = [row_text(row, text_columns) for row in table.rows]
    has_text = numpy.array([bool(t) for t in texts])
    if not has_text.any():
        raise RecordsError(f"every row is empty in the text columns {text_columns}")
    flags = [[] for _ in table.rows]
    for i, row in enumerate(table.rows):
        if table.malformed[i]:
            flags[i].append("malformed")
        for c in text_columns:
            if not row[c].strip():
                flags[i].append(f"empty:{c}")
            elif is_placeholder(row[c]):
                flags[i].append(f"placeholder:{c}")
    labels = None
    if label_column is not None:
        labels = [row[label_column].strip() for row in table.rows]
        for i, value in enumerate(labels):
            if not value or is_placeholder(value):
                flags[i].append("missing_label")
                labels[i] = None
    # duplicates, and duplicates whose labels differ
    seen = {}
    for i, t in enumerate(texts):
        if t:
            seen.setdefault(_normalised(t), []).append(i)
    for rows in seen.values():
        if len(rows) > 1:
            distinct = {labels[i] for i in rows if labels and labels[i] is not None}
            for i in rows:
                flags[i].append("duplicate")
                if len(distinct) > 1:
                    flags[i].append("conflicting_labels")

    rows_with_text = numpy.flatnonzero(has_text)
    vectors = embed([texts[i] for i in rows_with_text], model, batch_size=batch_size, progress=progress)
    n_labels = len({labels[i] for i in rows_with_text if labels[i] is not None}) if labels else 0
    if k is None:
        k = n_labels if n_labels >= 2 else 5
    k = min(k, len(rows_with_text))
    clusters = kmeans(vectors, k, seed=seed)
    far, nearest, fence = far_from_clusters(clusters["distances"])
    for j, i in enumerate(rows_with_text):
        if far[j]:
            flags[i].append("far_from_clusters")

    result = {"texts": texts, "vectors": vectors, "rows_with_text": rows_with_text, "kmeans": clusters,
              "k": k, "fence": float(fence), "text_columns": text_columns, "label_column": label_column}
    cv = None
    if labels is not None:
        labelled = [j for j, i in enumerate(rows_with_text) if labels[i] is not None]
        if len({labels[rows_with_text[j]] for j in labelled}) >= 2:
            y_text = [labels[rows_with_text[j]] for j in labelled]
            cv = cross_validate(vectors[labelled], y_text, folds=folds, seed=seed, epochs=epochs)
            cv["rows"] = rows_with_text[labelled]
            for r, (i, p, y) in enumerate(zip(cv["rows"], cv["proba"], cv["y"])):
                if p[y] < LABEL_DISAGREE_P and p.argmax() != y:
                    flags[i].append("label_disagrees")
            truth = [labels[rows_with_text[j]] for j in labelled]
            result["ari"] = adjusted_rand_index(truth, clusters["labels"][labelled])
            if min(k, len(set(truth))) <= 8:
                result["best_match_accuracy"] = best_match_accuracy(truth, clusters["labels"][labelled])
    result["cv"] = cv

    report = []
    position = {int(i): j for j, i in enumerate(rows_with_text)}
    cv_index = {int(i): r for r, i in enumerate(cv["rows"])} if cv else {}
    for i, row in enumerate(table.rows):
        out = dict(row)
        out.update(row=i + 1, text=texts[i], cluster="", cluster_distance="", predicted="", p_given_label="")
        j = position.get(i)
        if j is not None:
            out["cluster"] = int(clusters["labels"][j])
            out["cluster_distance"] = f"{nearest[j]:.4f}"
        r = cv_index.get(i)
        if r is not None:
            out["predicted"] = cv["classes"][cv["predicted"][r]]
            out["p_given_label"] = f"{cv['proba'][r, cv['y'][r]]:.4f}"
        out["flags"] = ";".join(flags[i])
        report.append(out)
    result["report"] = report
    result["flags"] = flags
    return result


def write_report(result: dict, table: Table, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = ["row", "text", "cluster", "cluster_distance", "predicted", "p_given_label", "flags"]
    columns = table.columns + [c for c in extra if c not in table.columns]
    with atomic_open(path, "w", newline="") as f:          # atomic: the old report stays until this one is whole
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(result["report"])
    return path


def summary(result: dict) -> str:
    lines = []
    n = len(result["report"])
    sizes = numpy.bincount(result["kmeans"]["labels"], minlength=result["k"])
    lines.append(f"{n} rows, {len(result['rows_with_text'])} with text; embedded as "
                 f"{result['vectors'].shape[1]}-d vectors")
    lines.append(f"k-means, k={result['k']}: cluster sizes {sizes.tolist()}")
    if "ari" in result:
        line = f"clusters vs labels: adjusted Rand index {result['ari']:.3f}"
        if "best_match_accuracy" in result:
            line += f", best-match accuracy {result['best_match_accuracy']:.3f}"
        lines.append(line)
    cv = result["cv"]
    if cv:
        lines.append(f"classifier head (softmax regression, AdamW), {cv['folds']}-fold held-out accuracy "
                     f"{cv['accuracy']:.3f} on {len(cv['y'])} labelled rows, {len(cv['classes'])} labels "
                     f"(majority-class baseline {cv['majority']:.3f})")
    counts = {}
    for f in result["flags"]:
        for name in {x.split(":")[0] for x in f}:
            counts[name] = counts.get(name, 0) + 1
    distance = numpy.array([float(r["cluster_distance"]) if r["cluster_distance"] != "" else -1.0
                            for r in result["report"]])
    lines.append(f"far from every cluster means a nearest-centre distance above {result['fence']:.3f}; "
                 f"the farthest rows:")
    for i in numpy.argsort(-distance, kind="stable")[:3]:
        lines.append(f"    {distance[i]:.3f}  row {i + 1}: {result['texts'][i][:70]}")
    flagged = sum(1 for f in result["flags"] if f)
    lines.append(f"flagged rows: {flagged}" + (" (" + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ")"
                                               if counts else ""))
    return "\n".join(lines)
