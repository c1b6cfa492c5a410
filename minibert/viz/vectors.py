"""Plots of sentence and word vectors: similarity heatmap, clusters in 2-D, senses, analogies.

Same conventions as minibert/viz/curves.py: every function builds a matplotlib
`Figure` with the object API (no pyplot state) and returns it; save it with
`fig.savefig("x.png")`, or make it a notebook cell's last value to show it.
The attention grid is `minibert.viz.attention.plot_attention`.
"""
from __future__ import annotations

import textwrap

import numpy

from minibert.viz.figure import figure, shorten


def plot_similarity(matrix, labels=None, title="cosine similarity", annotate=None):
    """Heatmap of an (N, N) cosine matrix; rows and columns labelled with (shortened) texts."""
    matrix = numpy.asarray(matrix)
    n = matrix.shape[0]
    labels = [str(i) for i in range(n)] if labels is None else [shorten(t) for t in labels]
    size = min(4 + 0.45 * n, 16)
    fig = figure((size + 1.5, size + 0.5))
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    if annotate if annotate is not None else n <= 16:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if abs(matrix[i, j]) > 0.6 else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label="cosine")
    ax.set_title(title)
    return fig


def plot_clusters(coords, labels, texts=None, ratio=None, truth=None, title="k-means clusters, PCA view",
                  annotate=0):
    """2-D scatter (e.g. pca(vectors, 2)) coloured by cluster; with `truth` (one class per point),
    the marker shape shows the class, so agreement is visible. `annotate` labels that many
    points, spread over the data, with their text."""
    from matplotlib.lines import Line2D

    coords = numpy.asarray(coords)
    labels = numpy.asarray(labels)
    clusters = numpy.unique(labels)
    fig = figure((8, 6))
    ax = fig.subplots()
    markers = "os^vDP*Xph<>d8H"
    cmap = _cmap(len(clusters))
    classes = [None] if truth is None else list(dict.fromkeys(truth))
    truth = None if truth is None else numpy.asarray(truth)
    for c_index, cls in enumerate(classes):
        rows = numpy.ones(len(labels), bool) if cls is None else truth == cls
        for j, cluster in enumerate(clusters):
            sel = rows & (labels == cluster)
            if sel.any():
                ax.scatter(coords[sel, 0], coords[sel, 1], s=24, alpha=0.75, color=cmap(j),
                           marker=markers[c_index % len(markers)], edgecolors="none")
    if texts is not None and annotate:
        for i in numpy.linspace(0, len(coords) - 1, min(annotate, len(coords))).astype(int):
            ax.annotate(shorten(texts[i], 30), coords[i], fontsize=7, alpha=0.8)
    pcs = ("PC1", "PC2") if ratio is None else (f"PC1 ({ratio[0]:.0%} of variance)", f"PC2 ({ratio[1]:.0%})")
    ax.set(xlabel=pcs[0], ylabel=pcs[1], title=title)
    handles = [Line2D([], [], marker="o", linestyle="", color=cmap(j), label=f"cluster {c}")
               for j, c in enumerate(clusters)]
    first = ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), title="colour")
    if truth is not None:
        ax.add_artist(first)
        handles = [Line2D([], [], marker=markers[i % len(markers)], linestyle="", color="gray", label=str(c))
                   for i, c in enumerate(classes)]
        ax.legend(handles=handles, fontsize=7, loc="lower left", bbox_to_anchor=(1.01, 0), title="marker")
    return fig


def _cmap(n):
    from matplotlib import colormaps
    return colormaps["tab10" if n <= 10 else "tab20"]


def plot_polysemy(result, title=None):
    """Left: the cosine matrix of one word's vectors, sentences grouped by sense. Right: every
    pair's cosine, within a sense vs across senses, with the two means."""
    sim, senses = result["similarity"], numpy.array(result["senses"])
    n = len(senses)
    fig = figure((13, 5.5))
    left, right = fig.subplots(1, 2, width_ratios=[1.3, 1])
    image = left.imshow(sim, cmap="RdBu_r", vmin=-1, vmax=1)
    labels = [f"[{s}] {shorten(t, 34)}" for s, t in zip(senses, result["sentences"])]
    left.set_xticks(range(n), [str(i) for i in range(n)], fontsize=7)
    left.set_yticks(range(n), labels, fontsize=7)
    fig.colorbar(image, ax=left, shrink=0.8, label="cosine")
    left.set_title(f"'{result['word']}' in context: cosine of its vectors")
    same = senses[:, None] == senses[None, :]
    upper = numpy.triu(numpy.ones((n, n), bool), k=1)
    groups = (("within a sense", sim[same & upper]), ("across senses", sim[~same & upper]))
    rng = numpy.random.default_rng(0)
    for x, (name, values) in enumerate(groups):
        right.scatter(x + rng.uniform(-0.12, 0.12, len(values)), values, s=14, alpha=0.6)
        right.hlines(values.mean(), x - 0.3, x + 0.3, color="black")
        right.text(x + 0.32, values.mean(), f"mean {values.mean():.3f}", va="center", fontsize=9)
    right.set_xticks([0, 1], [g[0] for g in groups])
    right.set_xlim(-0.6, 1.9)
    right.set(ylabel="cosine of the two vectors of the word", title="pairs of sentences")
    fig.suptitle(title or f"polysemy: within-sense {result['within']:.3f} vs across-sense {result['across']:.3f}")
    return fig


def plot_analogies(results, expected=None, title="analogies on the input embeddings (3CosAdd)"):
    """One bar chart per analogy: the top candidates and their cosines; the expected answer
    (if given, one per analogy) is highlighted and its rank written in the title."""
    results = list(results)
    fig = figure((4.2 * len(results), 4))
    axes = numpy.atleast_1d(fig.subplots(1, len(results)))
    for k, (ax, result) in enumerate(zip(axes, results)):
        tokens = [t for t, _ in result.top][::-1]
        scores = [s for _, s in result.top][::-1]
        want = expected[k] if expected else None
        colors = ["tab:orange" if t == want else "tab:blue" for t in tokens]
        ax.barh(range(len(tokens)), scores, color=colors)
        ax.set_yticks(range(len(tokens)), tokens, fontsize=8)
        head = "\n".join(textwrap.wrap(result.query, 30))
        if want:
            head += f"\nrank of '{want}': {result.rank(want)}"
        ax.set_title(head, fontsize=9)
        ax.set_xlabel("cosine")
    fig.suptitle(title)
    return fig


