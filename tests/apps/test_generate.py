"""Generation by masked sampling and pseudo-perplexity (minibert/apps/generate.py), and `minibert generate`."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy
import pytest

from helpers import REPO
from minibert import backend
from minibert.apps.complete import complete, masked_log_probs
from minibert.apps.fill_mask import load_pretraining_model
from minibert.apps.generate import detokenize, draw, generate, pseudo_log_likelihoods, pseudo_perplexity
from minibert.cli import main
from minibert.errors import InputError


def test_samples_have_no_special_tokens_and_are_reproducible(mlm):
    model, tok, _ = mlm
    a = generate(model, tok, length=12, samples=4, seed=5, iterations=2)
    assert a.ids.shape == (4, 12) and len(a.texts) == 4 and len(a.sweeps) == 2
    assert not numpy.isin(a.ids, tok.all_special_ids).any()
    assert all("[" not in text for text in a.texts)
    numpy.testing.assert_array_equal(a.sweeps[-1], a.ids)
    b = generate(model, tok, length=12, samples=4, seed=5, iterations=2)
    assert a.texts == b.texts
    assert generate(model, tok, length=12, samples=4, seed=6, iterations=2).texts != a.texts
    assert [detokenize(tok, row) for row in a.ids] == a.texts


def test_detokenize_glues_pieces_and_drops_a_leading_hashes(mlm):
    _, tok, _ = mlm
    pieces = [p for p in tok.vocab if p.startswith("##") and p[2:] not in tok.vocab][:1] + ["cat", "##s", "sat", "."]
    assert detokenize(tok, tok.convert_tokens_to_ids(pieces)) == pieces[0][2:] + " cats sat."
    assert "[UNK]" not in detokenize(tok, tok.convert_tokens_to_ids(pieces))


def test_greedy_left_to_right_is_argmax_with_masks_to_the_right(mlm):
    """One left-to-right sweep with top-k 1 is greedy decoding: each piece the argmax over the allowed
    pieces, with the pieces before it chosen and the ones after it still [MASK]."""
    model, tok, _ = mlm
    got = generate(model, tok, length=6, samples=2, order="left-to-right", top_k=1, iterations=1, prompt="the cat")
    prompt = tok.encode("the cat", add_special_tokens=False)
    allowed = numpy.ones(len(tok), bool)
    allowed[tok.all_special_ids] = False
    row = [tok.cls_token_id, *prompt, *[tok.mask_token_id] * 6, tok.sep_token_id]
    for i in range(6):
        column = 1 + len(prompt) + i
        logp = masked_log_probs(model, numpy.array([row]), [(0, column)])[0]
        row[column] = int(numpy.flatnonzero(allowed)[numpy.argmax(logp[allowed])])
    numpy.testing.assert_array_equal(got.ids, [row[1 + len(prompt):-1]] * 2)
    assert got.texts[0].startswith("the cat")


def test_draw_follows_the_tempered_top_k_distribution():
    rng = numpy.random.default_rng(0)
    logp = numpy.log(numpy.array([[0.5, 0.3, 0.15, 0.05]] * 40000))
    allowed = numpy.array([True, True, True, True])
    for temperature, top_k in [(1.0, 0), (2.0, 0), (0.5, 2)]:
        counts = numpy.bincount(draw(rng, logp, allowed, temperature, top_k), minlength=4) / len(logp)
        p = numpy.exp(logp[0] / temperature)
        if top_k:
            p[numpy.argsort(-p)[top_k:]] = 0
        numpy.testing.assert_allclose(counts, p / p.sum(), atol=0.01)
    allowed[0] = False                                       # a disallowed token is never drawn
    assert not (draw(rng, logp[:1000], allowed, 1.0, 0) == 0).any()
    assert (draw(rng, logp[:10], allowed, 1.0, 1) == 1).all()


def test_pseudo_log_likelihood_masks_each_piece_in_turn(mlm):
    model, tok, _ = mlm
    texts = ["the cat sat on the mat.", "a green bird"]
    got = pseudo_log_likelihoods(model, tok, texts, batch_size=2)         # batches of 2 copies: chunks checked
    for text, (pll, n) in zip(texts, got):
        row = tok.encode(text)
        assert n == len(row) - 2
        by_hand = 0.0
        for column in range(1, len(row) - 1):
            masked = list(row)
            masked[column] = tok.mask_token_id
            by_hand += masked_log_probs(model, numpy.array([masked]), [(0, column)])[0][row[column]]
        assert pll == pytest.approx(by_hand, rel=1e-10)
    assert pseudo_perplexity(model, tok, texts) == pytest.approx(
        math.exp(-(got[0][0] + got[1][0]) / (got[0][1] + got[1][1])))


@pytest.mark.parametrize("kwargs, message", [
    ({"order": "backwards"}, "order must be one of random, left-to-right"),
    ({"temperature": 0.0}, "temperature must be a finite number > 0"),
    ({"temperature": float("nan")}, "temperature must be a finite number > 0"),
    ({"length": 0}, "length must be an integer >= 1"),
    ({"length": 63}, "length 63 does not fit"),
    ({"top_k": -1}, "top_k must be an integer >= 0"),
    ({"iterations": 0}, "iterations must be an integer >= 1"),
    ({"prompt": "the [MASK]"}, "the prompt has a \\[MASK\\]"),
])
def test_bad_settings_are_input_errors(mlm, kwargs, message):
    model, tok, _ = mlm
    with pytest.raises(InputError, match=message):
        generate(model, tok, **{"length": 5, **kwargs})


def test_pppl_bad_texts(mlm):
    model, tok, _ = mlm
    with pytest.raises(InputError, match="no pieces"):
        pseudo_perplexity(model, tok, [""])
    with pytest.raises(InputError, match="more than the model's 62"):
        pseudo_perplexity(model, tok, ["the cat " * 40])
    with pytest.raises(InputError, match="no texts"):
        pseudo_perplexity(model, tok, [])


def test_the_generate_command_prints_numbered_samples(mlm, capsys):
    _, tok, run = mlm
    model = load_pretraining_model(run)[0]                   # float32, as the command loads it
    assert main(["generate", "--model", str(run), "--samples", "3", "--length", "8", "--seed", "2",
                 "--top-k", "5", "--score", "--prompt", "the dog"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and [line.split(".")[0].strip() for line in lines] == ["1", "2", "3"]
    expected = generate(model, tok, length=8, samples=3, seed=2, top_k=5, prompt="the dog").texts
    assert [line.split("] ", 1)[1] for line in lines] == expected
    assert all("[MASK]" not in line and "PPPL" in line for line in lines)


def test_the_benchmark_script_runs_on_a_tiny_run(mlm, tmp_path):
    """benchmarks/eval_generate.py end to end at tiny sizes (its figures are checked in docs, not here)."""
    _, _, run = mlm
    corpus = str(run.parent / "in" / "corpus.txt")
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "eval_generate.py"), "--model", str(run),
                        "--train", corpus, "--heldout", corpus, "--samples", "3", "--length", "6",
                        "--iterations", "1", "--out", str(tmp_path / "g.json")],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads((tmp_path / "g.json").read_text())
    assert "bigram sampler" in result["figures"] and "held-out text (reference)" in result["figures"]
    assert all(len(texts) == 3 and not any("[MASK]" in t for t in texts) for texts in result["texts"].values())
    assert all(f["pppl"] > 1 and 0 <= f["in_heldout_vocab"] <= 1 for f in result["figures"].values())


def test_the_same_samples_ranks_and_scores_under_the_strict_device_stand_in(mlm, xp):
    """Under the strict CuPy stand-in (arrays that refuse silent host conversions) the apps read results only
    through backend.to_host, and give what NumPy gives."""
    _, tok, run = mlm
    model = load_pretraining_model(run, dtype="float64")[0]                    # built on the current backend
    got = (generate(model, tok, length=6, samples=2, seed=1, top_k=5).texts,
           [c.text for c in complete(model, tok, "the cat sat", k=3).completions],
           pseudo_log_likelihoods(model, tok, ["the cat sat on the tree."]))
    with backend.using("numpy"):
        model = load_pretraining_model(run, dtype="float64")[0]
        expected = (generate(model, tok, length=6, samples=2, seed=1, top_k=5).texts,
                    [c.text for c in complete(model, tok, "the cat sat", k=3).completions],
                    pseudo_log_likelihoods(model, tok, ["the cat sat on the tree."]))
    assert got[:2] == expected[:2]
    assert got[2][0][0] == pytest.approx(expected[2][0][0], rel=1e-12)
