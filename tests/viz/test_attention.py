"""minibert.viz.attention: the grid of every layer's and head's attention map, checked by what it holds.

The image is the maps side by side; every map is labelled with its tokens along the left of its
layer's row and under its head's column, in readable type (not only the last map, in 6-point type).
"""
from __future__ import annotations

import numpy
import pytest

pytest.importorskip("matplotlib")

from minibert.viz import plot_attention_grid  # noqa: E402


def softmax_probs(L, A, T, seed=0):
    scores = numpy.random.default_rng(seed).normal(0, 2, (L, A, T, T))
    e = numpy.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def labels(ticks):
    return [t.get_text() for t in ticks]


@pytest.mark.parametrize("L, A, T", [(2, 3, 7), (6, 12, 15)])
def test_every_map_is_labelled_with_every_token(L, A, T):
    tokens = ["[CLS]"] + [f"w{i}" for i in range(T - 2)] + ["[SEP]"]
    probs = softmax_probs(L, A, T)
    fig = plot_attention_grid(probs, tokens, title="t")
    ax = fig.axes[0]
    gap = max(1, T // 8)
    mosaic = ax.get_images()[0].get_array()
    for layer in range(L):
        for head in range(A):
            r, c = layer * (T + gap), head * (T + gap)
            numpy.testing.assert_array_equal(mosaic[r:r + T, c:c + T], probs[layer, head])
    assert labels(ax.get_yticklabels()) == tokens * L                 # every layer's row of maps
    assert labels(ax.get_xticklabels()) == tokens * A                 # under every head's column
    numpy.testing.assert_array_equal(ax.get_yticks(), [layer * (T + gap) + i for layer in range(L) for i in range(T)])
    numpy.testing.assert_array_equal(ax.get_xticks(), [h * (T + gap) + i for h in range(A) for i in range(T)])
    sizes = {t.get_fontsize() for t in ax.get_yticklabels() + ax.get_xticklabels()}
    assert min(sizes) >= 7                                            # readable, not 6 points
    names = sorted(label for a in ax.child_axes for label in labels(a.get_yticklabels()) + labels(a.get_xticklabels())
                   if label)
    assert names == sorted([f"layer {l}" for l in range(L)] + [f"head {h}" for h in range(A)])


def test_long_texts_name_every_second_token_in_readable_type():
    T = 40
    tokens = [f"t{i}" for i in range(T)]
    fig = plot_attention_grid(softmax_probs(6, 12, T), tokens)
    ax = fig.axes[0]
    step = tokens.index(labels(ax.get_yticklabels())[1])
    assert step >= 2 and labels(ax.get_yticklabels()) == tokens[::step] * 6
    assert min(t.get_fontsize() for t in ax.get_yticklabels()) >= 7
    assert fig.get_size_inches()[0] <= 32                             # the figure stays a sane size
