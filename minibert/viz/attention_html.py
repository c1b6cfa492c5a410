"""An interactive attention view in one self-contained HTML page (like bertviz's head view).

    page = attention_page(tokens, probs, segment_ids, title="...")      # a str: the whole page
    write_attention_page("attention.html", tokens, probs, segment_ids)  # the same, written to a file
    attention_frame(tokens, probs, segment_ids)                         # in an <iframe>, for a notebook

tokens, segment_ids and probs (L, A, T, T) come from `minibert.apps.embed.attention_data(text,
text_pair)`; probs[l, a, i, j] is how much token i (the query) attends to token j (the key) in
layer l, head a, and each row i sums to 1.

What the page shows: the tokens twice, as queries on the left and as keys on the right, and a line
from query i to key j for every weight of the chosen layer and head, its opacity the weight. The
learner picks a layer and a head (or all heads, one colour each) with buttons; hovering a token on
the left keeps only its row (what it attends to, with the numbers), on the right only its column
(who attends to it); a click pins that choice (and is what a touch screen or a test does).
[CLS], [SEP] (and [MASK], [PAD]) are drawn in bold with a dashed outline, segment A (token type 0)
on blue and segment B (token type 1) on orange.

How the page is built: Python writes the static parts (controls, the two token columns as SVG,
the legend) and the numbers as JSON in a <script type="application/json"> element, rounded to
DECIMALS places; a short script (SCRIPT below, plain JavaScript) draws the lines from the JSON
whenever the choice changes. Nothing is loaded from the network: no fonts, no libraries.

Every drawn weight is one SVG element a test (or a curious learner, with the browser's
inspector) can read:

    <line class="weight" data-layer="2" data-head="5" data-query="1" data-key="0" data-weight="0.412">

and, with one head and one token chosen, a number beside each token on the other side
(<g class="weight-label" ...>: a <text>0.412</text> and a bar, with the same data attributes).
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import numpy

from minibert.errors import InputError
from minibert.files import write_text
from minibert.viz.figure import shorten

__all__ = ["attention_page", "write_attention_page", "attention_frame", "page_data", "DECIMALS", "MAX_TOKENS",
           "SPECIAL_TOKENS"]

DECIMALS = 3                 # weights are stored and shown to 3 decimals: 0.0005 is below what a line shows
MAX_TOKENS = 128             # 128 tokens, 6 x 12 heads: about 7 MB of JSON, and 16,384 lines per head
SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[MASK]", "[PAD]")

# The layout of the drawing, in SVG pixels: one row per token, two columns of token boxes and
# the lines between them; the weights are written beside the boxes (left of the queries, right of
# the keys).
ROW = 22                     # height of one token's row
TOP = 34                     # room for the two column headings
NUMBERS = 88                 # room beside a column for a weight (0.412) and its bar
BAR = 40                     # length of the bar of a weight of 1
GAP = 200                    # horizontal room for the lines
CHAR = 8                     # width of one character of the 13 px monospace token font (about)
TOKEN_CHARS = 18             # longer tokens are shortened (the full token shows on hover)


def _checked(tokens, probs, segment_ids):
    """(tokens as str, probs as a float64 host array, segment ids as ints), or InputError."""
    tokens = [str(t) for t in tokens]
    T = len(tokens)
    if T == 0:
        raise InputError("no tokens to draw: the text is empty")
    if T > MAX_TOKENS:
        raise InputError(f"{T} tokens are too many for the attention page (at most {MAX_TOKENS}): "
                         f"shorten the text")
    probs = numpy.asarray(probs, dtype=numpy.float64)
    if probs.ndim != 4 or probs.shape[2:] != (T, T):
        raise InputError(f"probs must have shape (layers, heads, {T}, {T}) for {T} tokens, got {probs.shape}")
    if probs.shape[0] == 0 or probs.shape[1] == 0:
        raise InputError(f"probs has no layer or no head: shape {probs.shape}")
    if not numpy.isfinite(probs).all():
        raise InputError("probs holds NaN or infinite values")
    segments = [0] * T if segment_ids is None else [int(s) for s in segment_ids]
    if len(segments) != T:
        raise InputError(f"{len(segments)} segment ids for {T} tokens")
    if any(s not in (0, 1) for s in segments):
        raise InputError(f"segment ids are 0 (first text) or 1 (second text), got {sorted(set(segments))}")
    return tokens, probs, segments


def page_data(tokens, probs, segment_ids=None) -> dict:
    """What the page embeds as JSON: tokens, segments, the sizes and probs rounded to DECIMALS."""
    tokens, probs, segments = _checked(tokens, probs, segment_ids)
    L, A = probs.shape[:2]
    return {"tokens": tokens, "segments": segments, "layers": L, "heads": A, "decimals": DECIMALS,
            "probs": numpy.round(probs, DECIMALS).tolist()}          # [layer][head][query][key]


def _json_for_script(data) -> str:
    """JSON that can stand inside <script>: <, > and & written as \\u escapes (still the same JSON)."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _token_column(tokens, segments, side, x, width) -> str:
    """One column of token boxes as SVG: <g class="token query seg-0 special" data-index=...>."""
    rows = []
    for i, (token, segment) in enumerate(zip(tokens, segments)):
        y = TOP + i * ROW
        classes = f"token {side} seg-{segment}" + (" special" if token in SPECIAL_TOKENS else "")
        anchor, text_x = ("end", x + width - 6) if side == "query" else ("start", x + 6)
        label = html.escape(shorten(token, TOKEN_CHARS))
        rows.append(
            f'<g class="{classes}" data-side="{side}" data-index="{i}" data-y="{y + ROW / 2}" tabindex="0">'
            f'<title>{html.escape(token)}: {side} {i}, segment {"AB"[segment]}</title>'
            f'<rect x="{x}" y="{y + 2}" width="{width}" height="{ROW - 4}" rx="3"></rect>'
            f'<text x="{text_x}" y="{y + ROW / 2}" text-anchor="{anchor}" dominant-baseline="central">'
            f'{label}</text></g>')
    return "\n".join(rows)


