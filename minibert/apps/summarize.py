"""Extractive summarization: pick the K most central, least redundant sentences of a document.

    from minibert.apps.summarize import summarize
    result = summarize(text, k=3)             # the bundled all-MiniLM-L6-v2 embeds the sentences
    print(" ".join(result.sentences))         # K sentences of the text, in the document's order

    python -m minibert summarize article.txt --sentences 3 [--lambda 0.7] [--model DIR]

Nothing is generated: the summary is made of the document's own sentences. The steps
(legend: N sentences, H hidden size):

    1. sentences     split_sentences(text) (minibert/data/pretraining/sentences.py)   N strings
    2. vectors       embed(sentences): mean-pooled, unit length (apps/embed.py)       V (N, H)
    3. graph         S = V V^T, cosine similarities; W = max(S, 0), diagonal 0        (N, N)
    4. centrality    TextRank: PageRank on W by power iteration, damping d = 0.85     c (N,)
    5. selection     MMR: K sentences, each the best trade-off of central and new     K indices
    6. output        the chosen sentences in the order they appear in the document

TextRank (Mihalcea & Tarau, 2004) with sentence vectors instead of word overlap: a
sentence is central when it is similar to many sentences that are themselves central.
With P the row-normalised graph, P[i, j] = W[i, j] / sum_j W[i, j] (a row of zeros,
a sentence like no other, links to every sentence equally), the scores are the fixed
point of

    c = (1 - d) / N + d P^T c          (c >= 0, sum(c) = 1)

reached by repeating the update from c = 1/N until it moves by less than 1e-10
(at most 200 times; it contracts by d per step, so about 140 steps at worst).
That is PageRank: a reader who follows similarity links from sentence to sentence,
and jumps to a random sentence with probability 1 - d, spends fraction c[i] of the
time on sentence i.

MMR (maximal marginal relevance, Carbonell & Goldstein, 1998) keeps the summary
from saying the same thing twice. With the centrality rescaled to [0, 1],
r = (c - min c) / (max c - min c), the next sentence is

    argmax over unchosen i of   lambda * r[i] - (1 - lambda) * max over chosen j of S[i, j]

lambda = 1 is the K most central sentences; lower values trade centrality for
novelty (0.7 by default). The first pick is always the most central sentence.
How strong the penalty is: an exact copy of the first pick has r = 1 and S = 1, so
it gains lambda - (1 - lambda) = 2 lambda - 1. A new sentence j gains lambda r[j] -
(1 - lambda) S[j, first], so the copy wins when lambda (1 - r[j]) > (1 - lambda)(1 - S[j, first]):
with lambda = 0.7 it often does, with lambda = 0.3 rarely (docs/summarization.md measures both).

K larger than the number of sentences gives every sentence (the whole document is
its own best summary); `Summary.asked` keeps the K that was asked for.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy

from minibert.apps.embed import embed
from minibert.data.pretraining.sentences import split_sentences
from minibert.errors import InputError

__all__ = ["Summary", "sentences_of", "similarity_graph", "textrank", "mmr_select", "summarize",
           "DAMPING", "DEFAULT_LAMBDA"]

DAMPING = 0.85            # PageRank's damping: the probability of following a link rather than jumping
DEFAULT_LAMBDA = 0.7      # MMR's weight of centrality against novelty


class Summary(NamedTuple):
    """What `summarize` returns (host arrays).

    sentences: the chosen sentences, in document order.
    indices: their positions among all the document's sentences (ascending).
    all_sentences: every sentence of the document (N).
    similarity: (N, N) cosine similarities of the sentence vectors.
    centrality: (N,) TextRank scores (they sum to 1).
    order: the indices in the order MMR chose them (the first is the most central).
    asked: the K that was asked for (len(sentences) is min(K, N)).
    """
    sentences: list
    indices: list
    all_sentences: list
    similarity: numpy.ndarray
    centrality: numpy.ndarray
    order: list
    asked: int


def sentences_of(text: str) -> list[str]:
    """The document's sentences (minibert's rule-based splitter; whitespace collapsed)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return split_sentences(text)


