"""What the vectors are for: similarity, search, k-means++, PCA, agreement measures, and the
two demos on the bundled all-MiniLM-L6-v2 (polysemy of "bank", king - man + woman).

The demos assert what the issue asks and print their figures (run with -s); nothing in them
was tuned to pass: the sentence set and the analogy method were fixed before the first run.
"""
from __future__ import annotations

import itertools

import numpy
import pytest

from minibert.apps.vectors import (BANK_SENTENCES, adjusted_rand_index, analogy, best_match_accuracy,
                                   chance_level, contingency, cosine_similarity, kmeans, kmeans_plus_plus,
                                   pca, polysemy, search, unit_rows)


def blobs(seed=0, centres=((0, 0, 0), (6, 0, 0), (0, 6, 0)), n=(20, 13, 7), spread=0.5):
    rng = numpy.random.default_rng(seed)
    x = numpy.concatenate([rng.normal(c, spread, (k, len(c))) for c, k in zip(centres, n)])
    y = numpy.repeat(numpy.arange(len(n)), n)
    return x, y


def test_cosine_similarity_and_search():
    rng = numpy.random.default_rng(0)
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(9, 7))
    expected = numpy.array([[u @ v / numpy.linalg.norm(u) / numpy.linalg.norm(v) for v in b] for u in a])
    numpy.testing.assert_allclose(cosine_similarity(a, b), expected, atol=1e-12)
    numpy.testing.assert_allclose(numpy.diag(cosine_similarity(a)), 1.0)
    numpy.testing.assert_allclose(cosine_similarity(3 * a, b), expected, atol=1e-12)   # length does not matter
    top, scores = search(a, b, k=4)
    assert top.shape == scores.shape == (5, 4)
    for q in range(5):
        order = numpy.argsort(-expected[q], kind="stable")[:4]
        numpy.testing.assert_array_equal(top[q], order)
        numpy.testing.assert_allclose(scores[q], expected[q][order], atol=1e-12)
    assert search(a[0], b, k=50)[0].shape == (1, 9)
    with pytest.raises(ValueError, match="different sizes"):
        cosine_similarity(a, rng.normal(size=(2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        cosine_similarity(numpy.full((2, 3), numpy.nan))
    with pytest.raises(ValueError, match="non-empty"):
        cosine_similarity(numpy.zeros((0, 3)))
    numpy.testing.assert_array_equal(unit_rows(numpy.zeros((1, 3))), 0.0)


def test_kmeans_recovers_blobs_and_is_reproducible():
    x, y = blobs()
    result = kmeans(x, 3, seed=1)
    assert best_match_accuracy(y, result["labels"]) == 1.0
    assert adjusted_rand_index(y, result["labels"]) == pytest.approx(1.0)
    # the centres are the means of their members, the inertia the sum of squared distances
    for j in range(3):
        numpy.testing.assert_allclose(result["centres"][j], x[result["labels"] == j].mean(axis=0))
    d2 = ((x[:, None] - result["centres"][None]) ** 2).sum(-1)
    assert result["inertia"] == pytest.approx(d2.min(axis=1).sum())
    numpy.testing.assert_allclose(result["distances"], numpy.sqrt(d2), atol=1e-9)
    again = kmeans(x, 3, seed=1)
    numpy.testing.assert_array_equal(again["labels"], result["labels"])
    assert kmeans(x, 1)["inertia"] == pytest.approx(((x - x.mean(0)) ** 2).sum())
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 40\]"):
        kmeans(x, 41)
    with pytest.raises(ValueError, match="k must be"):
        kmeans(x, 0)


def test_kmeans_plus_plus_spreads_the_starts():
    """With three far-apart blobs, k-means++ puts one start in each nearly always (a uniform
    draw of 3 rows would do so in about 20% of draws for these sizes)."""
    x, y = blobs(spread=0.1)
    rng = numpy.random.default_rng(0)
    hits = 0
    for _ in range(200):
        starts = kmeans_plus_plus(x, 3, rng)
        owner = [y[numpy.argmin(((x - s) ** 2).sum(1))] for s in starts]
        hits += len(set(owner)) == 3
    assert hits >= 195


def test_pca_matches_the_covariance_eigenvectors():
    rng = numpy.random.default_rng(0)
    x = rng.normal(size=(50, 4)) @ numpy.diag([5.0, 2.0, 1.0, 0.1]) + 3.0
    coords, ratio = pca(x, 2)
    centred = x - x.mean(0)
    values, vectors = numpy.linalg.eigh(centred.T @ centred)
    order = numpy.argsort(-values)
    for k in range(2):
        projection = centred @ vectors[:, order[k]]
        assert abs(abs(projection @ coords[:, k]) / (projection @ projection) - 1) < 1e-9    # same up to sign
    numpy.testing.assert_allclose(ratio, values[order[:2]] / values.sum())


def test_agreement_measures():
    truth = [0, 0, 0, 1, 1, 1, 2, 2]
    assert best_match_accuracy(truth, [5, 5, 5, 7, 7, 7, 9, 9]) == 1.0          # names do not matter
    assert best_match_accuracy(truth, [0, 0, 1, 1, 1, 1, 2, 2]) == 7 / 8
    assert best_match_accuracy(truth, [0] * 8) == 3 / 8                           # one cluster: the biggest class
    assert adjusted_rand_index(truth, [1, 1, 1, 2, 2, 2, 0, 0]) == pytest.approx(1.0)
    # by hand: contingency [[2,1,0],[0,3,0],[0,0,2]] -> sum C(n_ij,2) = 1+3+1 = 5; rows 3,3,2 -> 7;
    # columns 2,4,2 -> 8; expected 7*8/28 = 2; max 7.5; ARI = (5-2)/(7.5-2)
    assert adjusted_rand_index(truth, [0, 0, 1, 1, 1, 1, 2, 2]) == pytest.approx(3 / 5.5)
    numpy.testing.assert_array_equal(contingency(["a", "b", "a"], [1, 1, 0]), [[1, 1], [0, 1]])
    rng = numpy.random.default_rng(0)
    random_ari = [adjusted_rand_index(rng.integers(0, 3, 300), rng.integers(0, 4, 300)) for _ in range(50)]
    assert abs(numpy.mean(random_ari)) < 0.01                                   # about 0 by chance
    chance = chance_level(truth, [0, 0, 1, 1, 1, 1, 2, 2], trials=50)
    assert chance.shape == (50,) and chance.min() >= 3 / 8


def test_best_match_accuracy_is_the_best_matching():
    rng = numpy.random.default_rng(0)
    truth, pred = rng.integers(0, 4, 60), rng.integers(0, 3, 60)
    table = contingency(truth, pred)
    brute = max(sum(table[p[c], c] for c in range(table.shape[1]))
                for p in itertools.permutations(range(table.shape[0]), table.shape[1]))
    assert best_match_accuracy(truth, pred) == brute / 60


# -- the demos on real weights ------------------------------------------------------------------

def test_polysemy_bank_senses_separate():
    result = polysemy("bank", BANK_SENTENCES)
    print(f"\n'bank': mean cosine within a sense {result['within']:.4f}, across senses {result['across']:.4f} "
          f"({sum(len(v) for v in BANK_SENTENCES.values())} sentences)")
    assert result["vectors"].shape == (12, 384)
    assert result["within"] > result["across"]
    # the nearest other sentence of each one, by the word's vector, has the same sense
    sim = result["similarity"] - 2 * numpy.eye(12)
    senses = numpy.array(result["senses"])
    agree = (senses[sim.argmax(axis=1)] == senses).mean()
    print(f"nearest-neighbour sense agreement: {agree:.3f}")
    assert agree > 0.5


def test_static_analogy_king_man_woman():
    result = analogy(("king", "woman"), ("man",))
    rank = result.rank("queen")
    print(f"\nking - man + woman on all-MiniLM-L6-v2's input embeddings (3CosAdd, inputs excluded): "
          f"'queen' ranks {rank} of {len(result.ranks)}; top 5 {[t for t, _ in result.top[:5]]}")
    assert result.rank("king") > len(result.ranks) - 3                     # the inputs are left out
    assert rank <= 5


def test_analogy_errors():
    with pytest.raises(ValueError, match="not one token of the vocabulary"):
        analogy(("kingdomhood",), ("man",))
    with pytest.raises(ValueError, match="at least one positive"):
        analogy((), ("man",))
    with pytest.raises(ValueError, match="at least two groups"):
        polysemy("bank", {"river": BANK_SENTENCES["river"]})