def _buttons(kind, labels) -> str:
    return "".join(f'<button type="button" class="{kind}" data-{kind}="{value}" aria-pressed="false">'
                   f'{text}</button>' for value, text in labels)


def attention_page(tokens, probs, segment_ids=None, title="attention") -> str:
    """The whole interactive page as one HTML string (see the module docstring).

    tokens: T strings; probs: (L, A, T, T) host array, rows = queries; segment_ids: T token type
    ids, 0 or 1 (None: all 0). Raises InputError for inconsistent shapes, values other than 0/1
    in segment_ids, non-finite weights or more than MAX_TOKENS tokens.
    """
    data = page_data(tokens, probs, segment_ids)
    tokens, segments, L, A, T = data["tokens"], data["segments"], data["layers"], data["heads"], len(data["tokens"])
    box = CHAR * min(TOKEN_CHARS, max(len(t) for t in tokens)) + 14      # width of a token box
    left = NUMBERS                                                      # x of the query boxes
    right = left + box + GAP                                            # x of the key boxes
    width, height = right + box + NUMBERS, TOP + T * ROW + 8
    layer_buttons = _buttons("layer", [(layer, layer) for layer in range(L)])
    head_buttons = _buttons("head", [(head, head) for head in range(A)] + [("all", "all")])
    two = 1 in segments
    return PAGE.format(
        title=html.escape(title), layer_buttons=layer_buttons, head_buttons=head_buttons,
        width=width, height=height, bar=BAR, gap_start=left + box + 4, gap_end=right - 4,
        q_x=left + box / 2, k_x=right + box / 2, heading_y=TOP - 14,
        queries=_token_column(tokens, segments, "query", left, box),
        keys=_token_column(tokens, segments, "key", right, box),
        L=L, A=A, T=T, decimals=DECIMALS,
        segments_note=("segment A (token type 0): [CLS], the first text, its [SEP]; segment B (token "
                       "type 1): the second text and the last [SEP]") if two else
                      "one text: every token is in segment A (token type 0)",
        data=_json_for_script(data), style=STYLE, script=SCRIPT)


