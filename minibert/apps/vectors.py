"""What sentence and word vectors are for: similarity, search, clusters, senses, analogies.

Everything here works on host NumPy arrays of shape (N, H), one row per text,
as `minibert.embed` returns them (unit length by default, so a dot product is
a cosine). Each idea is one function, a command and a plot (minibert/viz/vectors.py):

    cosine_similarity(a, b)         (N, M) matrix of cosines            python -m minibert similarity
    search(query, corpus, k)        the k nearest rows of a corpus       python -m minibert search
    kmeans(x, k)                    k-means with k-means++ starts        python -m minibert cluster
    pca(x, 2)                       a 2-D view of the vectors
    polysemy(word, groups)          one word's vectors in different senses  python -m minibert polysemy
    analogy(positive, negative)     king - man + woman on the input embeddings  python -m minibert analogy

Why cosine: a sentence vector's *direction* carries its meaning; its length
mostly reflects things like how many tokens were averaged. The cosine
compares directions only, and it is what all-MiniLM-L6-v2 was trained to make
large for paraphrases (its training loss scores pairs by cosine).
"""
from __future__ import annotations

import dataclasses
import itertools

import numpy

from minibert import backend
from minibert.apps.embed import load_encoder, word_vectors
from minibert.errors import InputError


def _as_matrix(x, what="vectors") -> numpy.ndarray:
    x = numpy.asarray(x, dtype=numpy.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{what} must be a non-empty (N, H) array, got shape {x.shape}")
    if not numpy.isfinite(x).all():
        raise ValueError(f"{what} hold NaN or infinite values")
    return x


def unit_rows(x) -> numpy.ndarray:
    """Each row scaled to length 1 (zero rows stay zero)."""
    x = _as_matrix(x)
    norms = numpy.linalg.norm(x, axis=1, keepdims=True)
    return x / numpy.maximum(norms, 1e-12)


def cosine_similarity(a, b=None) -> numpy.ndarray:
    """(N, M) matrix of cos(a_i, b_j) = a_i . b_j / (|a_i| |b_j|); b defaults to a."""
    a = unit_rows(a)
    b = a if b is None else unit_rows(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"vectors of different sizes: {a.shape[1]} and {b.shape[1]}")
    return a @ b.T


def search(query, corpus, k=5) -> tuple[numpy.ndarray, numpy.ndarray]:
    """Nearest neighbours by cosine: (indices (Q, k), scores (Q, k)), best first.

    query: (Q, H) or (H,); corpus: (N, H). Exact search (every pair scored):
    for a few hundred thousand rows a matrix product is fast enough.
    """
    scores = cosine_similarity(query, corpus)                           # (Q, N)
    k = min(int(k), scores.shape[1])
    if k < 1:
        raise InputError("k must be at least 1")
    top = numpy.argpartition(-scores, k - 1, axis=1)[:, :k]             # the k best, unordered
    order = numpy.argsort(-numpy.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    top = numpy.take_along_axis(top, order, axis=1)
    return top, numpy.take_along_axis(scores, top, axis=1)


# -- clustering -----------------------------------------------------------------------

def kmeans_plus_plus(x, k, rng) -> numpy.ndarray:
    """k-means++ starts (Arthur & Vassilvitskii 2007): the first centre is a random row; each
    next one is a row drawn with probability proportional to its squared distance to the
    nearest centre chosen so far, so the starts spread over the data."""
    n = x.shape[0]
    centres = [x[rng.integers(n)]]
    d2 = ((x - centres[0]) ** 2).sum(axis=1)                            # (N,) to the nearest centre
    for _ in range(1, k):
        total = d2.sum()
        i = rng.choice(n, p=d2 / total) if total > 0 else rng.integers(n)
        centres.append(x[i])
        d2 = numpy.minimum(d2, ((x - x[i]) ** 2).sum(axis=1))
    return numpy.stack(centres)                                         # (k, H)


def _assign(x, centres):
    """(labels (N,), squared distances (N, k)) with |x - c|^2 = |x|^2 - 2 x.c + |c|^2."""
    d2 = (x * x).sum(axis=1)[:, None] - 2 * x @ centres.T + (centres * centres).sum(axis=1)[None]
    d2 = numpy.maximum(d2, 0.0)
    return d2.argmin(axis=1), d2


def kmeans(x, k, n_init=10, max_iter=300, tol=1e-8, seed=0) -> dict:
    """Lloyd's k-means with k-means++ starts; the best of `n_init` runs (lowest inertia).

    Returns {"labels" (N,), "centres" (k, H), "inertia" (sum of squared distances
    to the own centre), "distances" (N, k) Euclidean distances to every centre,
    "iterations"}. On unit-length vectors, |a - b|^2 = 2 - 2 cos(a, b), so this
    clusters by cosine.
    """
    x = _as_matrix(x)
    n = x.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, numpy.integer)) or not 1 <= k <= n:
        raise InputError(f"k must be an integer in [1, {n}] (the number of rows), got {k!r}")
    rng = numpy.random.default_rng(seed)
    best = None
    for _ in range(n_init):
        centres = kmeans_plus_plus(x, k, rng)
        for it in range(1, max_iter + 1):
            labels, d2 = _assign(x, centres)
            new = centres.copy()
            for j in range(k):
                members = x[labels == j]
                if len(members):
                    new[j] = members.mean(axis=0)
                else:                                  # an empty cluster restarts at the worst-served row
                    far = d2[numpy.arange(n), labels].argmax()
                    new[j] = x[far]
            shift = ((new - centres) ** 2).sum()
            centres = new
            if shift <= tol:
                break
        labels, d2 = _assign(x, centres)
        inertia = float(d2[numpy.arange(n), labels].sum())
        if best is None or inertia < best["inertia"]:
            best = {"labels": labels, "centres": centres, "inertia": inertia,
                    "distances": numpy.sqrt(d2), "iterations": it}
    return best


