"""Extractive summarization: TextRank by power iteration against its closed form, MMR's choices by hand,
summaries that are K sentences of the input in document order, the CLI."""
from __future__ import annotations

import io
import sys

import numpy
import pytest

from helpers import minilm_path
from minibert.apps.embed import load_encoder
from minibert.apps.summarize import mmr_select, similarity_graph, summarize, textrank
from minibert.cli import main
from minibert.errors import InputError

DOC = ("The river flooded the old town in the spring. Water rose above the doors of the houses near the bridge. "
       "The flood destroyed the market and the church. Many families left the town for the hills. "
       "The river flooded the old town in the spring. A new bridge was built ten years later. "
       "Today the town holds a festival every spring to remember the flood.")


def closed_form(W, d=0.85):
    """PageRank's fixed point solved directly: (I - d P^T) c = (1 - d)/N."""
    N = len(W)
    sums = W.sum(axis=1, keepdims=True)
    P = numpy.where(sums > 0, W / numpy.where(sums > 0, sums, 1), 1 / N)
    return numpy.linalg.solve(numpy.eye(N) - d * P.T, numpy.full(N, (1 - d) / N))


def test_textrank_is_pagerank_fixed_point():
    rng = numpy.random.default_rng(0)
    V = rng.normal(size=(7, 5))
    V /= numpy.linalg.norm(V, axis=1, keepdims=True)
    S, W = similarity_graph(V)
    assert numpy.allclose(numpy.diag(S), 1) and (W >= 0).all() and (numpy.diag(W) == 0).all()
    c = textrank(W)
    assert c.sum() == pytest.approx(1, abs=1e-12)
    assert numpy.allclose(c, closed_form(W), atol=1e-9)


def test_textrank_star_centre_wins_and_isolated_rows_are_uniform():
    W = numpy.zeros((5, 5))
    W[0, 1:] = W[1:, 0] = 1.0                     # a star: 0 is linked to every other
    c = textrank(W)
    assert c.argmax() == 0 and numpy.allclose(c[1:], c[1])
    W2 = numpy.zeros((3, 3))                      # no links at all: every sentence equal
    assert numpy.allclose(textrank(W2), 1 / 3)
    with pytest.raises(ValueError):
        textrank(W, damping=1.0)


def test_mmr_by_hand():
    c = numpy.array([0.40, 0.39, 0.10, 0.11])
    S = numpy.array([[1, .99, .1, .2], [.99, 1, .1, .2], [.1, .1, 1, .3], [.2, .2, .3, 1]])
    assert mmr_select(c, S, 2, lam=1.0) == [0, 1]                # centrality only: the near-duplicate
    # relevance (c - min)/(max - min) = [1, .9667, 0, .0333]; after 0, the gains are
    # lam 0.5: 1: .5*.9667 - .5*.99 = -.012   2: 0 - .5*.1 = -.05    3: .5*.0333 - .5*.2 = -.083   -> 1
    # lam 0.3: 1: .3*.9667 - .7*.99 = -.403   2: 0 - .7*.1 = -.07    3: .3*.0333 - .7*.2 = -.130   -> 2
    assert mmr_select(c, S, 2, lam=0.5) == [0, 1]
    assert mmr_select(c, S, 2, lam=0.3) == [0, 2]
    assert mmr_select(c, S, 9, lam=0.7)[:1] == [0] and len(mmr_select(c, S, 9)) == 4


@pytest.fixture(scope="module")
def encoder():
    minilm_path()
    return load_encoder()


def test_summary_is_k_sentences_of_the_text_in_order(encoder):
    result = summarize(DOC, 3, model=encoder)
    assert len(result.sentences) == 3 and result.indices == sorted(result.indices)
    assert [result.all_sentences[i] for i in result.indices] == result.sentences
    assert all(s in DOC for s in result.sentences)
    assert result.order[0] == int(numpy.argmax(result.centrality))
    assert result.similarity.shape == (7, 7)


def test_mmr_does_not_repeat_a_sentence_that_centrality_alone_does(encoder):
    plain = summarize(DOC, 2, lam=1.0, model=encoder)
    mmr = summarize(DOC, 2, lam=0.3, model=encoder)
    assert plain.indices == [0, 4]                 # the repeated sentence is the most central, twice
    assert len(set(mmr.sentences)) == 2


def test_k_above_n_and_bad_inputs(encoder):
    result = summarize("One sentence. And another.", 5, model=encoder)
    assert result.sentences == ["One sentence.", "And another."] and result.asked == 5
    with pytest.raises(InputError, match="integer >= 1"):
        summarize(DOC, 0, model=encoder)
    with pytest.raises(InputError, match="lambda"):
        summarize(DOC, 2, lam=1.5, model=encoder)
    with pytest.raises(InputError, match="empty"):
        summarize("   \n", 2, model=encoder)


def test_cli_prints_k_sentences_in_order(encoder, tmp_path, capsys, monkeypatch):
    path = tmp_path / "doc.txt"
    path.write_text(DOC, encoding="utf-8")
    assert main(["summarize", str(path), "--sentences", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == summarize(DOC, 3, model=encoder).sentences
    monkeypatch.setattr(sys, "stdin", io.StringIO(DOC))
    assert main(["summarize", "-", "-k", "9", "--lambda", "1"]) == 0
    out = capsys.readouterr()
    assert len(out.out.splitlines()) == 7 and "all of them are shown" in out.err


def test_the_benchmark_script_runs(encoder, tmp_path):
    """benchmarks/eval_summarize.py on 2 WikiText-2 articles: every system in the table and the JSON."""
    import json
    import subprocess

    from helpers import REPO, data_path
    data = data_path("wikitext2").parent
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "eval_summarize.py"), "--articles", "2",
                        "--seeds", "2", "--data", str(data), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    for name in ("first-K", "random-K", "textrank", "textrank+mmr 0.7"):
        assert name in r.stdout
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["articles_used"] == 2 and 0 <= result["table"]["textrank"]["rouge1"]["mean"] <= 1


def test_summarize_runs_on_every_backend(xp):
    """Under the strict CuPy stand-in too (a small random BERT and MiniLM's tokenizer: the vectors come back
    to the host once, the graph is host NumPy)."""
    from helpers import minilm_tokenizer
    from minibert import BertConfig, BertModel
    tok = minilm_tokenizer()
    cfg = BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64)
    result = summarize(DOC, 2, model=(BertModel(cfg, seed=0).eval(), tok))
    assert len(result.sentences) == 2 and result.indices == sorted(result.indices)