def similarity_graph(vectors: numpy.ndarray) -> tuple[numpy.ndarray, numpy.ndarray]:
    """(S, W) from unit-length sentence vectors (N, H): S = V V^T the cosines, W the graph's weights.

    W = max(S, 0) with a zero diagonal: PageRank needs non-negative weights (an anticorrelated
    pair is no link at all), and a sentence does not vote for itself.
    """
    vectors = numpy.asarray(vectors, dtype=numpy.float64)
    S = vectors @ vectors.T                                    # (N, N) cosine, as the rows have length 1
    W = numpy.maximum(S, 0.0)
    numpy.fill_diagonal(W, 0.0)
    return S, W


def textrank(W: numpy.ndarray, damping: float = DAMPING, tol: float = 1e-10, max_iter: int = 200) -> numpy.ndarray:
    """PageRank scores (N,) of a weighted graph by power iteration: c = (1 - d)/N + d P^T c.

    P is W with each row divided by its sum; a row of zeros becomes uniform (1/N each), so
    every row of P sums to 1 and c keeps summing to 1.
    """
    if not 0 <= damping < 1:
        raise ValueError(f"damping must be in [0, 1), got {damping}")
    W = numpy.asarray(W, dtype=numpy.float64)
    N = W.shape[0]
    if N == 0:
        return numpy.zeros(0)
    sums = W.sum(axis=1, keepdims=True)                          # (N, 1) out-weight of each sentence
    P = numpy.where(sums > 0, W / numpy.where(sums > 0, sums, 1.0), 1.0 / N)   # (N, N) rows sum to 1
    c = numpy.full(N, 1.0 / N)
    for _ in range(max_iter):
        new = (1.0 - damping) / N + damping * (P.T @ c)          # mass flows along links i -> j
        if numpy.abs(new - c).sum() < tol:
            return new
        c = new
    return c


def mmr_select(centrality: numpy.ndarray, S: numpy.ndarray, k: int, lam: float = DEFAULT_LAMBDA) -> list[int]:
    """K indices, chosen one at a time by lambda * relevance - (1 - lambda) * (max similarity to those chosen).

    Relevance is the centrality rescaled to [0, 1] (all equal: all 1). Ties go to the earlier sentence.
    Returns the indices in the order they were chosen.
    """
    if not 0 <= lam <= 1:
        raise ValueError(f"lambda must be in [0, 1], got {lam}")
    c = numpy.asarray(centrality, dtype=numpy.float64)
    spread = c.max() - c.min() if len(c) else 0.0
    relevance = (c - c.min()) / spread if spread > 0 else numpy.ones_like(c)
    chosen: list[int] = []
    redundancy = numpy.full(len(c), -numpy.inf)                  # max similarity to a chosen sentence
    for _ in range(min(k, len(c))):
        gain = lam * relevance - (1 - lam) * numpy.where(numpy.isfinite(redundancy), redundancy, 0.0)
        gain[chosen] = -numpy.inf
        best = int(numpy.argmax(gain))                           # argmax: the first of equal gains
        chosen.append(best)
        redundancy = numpy.maximum(redundancy, S[best])
    return chosen


def summarize(text: str, k: int, lam: float = DEFAULT_LAMBDA, model=None, damping: float = DAMPING,
              batch_size: int = 32) -> Summary:
    """The K sentences of `text` that best summarise it (TextRank centrality + MMR), in document order.

    model: as `embed`'s (None: the bundled all-MiniLM-L6-v2; a folder; a (BertModel, BertTokenizer) pair).
    lam: MMR's lambda, in [0, 1] (1: centrality only). K < 1 or a text without a sentence is an InputError;
    K above the number of sentences gives them all.
    """
    if isinstance(k, bool) or not isinstance(k, (int, numpy.integer)) or k < 1:
        raise InputError(f"the number of sentences must be an integer >= 1, got {k!r}")
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not 0 <= lam <= 1:
        raise InputError(f"lambda must be a number in [0, 1], got {lam!r}")
    sentences = sentences_of(text)
    if not sentences:
        raise InputError("the document is empty: it has no sentence to choose")
    vectors = embed(sentences, model=model, batch_size=batch_size)       # (N, H) host, unit rows
    S, W = similarity_graph(vectors)
    centrality = textrank(W, damping)
    order = mmr_select(centrality, S, int(k), lam)
    indices = sorted(order)
    return Summary([sentences[i] for i in indices], indices, sentences, S, centrality, order, int(k))
