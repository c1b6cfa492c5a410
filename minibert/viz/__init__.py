"""Plots: every function builds a matplotlib Figure (object API, no pyplot state) and returns it,
or saves it into a run folder and returns the path; attention_html.py builds an HTML page instead.

    curves.py      training curves (pretraining, fine-tuning), confusion matrix, span logits
    vectors.py     similarity heatmap, clusters in 2-D, word senses, analogies
    attention.py   attention maps, one layer or every layer and head
    attention_html.py  the interactive attention page (HTML, a head view like bertviz's)
    figure.py      the one figure helper they share
"""
from minibert.viz.attention import plot_attention, plot_attention_grid
from minibert.viz.attention_html import attention_frame, attention_page, write_attention_page
from minibert.viz.curves import (finetuning_figure, plot_confusion, plot_finetuning, plot_pretraining,
                                 plot_run, plot_span_logits, read_log)
from minibert.viz.vectors import plot_analogies, plot_clusters, plot_polysemy, plot_similarity

__all__ = ["plot_attention", "plot_attention_grid", "attention_frame", "attention_page",
           "write_attention_page", "finetuning_figure", "plot_confusion", "plot_finetuning",
           "plot_pretraining", "plot_run", "plot_span_logits", "read_log", "plot_analogies", "plot_clusters",
           "plot_polysemy", "plot_similarity"]
