"""The attention page in a real browser: headless Chromium, driven by Playwright.

The page is built from the bundled all-MiniLM-L6-v2's attention on a sentence pair and opened as a
file:// page. The tests click a layer and a head, hover and click tokens, and read back what the
script drew (every line and number carries its layer, head, query, key and weight as data
attributes); each drawn weight must be the model's probs[layer, head, query, key] to the page's
rounding, the lines must join the right tokens, and the styles must show segments and special
tokens apart. Nothing may be requested but the page itself.

Needs a Chromium binary (Debian's package `chromium`; or MINIBERT_CHROMIUM=/path/to/chrome) and
the Python package playwright (requirements-dev.txt; Playwright's own browser download is not
used). Without either, the tests are skipped, saying which is missing.

The screenshot is written into the test's tmp folder. To refresh the one in the docs, run once:
    MINIBERT_ATTENTION_SCREENSHOT=docs/images/attention_view.png .venv/bin/python -m pytest \
        tests/viz/test_attention_browser.py -k screenshot
"""
from __future__ import annotations

import os
import shutil

import numpy
import pytest

from helpers import minilm_path
from minibert.apps.embed import attention_data, load_encoder
from minibert.viz.attention_html import DECIMALS, attention_frame, write_attention_page

sync_api = pytest.importorskip("playwright.sync_api", reason="the Python package playwright is not installed "
                                                             "(pip install -r requirements-dev.txt)")

# The flags headless Chromium needs here: no sandbox as root, and no background connections (this
# network is closed; the test must not depend on one).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]
TEXT, PAIR = "The cat sat on the mat.", "It was warm there."
LAYER, HEAD, QUERY, KEY = 5, 11, 9, 2                # "it" (9, the first token of segment B) and "cat" (2):
                                                     # in layer 5, head 11 "it" attends most to "cat" (0.63)
TOLERANCE = 0.5 * 10 ** -DECIMALS + 1e-6            # the page rounds each weight to DECIMALS places


def chromium_binary():
    """The Chromium (or Chrome) to drive: MINIBERT_CHROMIUM, else the first one on PATH, else None."""
    if os.environ.get("MINIBERT_CHROMIUM"):
        return os.environ["MINIBERT_CHROMIUM"]
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def maps():
    minilm_path()                                     # skip, saying why, if the bundled model is missing
    return attention_data(TEXT, PAIR, load_encoder())


@pytest.fixture(scope="module")
def page_file(maps, tmp_path_factory):
    path = tmp_path_factory.mktemp("attention") / "attention.html"
    return write_attention_page(path, maps.tokens, maps.probs, maps.segment_ids, title=f"attention: {TEXT} | {PAIR}")


