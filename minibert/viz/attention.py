"""Attention maps: which tokens each token attends to, per layer and head.

    plot_attention(probs[layer], tokens)     one layer's heads, every token named on both axes
    plot_attention_grid(probs, tokens)       every layer (rows) and head (columns) in one picture

probs come from `model.attention_probs()` (one (B, A, T, T) array per layer) or
`minibert.apps.embed.attention_maps(text)`; rows are the attending tokens (queries),
columns the attended ones (keys).
"""
from __future__ import annotations

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
    6 x 12 grid draws in a second or two, where 72 separate axes take ten times longer; `minibert.viz.attention.plot_attention(probs[layer],
    tokens)` draws one layer's heads with every token named). The tokens of the first map
    are named along the left and the bottom of the grid.
    """
    probs = numpy.asarray(probs, dtype=numpy.float64)
    L, A, T, _ = probs.shape
    gap = max(1, T // 8)
    mosaic = numpy.full((L * (T + gap) - gap, A * (T + gap) - gap), numpy.nan)
    for layer in range(L):
        for head in range(A):
            r, c = layer * (T + gap), head * (T + gap)
            mosaic[r:r + T, c:c + T] = probs[layer, head]
    width = min(2 + 1.1 * A * max(T, 6) / 8, 24)
    fig = figure((width, width * mosaic.shape[0] / mosaic.shape[1] + 1.2))
    ax = fig.subplots()
    image = ax.imshow(mosaic, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    centres = [h * (T + gap) + (T - 1) / 2 for h in range(A)]
    ax.set_xticks(centres, [f"head {h}" for h in range(A)], fontsize=7)
    ax.xaxis.tick_top()
    ax.set_yticks([layer * (T + gap) + (T - 1) / 2 for layer in range(L)], [f"layer {l}" for l in range(L)],
                  fontsize=8)
    small = [shorten(t, 10) for t in tokens]
    if T <= 24:                                   # name the tokens of the bottom-right map
        bottom, right = (L - 1) * (T + gap), mosaic.shape[1]
        for i, token in enumerate(small):
            ax.text(right + 0.3, bottom + i, token, ha="left", va="center", fontsize=6)
            ax.text(right - T + i, mosaic.shape[0] + 0.2, token, ha="center", va="top", rotation=90, fontsize=6)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    fig.colorbar(image, ax=ax, shrink=0.6, label="attention probability")
    ax.set_title(title, fontsize=10)
    return fig