def write_attention_page(path, tokens, probs, segment_ids=None, title="attention") -> Path:
    """Write `attention_page(...)` to path (UTF-8, its folder created); return the path."""
    page = attention_page(tokens, probs, segment_ids, title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text(path, page)                 # atomic: an open page is never half rewritten


def attention_frame(tokens, probs, segment_ids=None, title="attention", height=None) -> str:
    """The page inside an <iframe srcdoc=...>: HTML a notebook shows with IPython.display.HTML.

    The frame keeps the page's style and script apart from the notebook's. height: in pixels
    (default: enough for the tokens, the controls and the legend).
    """
    page = attention_page(tokens, probs, segment_ids, title)
    height = height or 200 + max(TOP + len(tokens) * ROW + 8, 520)   # controls + the drawing or the legend
    return (f'<iframe srcdoc="{html.escape(page, quote=True)}" style="width: 100%; height: {int(height)}px; '
            f'border: 1px solid #ddd" title="{html.escape(title, quote=True)}"></iframe>')


# -- the page: a template, its style and its script ------------------------------------------------

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 16px; color: #222; }
h1 { font-size: 18px; margin: 0 0 10px; }
.controls { margin: 4px 0; }
.controls .name { display: inline-block; width: 48px; font-weight: bold; }
button { font: 13px monospace; min-width: 30px; margin: 2px; padding: 3px 6px; border: 1px solid #999;
         border-radius: 4px; background: #f6f6f6; cursor: pointer; }
button[aria-pressed="true"] { background: #222; color: #fff; border-color: #222; }
button.head { border-left: 6px solid var(--colour); }
#status { margin: 8px 0; min-height: 2.7em; max-width: 900px; }
.main { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
svg text { font: 13px monospace; }
.heading { font: bold 12px system-ui, sans-serif; fill: #555; }
.token { cursor: pointer; outline: none; }
.token rect { fill: #dbe8f6; stroke: #9db7d5; }
.token.seg-1 rect { fill: #fde1c4; stroke: #e0a66c; }
.token.special text { font-weight: bold; }
.token.special rect { stroke: #333; stroke-dasharray: 3 2; }
.token.focused rect { stroke: #000; stroke-width: 2.5; stroke-dasharray: none; }
.token:focus-visible rect { stroke: #000; stroke-width: 2; }
line.weight { stroke-width: 2; }
#view.has-focus line.weight { stroke-width: 3; }
.weight-bar { fill: #555; }
.weight-label text { font: 11px monospace; fill: #333; }
.legend { flex: 1 1 260px; max-width: 420px; font-size: 13px; line-height: 1.4; }
.legend ul { padding-left: 18px; margin: 6px 0; }
.swatch { display: inline-block; width: 26px; height: 14px; border: 1px solid; border-radius: 3px;
          vertical-align: middle; margin-right: 4px; }
.swatch.seg-0 { background: #dbe8f6; border-color: #9db7d5; }
.swatch.seg-1 { background: #fde1c4; border-color: #e0a66c; }
.swatch.special { background: #fff; border: 1px dashed #333; }
"""

# The script: reads the JSON, remembers what the learner chose (state), and redraws the lines and
# the numbers (draw) after every click or hover.
SCRIPT = r"""
"use strict";
// probs[layer][head][query][key], rounded to data.decimals places; tokens; segments (0 or 1)
const data = JSON.parse(document.getElementById("attention-data").textContent);
const SVG = "http://www.w3.org/2000/svg";   // the SVG namespace's name: nothing is fetched from it
const linesGroup = document.getElementById("lines");
const labelsGroup = document.getElementById("labels");
const status = document.getElementById("status");
const queryTokens = document.querySelectorAll(".token.query");
const keyTokens = document.querySelectorAll(".token.key");
const view = document.getElementById("view");
const x = {gapStart: +view.dataset.gapStart, gapEnd: +view.dataset.gapEnd};
const BAR = +view.dataset.bar;             // pixels of the bar of a weight of 1

// What is chosen: a layer, a head (a number, or "all"), and the token whose row (a query) or
// column (a key) is shown: `hovered` while the mouse is on it, `pinned` after a click.
const state = {layer: 0, head: 0, hovered: null, pinned: null};

function headColour(head) {
  return `hsl(${Math.round(300 * head / Math.max(1, data.heads - 1))}, 75%, 40%)`;
}

function rowY(element) { return +element.dataset.y; }

function svgElement(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

// One weight: a line from query q (left) to key k (right), as opaque as the weight is large.
function weightLine(head, q, k, weight) {
  return svgElement("line", {
    class: "weight", x1: x.gapStart, y1: rowY(queryTokens[q]), x2: x.gapEnd, y2: rowY(keyTokens[k]),
    stroke: headColour(head), "stroke-opacity": weight,
    "data-layer": state.layer, "data-head": head, "data-query": q, "data-key": k,
    "data-weight": weight.toFixed(data.decimals),
  });
}

// The number beside a token on the other side of the chosen one, and a bar as long as the weight.
function weightLabel(head, q, k, weight, side) {
  const token = side === "key" ? keyTokens[k] : queryTokens[q];
  const box = token.querySelector("rect");
  const outward = side === "key" ? 1 : -1;                   // keys: to the right; queries: to the left
  const edge = side === "key" ? +box.getAttribute("x") + +box.getAttribute("width") : +box.getAttribute("x");
  const attributes = {"data-layer": state.layer, "data-head": head, "data-query": q, "data-key": k,
                      "data-weight": weight.toFixed(data.decimals)};
  const group = svgElement("g", {class: "weight-label", ...attributes});
  group.appendChild(svgElement("text", {
    x: edge + outward * 6, y: rowY(token), "dominant-baseline": "central",
    "text-anchor": side === "key" ? "start" : "end"}, weight.toFixed(data.decimals)));
  const barStart = edge + outward * 50;
  group.appendChild(svgElement("rect", {
    class: "weight-bar", y: rowY(token) - 4, height: 8, width: weight * BAR,
    x: side === "key" ? barStart : barStart - weight * BAR}));
  return group;
}

function draw() {
  const focus = state.hovered || state.pinned;
  const heads = state.head === "all" ? [...Array(data.heads).keys()] : [state.head];
  const T = data.tokens.length;
  const lines = document.createDocumentFragment();
  const labels = document.createDocumentFragment();
  let total = 0;
  for (const head of heads) {
    const P = data.probs[state.layer][head];                 // (T, T): rows are queries
    for (let q = 0; q < T; q++) {
      if (focus && focus.side === "query" && focus.index !== q) continue;
      for (let k = 0; k < T; k++) {
        if (focus && focus.side === "key" && focus.index !== k) continue;
        lines.appendChild(weightLine(head, q, k, P[q][k]));
        if (focus && heads.length === 1) {                   // the numbers, for one head only
          labels.appendChild(weightLabel(head, q, k, P[q][k], focus.side === "query" ? "key" : "query"));
          total += P[q][k];
        }
      }
    }
  }
  linesGroup.replaceChildren(lines);
  view.classList.toggle("has-focus", !!focus);
  labelsGroup.replaceChildren(labels);
  for (const token of document.querySelectorAll(".token")) {
    token.classList.toggle("focused", !!focus && token.dataset.side === focus.side &&
                                      +token.dataset.index === focus.index);
  }
  for (const button of document.querySelectorAll("button.layer")) {
    button.setAttribute("aria-pressed", +button.dataset.layer === state.layer);
  }
  for (const button of document.querySelectorAll("button.head")) {
    button.setAttribute("aria-pressed", button.dataset.head === String(state.head));
  }
  status.textContent = describe(focus, heads, total);
}

function describe(focus, heads, total) {
  const where = `Layer ${state.layer}, ` + (heads.length === 1 ? `head ${heads[0]}` : "all heads");
  if (!focus) {
    return `${where}: every query's attention. Hover a token on the left to see what it attends to ` +
           "(its row), on the right to see what attends to it (its column); click to keep it.";
  }
  const token = data.tokens[focus.index];
  if (heads.length > 1) return `${where}: "${token}" as a ${focus.side}; pick one head to see the numbers.`;
  if (focus.side === "query") {
    return `${where}: what "${token}" (query ${focus.index}) attends to. ` +
           `Its row sums to 1 (the rounded numbers to ${total.toFixed(data.decimals)}).`;
  }
  return `${where}: how much each token attends to "${token}" (key ${focus.index}). ` +
         `A column need not sum to 1: this one sums to ${total.toFixed(data.decimals)}.`;
}

for (const button of document.querySelectorAll("button.layer")) {
  button.addEventListener("click", () => { state.layer = +button.dataset.layer; draw(); });
}
for (const button of document.querySelectorAll("button.head")) {
  const head = button.dataset.head;
  if (head !== "all") button.style.setProperty("--colour", headColour(+head));
  button.addEventListener("click", () => { state.head = head === "all" ? "all" : +head; draw(); });
}
for (const token of document.querySelectorAll(".token")) {
  const here = {side: token.dataset.side, index: +token.dataset.index};
  const same = (a) => a && a.side === here.side && a.index === here.index;
  token.addEventListener("mouseenter", () => { state.hovered = here; draw(); });
  token.addEventListener("mouseleave", () => { state.hovered = null; draw(); });
  const toggle = () => { state.pinned = same(state.pinned) ? null : here; draw(); };
  token.addEventListener("click", toggle);
  token.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); toggle(); }
  });
}
draw();
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<h1>{title}</h1>
<div class="controls"><span class="name">layer</span>{layer_buttons}</div>
<div class="controls"><span class="name">head</span>{head_buttons}</div>
<p id="status" aria-live="polite"></p>
<div class="main">
<svg id="view" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"
     viewBox="0 0 {width} {height}" data-gap-start="{gap_start}" data-gap-end="{gap_end}" data-bar="{bar}"
     role="img" aria-label="attention lines from query tokens (left) to key tokens (right)">
<text class="heading" x="{q_x}" y="{heading_y}" text-anchor="middle">queries (attending)</text>
<text class="heading" x="{k_x}" y="{heading_y}" text-anchor="middle">keys (attended to)</text>
<g id="lines"></g>
<g id="labels"></g>
<g id="queries">
{queries}
</g>
<g id="keys">
{keys}
</g>
</svg>
<div class="legend">
<p><b>What is drawn.</b> {L} layers x {A} heads over {T} tokens. Each token stands twice: on the
left as a <i>query</i> (the token whose new vector is being computed), on the right as a
<i>key</i> (a token it can draw from). A line from query i to key j is as opaque as the
attention weight P[i, j] of the chosen layer and head: the softmax of query i's scores, so
<b>each query's weights (a row) sum to 1</b>; a key's weights (a column) need not.</p>
<ul>
<li><span class="swatch seg-0"></span><span class="swatch seg-1"></span>{segments_note}.</li>
<li><span class="swatch special"></span>special tokens: [CLS] starts the input, [SEP] ends each
text (bold, dashed outline).</li>
<li>"all": every head at once, one colour per head (the colours of the head buttons).</li>
<li>Weights are rounded to {decimals} decimals.</li>
</ul>
<p>Made by minibert from its own arrays: <code>minibert.apps.embed.attention_data</code> gives
the weights, <code>minibert.viz.attention_html</code> writes this page; nothing here is loaded
from the network.</p>
</div>
</div>
<script type="application/json" id="attention-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""