def pca(x, n_components=2) -> tuple[numpy.ndarray, numpy.ndarray]:
    """(coordinates (N, n), explained variance ratio (n,)): the centred data projected on the
    directions of largest variance (the top right-singular vectors of the centred matrix)."""
    x = _as_matrix(x)
    centred = x - x.mean(axis=0)
    _, s, vt = numpy.linalg.svd(centred, full_matrices=False)
    n = min(n_components, vt.shape[0])
    # sign convention: the largest entry of each direction is positive, so plots do not flip
    signs = numpy.sign(vt[numpy.arange(n), numpy.abs(vt[:n]).argmax(axis=1)])
    signs[signs == 0] = 1
    coords = centred @ (vt[:n] * signs[:, None]).T
    var = s ** 2
    return coords, var[:n] / max(var.sum(), 1e-300)


def contingency(labels_true, labels_pred) -> numpy.ndarray:
    """(classes, clusters) counts of rows with each pair of labels."""
    _, t = numpy.unique(numpy.asarray(labels_true), return_inverse=True)
    _, p = numpy.unique(numpy.asarray(labels_pred), return_inverse=True)
    table = numpy.zeros((t.max() + 1, p.max() + 1), dtype=numpy.int64)
    numpy.add.at(table, (t, p), 1)
    return table


def best_match_accuracy(labels_true, labels_pred) -> float:
    """Share of rows right when each cluster is named after one class, one-to-one, in the best
    way (exhaustive over the matchings when the smaller side has at most 8 labels)."""
    table = contingency(labels_true, labels_pred)
    if min(table.shape) > 8:
        raise ValueError("best_match_accuracy tries every matching; use at most 8 classes or clusters")
    if table.shape[0] < table.shape[1]:
        table = table.T
    rows, cols = table.shape                    # rows >= cols: match each column to a distinct row
    best = max(sum(table[r, c] for c, r in enumerate(perm)) for perm in itertools.permutations(range(rows), cols))
    return best / table.sum()


def adjusted_rand_index(labels_true, labels_pred) -> float:
    """Agreement of two partitions, corrected for chance (Hubert & Arabie 1985): 1 identical,
    about 0 for random labels whatever the cluster sizes."""
    table = contingency(labels_true, labels_pred)

    def pairs(v):
        v = numpy.asarray(v, dtype=numpy.float64)
        return (v * (v - 1) / 2).sum()

    n = table.sum()
    index = pairs(table)
    a, b = pairs(table.sum(axis=1)), pairs(table.sum(axis=0))
    expected = a * b / (n * (n - 1) / 2)
    top = (a + b) / 2
    return 1.0 if top == expected else float((index - expected) / (top - expected))


def chance_level(labels_true, labels_pred, metric=best_match_accuracy, trials=200, seed=0) -> numpy.ndarray:
    """The metric for `trials` random shuffles of the cluster labels (same cluster sizes):
    what 'agreement by chance' looks like for these sizes."""
    rng = numpy.random.default_rng(seed)
    pred = numpy.asarray(labels_pred)
    return numpy.array([metric(labels_true, rng.permutation(pred)) for _ in range(trials)])


# -- one word, several senses --------------------------------------------------------

