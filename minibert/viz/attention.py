"""Attention maps: which tokens each token attends to, per layer and head.

    plot_attention(probs[layer], tokens)     one layer's heads, every token named on both axes
    plot_attention_grid(probs, tokens)       every layer (rows) and head (columns) in one picture,
                                             the tokens named along every map's edges

probs come from `model.attention_probs()` (one (B, A, T, T) array per layer) or
`minibert.apps.embed.attention_maps(text)`; rows are the attending tokens (queries),
columns the attended ones (keys).
"""
from __future__ import annotations

import math

import numpy

from minibert.viz.figure import figure, shorten


def plot_attention(probs, tokens, title="attention", max_heads=None):
    """A grid of attention maps: probs (A, T, T) of one sequence (or (L, A, T, T) for every layer)."""
    probs = numpy.asarray(probs)
    if probs.ndim == 3:
        probs = probs[None]
    L, A = probs.shape[:2]
    A = min(A, max_heads or A)
    fig = figure((2.6 * A + 1, 2.6 * L + 0.5))
    axes = numpy.atleast_2d(fig.subplots(L, A, squeeze=False))
    for layer in range(L):
        for head in range(A):
            ax = axes[layer, head]
            ax.imshow(probs[layer, head], cmap="viridis", vmin=0, vmax=1)
            ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=6)
            ax.set_yticks(range(len(tokens)), tokens, fontsize=6)
            ax.set_title(f"layer {layer} head {head}", fontsize=8)
    fig.suptitle(title)
    return fig


def plot_attention_grid(probs, tokens, title="attention maps: every layer (rows) and head (columns)"):
    """Every layer's and head's (T, T) attention map of one text, in one picture.

    probs: (L, A, T, T), rows = attending token (query), columns = attended token (key).
    The maps are tiled into a single image with a gap between them (one imshow, so a
    6 x 12 grid draws in a second or two, where 72 separate axes take ten times longer).
    The tokens are named on every map's edge: the queries along the left of each layer's row
    of maps, the keys under each head's column, in type of 7 to 9 points; when the maps are too
    small for that, every second (third, ...) token is named. "layer l" stands on the right,
    "head h" on top. `minibert.viz.attention.plot_attention(probs[layer], tokens)` draws one
    layer's heads larger, and `minibert.viz.attention_html` an interactive page.
    """
    probs = numpy.asarray(probs, dtype=numpy.float64)
    L, A, T, _ = probs.shape
    gap = max(1, T // 8)
    mosaic = numpy.full((L * (T + gap) - gap, A * (T + gap) - gap), numpy.nan)
    for layer in range(L):
        for head in range(A):
            r, c = layer * (T + gap), head * (T + gap)
            mosaic[r:r + T, c:c + T] = probs[layer, head]
    # Size: about 0.13 inch (9 points) per token, within 10 to 30 inches of width; then as large a
    # type as a token's row allows, naming every step-th token so that labels stay >= 8 points apart.
    cells = A * (T + gap)
    maps_width = min(27.0, max(7.0, 0.13 * cells))                  # inches for the maps themselves
    cell_pt = maps_width * 72 / cells                               # points per token row / column
    step = max(1, math.ceil(8 / cell_pt))
    fontsize = min(9.0, 0.9 * step * cell_pt)
    longest = max((len(shorten(t, 10)) for t in tokens), default=1)
    label_in = longest * fontsize * 0.6 / 72 + 0.3                  # room for the token labels
    fig = figure((maps_width + label_in + 2.6, maps_width * mosaic.shape[0] / mosaic.shape[1] + label_in + 1.0))
    ax = fig.subplots()
    image = ax.imshow(mosaic, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    small = [shorten(t, 10) for t in tokens]
    named = range(0, T, step)
    ax.set_yticks([layer * (T + gap) + i for layer in range(L) for i in named],
                  [small[i] for _ in range(L) for i in named], fontsize=fontsize)
    ax.set_xticks([head * (T + gap) + i for head in range(A) for i in named],
                  [small[i] for _ in range(A) for i in named], fontsize=fontsize, rotation=90)
    ax.set_ylabel("query (attending token)")
    ax.set_xlabel("key (attended token)")
    centre = (T - 1) / 2
    heads = ax.secondary_xaxis("top")
    heads.set_xticks([h * (T + gap) + centre for h in range(A)], [f"head {h}" for h in range(A)], fontsize=9)
    layers = ax.secondary_yaxis("right")
    layers.set_yticks([layer * (T + gap) + centre for layer in range(L)], [f"layer {l}" for l in range(L)],
                      fontsize=9)
    for axis in (ax, heads, layers):
        axis.tick_params(length=0)
        for side in axis.spines.values():
            side.set_visible(False)
    fig.colorbar(image, ax=ax, shrink=0.6, label="attention probability")
    ax.set_title(title, fontsize=10)
    return fig
