"""`python -m minibert attention`: the HTML page, the PNG grid, a sentence pair, --model DIR, the errors."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy
import pytest

import minibert.__main__
from helpers import REPO, minilm_path
from minibert.apps.embed import attention_data, load_encoder
from minibert.viz.attention_html import DECIMALS

main = minibert.__main__.main


def embedded(page_path):
    """The JSON the page embeds."""
    page = page_path.read_text(encoding="utf-8")
    return json.loads(re.search(r'<script type="application/json" id="attention-data">(.*?)</script>', page,
                                flags=re.S).group(1))


@pytest.fixture(scope="module")
def encoder():
    minilm_path()
    return load_encoder()


def test_html_page_of_a_pair(tmp_path, monkeypatch, capsys, encoder):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "views" / "pair.html"
    assert main(["attention", "--html", str(out), "The cat sat.", "It was warm."]) == 0
    assert capsys.readouterr().out.strip() == f"6 layers x 12 heads over 11 tokens -> {out} (open it in a browser)"
    data = embedded(out)
    maps = attention_data("The cat sat.", "It was warm.", encoder)
    assert data["tokens"] == maps.tokens and data["segments"] == [0] * 6 + [1] * 5
    numpy.testing.assert_array_equal(numpy.array(data["probs"]),
                                     numpy.round(maps.probs.astype(numpy.float64), DECIMALS))
    assert "attention: The cat sat. | It was warm.</title>" in out.read_text(encoding="utf-8")
    assert not (tmp_path / "attention.png").exists()             # --html alone writes no PNG


def test_png_by_default_and_both_when_asked(tmp_path, monkeypatch, capsys, encoder):
    monkeypatch.chdir(tmp_path)
    assert main(["attention", "The cat sat."]) == 0              # as before: attention.png
    assert (tmp_path / "attention.png").stat().st_size > 1000
    assert capsys.readouterr().out.strip() == "6 layers x 12 heads over 6 tokens -> attention.png"
    assert main(["attention", "--html", "a.html", "--plot", "b.png", "The cat sat.", "It was warm."]) == 0
    assert (tmp_path / "b.png").stat().st_size > 1000 and embedded(tmp_path / "a.html")["layers"] == 6
    assert capsys.readouterr().out.splitlines() == [
        "6 layers x 12 heads over 11 tokens -> a.html (open it in a browser)",
        "6 layers x 12 heads over 11 tokens -> b.png"]


@pytest.mark.parametrize("args, message", [
    (["   "], r"error: the text is empty: it gives no tokens \('   '\)"),
    (["a cat", ""], "error: the second text is empty"),
    (["word " * 300], r"the input has 302 tokens with \[CLS\] and \[SEP\], more than max_length=256: shorten it"),
    (["--max-length", "5", "one two three four"], "the input has 6 tokens .* more than max_length=5"),
    (["word " * 150], r"152 tokens are too many for the attention page \(at most 128\)"),
    (["--max-length", "600", "a cat"], "--max-length 600 is longer than the model's max_position_embeddings=512"),
])
def test_errors_are_one_line(args, message, tmp_path, encoder):
    with pytest.raises(SystemExit, match=message):
        main(["attention", "--html", str(tmp_path / "x.html"), *args])
    assert not (tmp_path / "x.html").exists()


def test_model_folder_in_a_subprocess(tmp_path):
    """`--model DIR` takes any BERT folder: here a tiny one (2 layers, 3 heads) saved with its vocabulary."""
    from minibert import BertModel
    from minibert.gradcheck import odd_config
    from minibert.tokenization import BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "."] + [f"w{i}" for i in range(90)]
    BertModel(odd_config(), seed=0).save_pretrained(tmp_path / "tiny")
    BertTokenizer(vocab).save_pretrained(tmp_path / "tiny")
    out = tmp_path / "tiny.html"
    done = subprocess.run([sys.executable, "-m", "minibert", "attention", "--model", str(tmp_path / "tiny"),
                           "--html", str(out), "the cat", "sat ."], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"2 layers x 3 heads over 7 tokens -> {out} (open it in a browser)"
    data = embedded(out)
    assert data["tokens"] == ["[CLS]", "the", "cat", "[SEP]", "sat", ".", "[SEP]"]
    assert data["segments"] == [0, 0, 0, 0, 1, 1, 1] and (data["layers"], data["heads"]) == (2, 3)
    done = subprocess.run([sys.executable, "-m", "minibert", "attention", "--model", str(tmp_path / "none"),
                           "--html", str(out), "the cat"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip().startswith("error: cannot load the model:")
    assert len(done.stderr.strip().splitlines()) == 1