# A fixed set for the polysemy demo: "bank" as the side of a river and as a place for money.
# Written for this demo; the word appears once in each sentence.
BANK_SENTENCES = {
    "river": [
        "We sat on the bank of the river and watched the water.",
        "The boat drifted toward the muddy bank.",
        "Reeds grow thick along the east bank of the stream.",
        "After the flood the river burst its bank.",
        "She fished from the grassy bank all afternoon.",
        "The children slid down the steep bank into the lake.",
    ],
    "money": [
        "I need to deposit this cheque at the bank.",
        "The bank approved our loan for the house.",
        "He works as a teller at a bank downtown.",
        "The central bank raised interest rates again.",
        "My bank charges a fee for every transfer.",
        "She opened a savings account at the local bank.",
    ],
}


def polysemy(word="bank", groups=None, model=None) -> dict:
    """The contextual vectors of `word` in groups of sentences (one group per sense).

    Returns {"vectors" (N, H), "senses" (N,) group names, "sentences", "similarity"
    (N, N) cosines, "within" (mean cosine of pairs from the same group, the
    diagonal left out), "across" (mean cosine of pairs from different groups)}.
    A contextual model gives "bank" a different vector in every sentence; if it
    tells the senses apart, within > across.
    """

    groups = BANK_SENTENCES if groups is None else groups
    if len(groups) < 2 or any(len(texts) < 1 for texts in groups.values()):
        raise InputError("polysemy needs at least two groups of sentences (two senses), none empty")
    senses = [sense for sense, texts in groups.items() for _ in texts]
    sentences = [text for texts in groups.values() for text in texts]
    vectors = word_vectors(sentences, word, model)                               # (N, H)
    sim = cosine_similarity(vectors)
    senses_arr = numpy.array(senses)
    same = senses_arr[:, None] == senses_arr[None, :]
    off_diagonal = ~numpy.eye(len(senses), dtype=bool)
    return {"word": word, "vectors": vectors, "senses": senses, "sentences": sentences, "similarity": sim,
            "within": float(sim[same & off_diagonal].mean()), "across": float(sim[~same].mean())}


# -- analogies on the input embeddings -------------------------------------------------

def analogy(positive=("king", "woman"), negative=("man",), model=None, top_k=10, exclude_inputs=True) -> dict:
    """king - man + woman = ? on the *input* (static) word embeddings, as word2vec's 3CosAdd.

    Method (gensim's most_similar, fixed in advance, not tuned): every input
    row is scaled to unit length, the query is the mean of +positive and
    -negative rows, and every vocabulary row is ranked by cosine with it; the
    input words themselves are left out (exclude_inputs). The vocabulary is
    all of it: word pieces ("##s"), [unused] and special tokens included.

    Returns an AnalogyResult: .query, .top [(token, cosine), ...], .rank(token).
    These are BERT's table-lookup vectors, before any context: the layers above
    make them contextual, and the table keeps only what helps them.
    """

    encoder = load_encoder(model)
    tok = encoder.tokenizer
    words = list(positive) + list(negative)
    if not positive:
        raise InputError("analogy needs at least one positive word")
    for w in words:
        if w not in tok.vocab:
            pieces = tok.tokenize(w)
            raise InputError(f"{w!r} is not one token of the vocabulary (it splits into {pieces}); "
                             f"static analogies need single-token words")
    table = backend.to_host(encoder.model.params["embeddings.word_embeddings.weight"]).astype(numpy.float64)
    unit = unit_rows(table)                                                      # (V, H)
    query = (sum(unit[tok.vocab[w]] for w in positive) - sum(unit[tok.vocab[w]] for w in negative)) / len(words)
    scores = unit @ (query / max(numpy.linalg.norm(query), 1e-12))               # (V,) cosines
    if exclude_inputs:
        scores[[tok.vocab[w] for w in words]] = -numpy.inf
    order = numpy.argsort(-scores, kind="stable")
    ranks = numpy.empty(len(order), dtype=numpy.int64)
    ranks[order] = numpy.arange(1, len(order) + 1)
    query_text = " + ".join(positive) + "".join(f" - {w}" for w in negative)
    return AnalogyResult(query_text, [(tok.ids_to_tokens[i], float(scores[i])) for i in order[:top_k]],
                         ranks, dict(tok.vocab))


@dataclasses.dataclass
class AnalogyResult:
    """query ("king + woman - man"), top [(token, cosine), ...] best first, and rank(token)."""
    query: str
    top: list
    ranks: numpy.ndarray = dataclasses.field(repr=False)
    vocab: dict = dataclasses.field(repr=False)

    def rank(self, token: str) -> int:
        """1-based rank of `token` among the whole vocabulary (the inputs, left out, rank last)."""
        if token not in self.vocab:
            raise KeyError(f"{token!r} is not in the vocabulary")
        return int(self.ranks[self.vocab[token]])
