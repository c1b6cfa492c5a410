"""The one figure helper every plot of minibert uses.

Figures are built with matplotlib's object API (`Figure`, no pyplot state), so they
save to PNG on a machine with no display (`fig.savefig("x.png")`) and show inline in a
notebook (return the Figure as a cell's last value).
"""
from __future__ import annotations


def figure(size):
    """A new matplotlib Figure of `size` inches, laid out so labels never overlap."""
    from matplotlib.figure import (
        Figure,  # lazy: matplotlib takes ~0.3 s to import; only plots need it
    )
    return Figure(figsize=size, layout="constrained")


def shorten(text, width=40):
    """`text` on one line, cut to `width` characters with an ellipsis: a label that fits a plot."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 1] + "…"