@pytest.fixture(scope="module")
def browser():
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no Chromium binary found (install Debian's package chromium, or set MINIBERT_CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=binary, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, page_file):
    """The page, opened fresh; fails the test on a script error or on any request but the page itself."""
    context = browser.new_context(viewport={"width": 1040, "height": 570})
    page = context.new_page()
    errors, requests = [], []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("request", lambda request: requests.append(request.url))
    page.goto(page_file.as_uri())
    yield page
    assert errors == []
    assert requests == [page_file.as_uri()]
    context.close()


def drawn(page, selector="line.weight"):
    """What the script drew: one dict per element, its data attributes and geometry as numbers."""
    return page.eval_on_selector_all(selector, """elements => elements.map(e => ({
        layer: +e.dataset.layer, head: +e.dataset.head, query: +e.dataset.query, key: +e.dataset.key,
        weight: e.dataset.weight, opacity: e.getAttribute("stroke-opacity"), text: e.textContent,
        y1: +e.getAttribute("y1"), y2: +e.getAttribute("y2")}))""")


def token_ys(page, side):
    return page.eval_on_selector_all(f".token.{side}", "elements => elements.map(e => +e.dataset.y)")


def pick(page, layer, head):
    page.click(f"button.layer[data-layer='{layer}']")
    page.click(f"button.head[data-head='{head}']")
    assert page.get_attribute(f"button.layer[data-layer='{layer}']", "aria-pressed") == "true"
    assert page.get_attribute(f"button.head[data-head='{head}']", "aria-pressed") == "true"
    assert page.locator("button[aria-pressed='true']").count() == 2


def test_a_chosen_head_draws_every_weight_of_its_map(page, maps):
    T = len(maps.tokens)
    lines = drawn(page)                                      # as opened: layer 0, head 0
    assert len(lines) == T * T and {(l["layer"], l["head"]) for l in lines} == {(0, 0)}
    pick(page, LAYER, HEAD)
    lines = drawn(page)
    assert len(lines) == T * T and {(l["layer"], l["head"]) for l in lines} == {(LAYER, HEAD)}
    shown = numpy.zeros((T, T))
    for line in lines:
        shown[line["query"], line["key"]] = float(line["weight"])
        assert float(line["opacity"]) == float(line["weight"])          # as opaque as the weight
    assert numpy.abs(shown - maps.probs[LAYER, HEAD]).max() <= TOLERANCE
    assert f"Layer {LAYER}, head {HEAD}" in page.text_content("#status")


def test_hovering_a_query_shows_its_row(page, maps):
    T = len(maps.tokens)
    pick(page, LAYER, HEAD)
    page.hover(f".token.query[data-index='{QUERY}']")
    lines = drawn(page)
    assert [(l["layer"], l["head"], l["query"]) for l in lines] == [(LAYER, HEAD, QUERY)] * T
    assert [l["key"] for l in lines] == list(range(T))
    row = numpy.array([float(l["weight"]) for l in lines])
    assert numpy.abs(row - maps.probs[LAYER, HEAD, QUERY]).max() <= TOLERANCE
    # each line starts at the hovered query's row and ends at its key's row
    queries, keys = token_ys(page, "query"), token_ys(page, "key")
    assert {l["y1"] for l in lines} == {queries[QUERY]}
    assert [l["y2"] for l in lines] == keys
    # the numbers beside the keys are the same weights, written out, and the status gives their sum
    labels = drawn(page, ".weight-label")
    assert [l["text"] for l in labels] == [l["weight"] for l in lines]
    assert f'"{maps.tokens[QUERY]}" (query {QUERY})' in page.text_content("#status")
    assert f"{row.sum():.3f}" in page.text_content("#status")
    assert page.get_attribute(f".token.query[data-index='{QUERY}']", "class").split()[-1] == "focused"
    page.mouse.move(1, 1)                                     # hover ends: every weight again
    assert len(drawn(page)) == T * T and drawn(page, ".weight-label") == []


def test_clicking_a_key_pins_its_column(page, maps):
    T = len(maps.tokens)
    pick(page, LAYER, HEAD)
    page.click(f".token.key[data-index='{KEY}']")
    page.mouse.move(1, 1)                                     # the click keeps it after the mouse leaves
    lines = drawn(page)
    assert [(l["head"], l["query"], l["key"]) for l in lines] == [(HEAD, q, KEY) for q in range(T)]
    column = numpy.array([float(l["weight"]) for l in lines])
    assert numpy.abs(column - maps.probs[LAYER, HEAD, :, KEY]).max() <= TOLERANCE
    assert {l["y2"] for l in lines} == {token_ys(page, "key")[KEY]}
    assert "need not sum to 1" in page.text_content("#status")
    page.click("button.layer[data-layer='1']")                # another layer: the same column, its weights
    column1 = numpy.array([float(l["weight"]) for l in drawn(page)])
    assert numpy.abs(column1 - maps.probs[1, HEAD, :, KEY]).max() <= TOLERANCE
    page.click(f".token.key[data-index='{KEY}']")             # a second click lets go:
    assert len(drawn(page)) == T                              # only the hover shows the column now
    page.mouse.move(1, 1)
    assert len(drawn(page)) == T * T


def test_all_heads_overlay_one_colour_each(page, maps):
    T, A = len(maps.tokens), maps.probs.shape[1]
    pick(page, LAYER, "all")
    page.click(f".token.query[data-index='{QUERY}']")
    lines = drawn(page)
    assert len(lines) == A * T
    shown = numpy.zeros((A, T))
    for line in lines:
        assert line["query"] == QUERY
        shown[line["head"], line["key"]] = float(line["weight"])
    assert numpy.abs(shown - maps.probs[LAYER, :, QUERY]).max() <= TOLERANCE
    colours = page.eval_on_selector_all("line.weight", "ls => ls.map(l => l.dataset.head + ' ' + l.getAttribute('stroke'))")
    assert len(set(colours)) == A                              # one colour per head
    assert drawn(page, ".weight-label") == []                  # numbers only for one head
    assert "pick one head" in page.text_content("#status")


def test_segments_and_special_tokens_look_different(page, maps):
    style = page.eval_on_selector_all(".token.query", """gs => gs.map(g => ({
        fill: getComputedStyle(g.querySelector("rect")).fill,
        dash: getComputedStyle(g.querySelector("rect")).strokeDasharray,
        weight: getComputedStyle(g.querySelector("text")).fontWeight,
        text: g.querySelector("text").textContent}))""")
    assert [s["text"] for s in style] == maps.tokens
    fills = {segment: {s["fill"] for s, seg in zip(style, maps.segment_ids) if seg == segment} for segment in (0, 1)}
    assert len(fills[0]) == 1 and len(fills[1]) == 1 and fills[0] != fills[1]
    special = [t in ("[CLS]", "[SEP]") for t in maps.tokens]
    assert [int(s["weight"]) >= 700 for s in style] == special
    assert [s["dash"] not in ("none", "") for s in style] == special
    assert maps.tokens.count("[SEP]") == 2 and maps.segment_ids[-1] == 1


def test_screenshot(page, tmp_path):
    pick(page, LAYER, HEAD)
    page.click(f".token.query[data-index='{QUERY}']")
    page.mouse.move(1, 1)
    shot = tmp_path / "attention_view.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000
    if os.environ.get("MINIBERT_ATTENTION_SCREENSHOT"):          # a manual run refreshes the docs' copy
        shutil.copyfile(shot, os.environ["MINIBERT_ATTENTION_SCREENSHOT"])


def test_the_notebook_frame_runs_its_page(browser, maps):
    """attention_frame (what notebook 04 shows with IPython.display.HTML): the page runs inside its iframe."""
    context = browser.new_context()
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_content("<h1>a notebook</h1>" + attention_frame(maps.tokens, maps.probs, maps.segment_ids))
    frame = page.frame_locator("iframe")
    T = len(maps.tokens)
    assert frame.locator("line.weight").count() == T * T
    frame.locator(f".token.query[data-index='{QUERY}']").click()
    assert frame.locator("line.weight").count() == T
    assert frame.locator(".weight-label").count() == T
    box = page.locator("iframe").bounding_box()
    assert box["height"] >= 22 * T                             # tall enough for the tokens
    assert errors == []
    context.close()
