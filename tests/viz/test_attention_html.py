"""minibert.viz.attention_html: the interactive attention page, read as HTML (no browser here).

What the page embeds (the JSON, to its rounding), what it draws statically (the two token columns
with their segments and special tokens, the layer and head buttons, the legend), that it loads
nothing from the network, and its errors. tests/viz/test_attention_browser.py runs the page in
headless Chromium and reads what the script draws.
"""
from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser

import numpy
import pytest

from minibert.errors import InputError
from minibert.viz.attention_html import (DECIMALS, MAX_TOKENS, attention_frame, attention_page, page_data,
                                         write_attention_page)

# A pair with odd sizes: 2 layers, 3 heads, 9 tokens; one token that HTML and a <script> must escape.
TOKENS = ["[CLS]", "the", "cat", "</script><b>&amp;", "[SEP]", "it", "was", "a-very-long-word-piece-indeed", "[SEP]"]
SEGMENTS = [0, 0, 0, 0, 0, 1, 1, 1, 1]
SVG_NAMESPACE = "http://www.w3.org/2000/svg"       # a name, not an address: nothing is fetched from it


def softmax_probs(L=2, A=3, T=len(TOKENS), seed=0):
    scores = numpy.random.default_rng(seed).normal(0, 2, (L, A, T, T))
    e = numpy.exp(scores - scores.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(numpy.float32)        # float32, as the model gives


class Elements(HTMLParser):
    """Every start tag as (tag, attributes), and the text of each <script>."""

    def __init__(self, page):
        super().__init__()
        self.tags, self.scripts, self._in_script = [], [], None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = dict(attrs)
            self.scripts.append([dict(attrs), ""])

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = None

    def handle_data(self, data):
        if self._in_script is not None:
            self.scripts[-1][1] += data

    def with_class(self, name):
        return [a for _, a in self.tags if name in a.get("class", "").split()]


@pytest.fixture(scope="module")
def probs():
    return softmax_probs()


@pytest.fixture(scope="module")
def page(probs):
    return attention_page(TOKENS, probs, SEGMENTS, title="a <pair> & its attention")


def embedded(page):
    (data,) = [text for attrs, text in Elements(page).scripts if attrs.get("id") == "attention-data"]
    return json.loads(data)


def test_the_embedded_json_round_trips_to_the_arrays(page, probs):
    data = embedded(page)
    assert data["tokens"] == TOKENS and data["segments"] == SEGMENTS
    assert (data["layers"], data["heads"], data["decimals"]) == (2, 3, DECIMALS)
    got = numpy.array(data["probs"])
    assert got.shape == probs.shape
    numpy.testing.assert_array_equal(got, numpy.round(probs.astype(numpy.float64), DECIMALS))
    assert numpy.abs(got - probs).max() <= 0.5 * 10 ** -DECIMALS + 1e-7
    numpy.testing.assert_allclose(got.sum(axis=-1), 1.0, atol=len(TOKENS) * 0.5 * 10 ** -DECIMALS)
    assert page_data(TOKENS, probs, SEGMENTS) == data
    # rounded in float64: no float32 tails such as 0.12300000339746475 in the file
    assert not re.search(r"\d\.\d{6,}", Elements(page).scripts[0][1])


def test_the_script_tags_survive_any_token(page):
    """A token such as '</script>' cannot end the data early: there are exactly two scripts, the data
    and the code, and the token is escaped wherever it is written."""
    scripts = Elements(page).scripts
    assert [attrs.get("type") for attrs, _ in scripts] == ["application/json", None]
    assert page.count("</script>") == 2
    assert "</script><b>" not in page and "<b>&amp;" not in page
    assert "&lt;/script&gt;&lt;b&gt;&amp;amp;" in page                 # the token's label and tooltip
    assert "a &lt;pair&gt; &amp; its attention" in page


def test_the_page_loads_nothing_from_the_network(page):
    elements = Elements(page)
    for tag, attrs in elements.tags:
        assert tag not in ("link", "img", "iframe", "object", "embed", "base"), tag
        for name in ("src", "href", "srcset", "action", "poster", "data"):
            assert name not in attrs, (tag, name)
        if tag == "script":
            assert "src" not in attrs
    for pattern in (r"@import", r"url\(", r"\bfetch\(", r"XMLHttpRequest", r"\bimport\(", r"WebSocket",
                    r"\bimport\s", r"//\s*cdn", r"\bsrc\s*="):
        assert not re.search(pattern, page), pattern
    addresses = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert addresses == {SVG_NAMESPACE}, addresses          # only the SVG namespace's name
    assert page.startswith("<!doctype html>") and '<meta charset="utf-8">' in page


def test_segments_and_special_tokens_are_marked(page):
    elements = Elements(page)
    for side in ("query", "key"):
        column = [a for a in elements.with_class("token") if a["data-side"] == side]
        assert [int(a["data-index"]) for a in column] == list(range(len(TOKENS)))
        classes = [a["class"].split() for a in column]
        assert [int(next(c for c in cls if c.startswith("seg-"))[4:]) for cls in classes] == SEGMENTS
        assert ["special" in cls for cls in classes] == [t in ("[CLS]", "[SEP]") for t in TOKENS]
        ys = [float(a["data-y"]) for a in column]
        assert ys == sorted(ys) and len(set(ys)) == len(ys)      # one row per token, in order
    # the labels: every token written (long ones shortened, the full token in the tooltip)
    text = html.unescape(re.sub(r"<[^>]+>", "\n", page))
    for token in TOKENS:
        assert f"{token}: query {TOKENS.index(token)}, segment" in text
    assert "a-very-long-word-…" in text
    legend = " ".join(text.split())
    assert "each query's weights (a row) sum to 1" in legend
    assert "segment A (token type 0)" in legend and "segment B (token type 1)" in legend
    assert "[CLS] starts the input, [SEP] ends each text" in legend


def test_one_text_is_all_segment_a():
    probs = softmax_probs(1, 2, 4)
    page = attention_page(["[CLS]", "a", "b", "[SEP]"], probs)
    assert embedded(page)["segments"] == [0, 0, 0, 0]
    assert "seg-1" not in page.split('id="queries"')[1].split("</svg>")[0]
    assert "one text: every token is in segment A" in page


def test_the_controls_name_every_layer_and_head(page):
    elements = Elements(page)
    assert [a["data-layer"] for a in elements.with_class("layer")] == ["0", "1"]
    assert [a["data-head"] for a in elements.with_class("head")] == ["0", "1", "2", "all"]
    assert {a["aria-pressed"] for a in elements.with_class("layer") + elements.with_class("head")} == {"false"}
    (view,) = [a for tag, a in elements.tags if a.get("id") == "view"]
    assert float(view["data-gap-start"]) < float(view["data-gap-end"])
    assert {"lines", "labels", "status"} <= {a.get("id") for _, a in elements.tags}


def test_write_and_frame(tmp_path, probs, page):
    path = write_attention_page(tmp_path / "sub" / "view.html", TOKENS, probs, SEGMENTS,
                                title="a <pair> & its attention")
    assert path.read_text(encoding="utf-8") == page
    frame = attention_frame(TOKENS, probs, SEGMENTS, title="a <pair> & its attention")
    srcdoc = re.fullmatch(r'<iframe srcdoc="([^"]*)" style="[^"]*height: (\d+)px[^"]*" title="[^"]*"></iframe>',
                          frame)
    assert srcdoc, frame[:200]
    assert html.unescape(srcdoc.group(1)) == page
    assert int(srcdoc.group(2)) > 22 * len(TOKENS)


@pytest.mark.parametrize("change, message", [
    (dict(tokens=[]), "no tokens to draw"),
    (dict(tokens=["[CLS]"] * (MAX_TOKENS + 1)), f"at most {MAX_TOKENS}"),
    (dict(probs=softmax_probs()[0]), r"probs must have shape \(layers, heads, 9, 9\)"),
    (dict(probs=softmax_probs(T=8)), r"for 9 tokens, got \(2, 3, 8, 8\)"),
    (dict(probs=numpy.zeros((0, 3, 9, 9))), "no layer or no head"),
    (dict(probs=numpy.full((1, 1, 9, 9), numpy.nan)), "NaN"),
    (dict(segment_ids=[0] * 8), "8 segment ids for 9 tokens"),
    (dict(segment_ids=[0, 0, 0, 0, 0, 1, 1, 2, 2]), r"0 \(first text\) or 1 \(second text\), got \[0, 1, 2\]"),
])
def test_errors(change, message, probs):
    args = dict(tokens=TOKENS, probs=probs, segment_ids=SEGMENTS) | change
    if len(args["tokens"]) > MAX_TOKENS:
        args["probs"] = numpy.zeros((1, 1, MAX_TOKENS + 1, MAX_TOKENS + 1))
        args["segment_ids"] = None
    with pytest.raises(InputError, match=message):
        attention_page(**args)
