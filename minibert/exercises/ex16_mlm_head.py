"""Exercise 16: the MLM head with the decoder tied to the word embeddings (minibert.model.heads.pretraining:
mlm_head_forward / mlm_head_backward / tied_word_embeddings_backward, used as they are)."""
from __future__ import annotations

import numpy

from minibert.exercises.base import CheckFailed, Exercise, Question
from minibert.model.heads.pretraining import mlm_head_backward, mlm_head_forward, tied_word_embeddings_backward
from minibert.ops.activations import gelu_backward, gelu_forward, gelu_tanh_forward
from minibert.ops.layer_norm import layer_norm_backward, layer_norm_forward
from minibert.ops.linear import linear_backward, linear_forward

STATEMENT = r"""
## The forward

BERT predicts a masked token from the final hidden vector $x$ at its position ($M$ positions, $(M, H)$)
with a small head whose output layer is the **input word-embedding table** $E$ $(V, H)$ itself:

$$
u = x W_t^\top + b_t, \qquad h = \operatorname{LN}(\operatorname{GELU}(u)), \qquad
\text{logits} = h\, E^\top + b_{\text{out}} \quad (M, V).
$$

The decoder has its own bias $b_{\text{out}}$ $(V,)$ but no weight of its own: "weight tying"
(Press & Wolf 2017), which BERT and its checkpoints use. A token's output vector is its input vector.

In the model, $x$ itself came from the embedding of the input tokens, $E[\text{ids}]$ (through the
encoder). So $E$ is used twice, and `tied_word_embeddings_backward` combines the two gradients it
receives: the decoder's $(V, H)$ gradient, and the gradient of the looked-up rows $E[\text{ids}]$.

You may use minibert's `linear_*`, `gelu_*` (exact GELU) and `layer_norm_*` (imported in your file).

## What to work out

- The decoder's gradients: of $h$, of $E$ (laid out as $E$, $(V, H)$), of $b_{\text{out}}$.
- The order of the backward through LayerNorm, GELU and the transform.
- The total gradient of a matrix used in two places, one of them a lookup with repeated ids.
"""

CONTRACTS = (
    ("mlm_head_forward", """x: (M, H) hidden vectors at the predicted positions   w_t: (H, H), b_t: (H,) (the transform)
    gamma, beta: (H,), eps (its LayerNorm)   word_embeddings: (V, H) (the tied decoder weight E)
    out_bias: (V,)   hidden_act: the activation's name ("gelu": the exact GELU)
    ops: minibert's signature (BertForPreTraining passes its op table, minibert/model/ops_table.py).
    The grader passes None, meaning minibert's own functions: call the ones your file imports. (The
    capstone puts your ops into the model, not this head.)
    ->  logits (M, V), cache.

    The cache must be MlmHeadCache(transform, activation, layer_norm, decoder, hidden_act, ops): the
    transform's LinearCache, GELU's cache, the LayerNorm's cache, the decoder's LinearCache (of a
    linear layer whose weight is E), hidden_act, and the op table the forward ran: REFERENCE_OPS, the
    table of the functions your file imports (the grader also runs your backward on minibert's own
    cache, which has this form).
    """),
    ("mlm_head_backward", """dlogits: (M, V), cache: MlmHeadCache
    ->  (dx (M, H), dw_t (H, H), db_t (H,), dgamma (H,), dbeta (H,), dword_embeddings (V, H), dout_bias (V,)).

    dword_embeddings is the decoder's share of E's gradient only. Each gradient has the shape of
    what it is the gradient of. In which order do you go back through the four steps?
    """),
    ("tied_word_embeddings_backward", """The gradient of E, used as the decoder weight and as the input lookup E[ids].

    ddecoder: (V, H), the decoder's gradient of E   dembedded: (..., H), the gradient of E[ids]
    ids: (...) integers in [0, V), ids.shape == dembedded.shape[:-1]
    ->  dE: (V, H), a new array (ddecoder and dembedded are left unchanged).

    How do two uses of one matrix combine, and what happens to a row looked up several times?
    """),
)

DERIVATION = r"""
## Derive it

1. **The decoder, one logit.** $\text{logit}_{mv} = \sum_j h_{mj} E_{vj} + b_v$. Write
   $\partial\,\text{logit}_{mv} / \partial E_{vj}$ and $\partial\,\text{logit}_{mv} / \partial h_{mj}$,
   then sum over $m$ and $v$ with the upstream $\overline{\text{logit}}$. Check: $\bar E$ must be
   $(V, H)$ and $\bar h$ $(M, H)$; which product of $\overline{\text{logits}}$ $(M, V)$ with $h$ or $E$
   gives each?
2. **Back down the head.** logits $\leftarrow$ $h$ $\leftarrow$ LN $\leftarrow$ GELU $\leftarrow$ $u$
   $\leftarrow$ $x$: which backward (exercises 02, 04, 05) at each step, in which order?
3. **One matrix, two uses.** If $L$ depends on $E$ through $f(E)$ and $g(E)$, what is
   $\partial L/\partial E$? (Write $E$ as two copies $E_1 = E_2 = E$ and use the chain rule.)
4. **The lookup's share.** $x_{n} = E_{\text{ids}_n}$: which rows of $\bar E$ does $\bar x_n$ reach?
   What if the same id appears three times (exercise 03)?
5. **Sanity.** At initialisation, with $h$ of unit-variance rows and small $E$, what loss do you
   expect for $V$ equally likely tokens? (The notebook's sanity cell checks it.)
"""

HINTS = (
    "Check the shapes of your gradients against their parameters: dword_embeddings is (V, H), like E, and "
    "dout_bias (V,). Then, if the decoder's gradients are right, look at the order of the backward below it.",
    "Going down the head, each step's backward takes the gradient of that step's output: the LayerNorm's "
    "backward comes before GELU's, and GELU's derivative is taken at the transform's output.",
    "A matrix used twice gets the sum of its two gradients, and a lookup's gradient adds every occurrence "
    "of an id into its row (exercise 03). docs/pretraining.md (weight tying).",
)

QUESTIONS = (
    Question("Why does tying the decoder to the input embeddings make sense for a masked language model, and "
             "what does it save in BERT-base (V = 30522, H = 768)?",
             "Input and output live in the same token space: a token's embedding is a good template for "
             "recognising it at the output, and rare tokens' output vectors get trained through their input "
             "use too. It saves a V x H matrix: 30522 x 768 = 23.4 M parameters (about a fifth of BERT-base)."),
    Question("At initialisation the MLM loss is close to $\\ln V$. Why, and what would a loss far above "
             "$\\ln V$ at step 0 tell you?",
             "With small random weights all logits are close to each other, so the softmax is near uniform "
             "over $V$ tokens and the cross-entropy is $-\\ln(1/V) = \\ln V$. A much larger loss means the "
             "logits are already large and confidently wrong: too large an initialisation, a missing scale "
             "or LayerNorm, or a bug in the head."),
)

SANITY = (
    ("**Sanity check: the loss at initialisation is about ln V.** With BERT's initialisation (std 0.02), "
     "the logits are nearly equal and the cross-entropy of your head is close to $\\ln V$.",
     "from minibert.ops.losses import cross_entropy_forward\n\n"
     "rng = np.random.default_rng(0)\nM, H, V = 64, 32, 500\n"
     "x = rng.normal(size=(M, H))\nE = rng.normal(size=(V, H)) * 0.02\n"
     "logits, _ = mine.mlm_head_forward(x, rng.normal(size=(H, H)) * 0.02, np.zeros(H), np.ones(H), "
     "np.zeros(H), 1e-12, E, np.zeros(V))\n"
     "loss, _ = cross_entropy_forward(logits, rng.integers(0, V, size=M))\n"
     "print(f\"loss {float(loss):.3f}, ln V = {np.log(V):.3f}\")"),
)

EPS = 1e-12


def _head_inputs(t, m, hidden, vocab):
    x = t.rng.normal(size=(m, hidden))
    w_t = t.rng.normal(size=(hidden, hidden)) * 0.4
    b_t = t.rng.normal(size=hidden) * 0.3
    gamma = 1.0 + t.rng.normal(size=hidden) * 0.3
    beta = t.rng.normal(size=hidden) * 0.3
    word = t.rng.normal(size=(vocab, hidden)) * 0.5
    bias = t.rng.normal(size=vocab) * 0.3
    return x, w_t, b_t, gamma, beta, word, bias


def _forward_variant(x, w_t, b_t, gamma, beta, word, bias, kind):
    u = (x @ w_t + b_t) if kind == "w_t transposed" else linear_forward(x, w_t, b_t)[0]
    if kind == "LayerNorm before GELU":
        h = gelu_forward(layer_norm_forward(u, gamma, beta, EPS)[0])[0]
    elif kind == "no GELU":
        h = layer_norm_forward(u, gamma, beta, EPS)[0]
    elif kind == "tanh GELU":
        h = layer_norm_forward(gelu_tanh_forward(u)[0], gamma, beta, EPS)[0]
    elif kind == "no LayerNorm":
        h = gelu_forward(u)[0]
    else:
        h = layer_norm_forward(gelu_forward(u)[0], gamma, beta, EPS)[0]
    if kind == "no transform":
        h = layer_norm_forward(gelu_forward(x)[0], gamma, beta, EPS)[0]
    logits = h @ word.T
    return logits if kind == "no decoder bias" else logits + bias


FORWARD_MISTAKES = {
    "w_t transposed": "the transform's weight is used transposed: weights are stored (out, in) (exercise 02).",
    "LayerNorm before GELU": "the order is dense, GELU, then LayerNorm (BERT's transform): you normalised first.",
    "no GELU": "the GELU between the transform and its LayerNorm is missing.",
    "tanh GELU": "that is the tanh approximation of GELU; hidden_act=\"gelu\" is the exact (erf) form.",
    "no LayerNorm": "the transform's LayerNorm (gamma, beta) is missing.",
    "no transform": "the transform dense layer (w_t, b_t) is missing: the head is dense, GELU, LayerNorm, decoder.",
    "no decoder bias": "the decoder's own bias out_bias is missing (the weight is tied, the bias is not).",
}


def _forward_check(t, m, hidden, vocab):
    args = _head_inputs(t, m, hidden, vocab)
    x, w_t, b_t, gamma, beta, word, bias = args
    expected = mlm_head_forward(x, w_t, b_t, gamma, beta, EPS, word, bias)[0]
    got = t.call("mlm_head_forward", x.copy(), w_t.copy(), b_t.copy(), gamma.copy(), beta.copy(), EPS,
                 word.copy(), bias.copy())
    logits = t.unpack(got, "mlm_head_forward", "logits, cache")[0]
    t.compare("logits", logits, expected, candidates=[
        ((lambda kind=kind: _forward_variant(*args, kind)), text) for kind, text in FORWARD_MISTAKES.items()],
        shape_hint=f"logits are (M, V) = ({m}, {vocab}): one score per predicted position and vocabulary entry.",
        hint="follow the four steps of the statement and check each one's shape.")


def _backward_variants(dlogits, cache):
    """{kind: the seven gradients as a known mistake computes them}, from minibert's cache."""
    dh, dword, dbias = linear_backward(dlogits, cache.decoder)
    dn, dgamma, dbeta = layer_norm_backward(dh, cache.layer_norm)
    du = gelu_backward(dn, cache.activation)
    dx, dw_t, db_t = linear_backward(du, cache.transform)
    out = {}
    du_skip_ln = gelu_backward(dh, cache.activation)
    out["LayerNorm backward skipped"] = (*linear_backward(du_skip_ln, cache.transform), dgamma, dbeta, dword, dbias)
    out["GELU backward skipped"] = (*linear_backward(dn, cache.transform), dgamma, dbeta, dword, dbias)
    out["dgamma and dbeta swapped"] = (dx, dw_t, db_t, dbeta, dgamma, dword, dbias)
    return out


BACKWARD_MISTAKES = {
    "LayerNorm backward skipped": "the gradient reaches GELU without going back through the LayerNorm: the "
                                  "LayerNorm's backward comes right after the decoder's.",
    "GELU backward skipped": "the GELU's backward is missing between the LayerNorm's and the transform's.",
    "dgamma and dbeta swapped": "dgamma and dbeta are swapped: which of the two multiplies the normalised value?",
}

NAMES = ("dx", "dw_t", "db_t", "dgamma", "dbeta", "dword_embeddings", "dout_bias")


def _compare(t, got, ref, variants, *, loss=None, wrt=None, failed=False):
    ref_dword = ref[5]
    m = ref[0].shape[0]
    extra = {"dword_embeddings": [(ref_dword.T, "dword_embeddings is transposed: it is laid out as E, (V, H).")],
             "dx": [], "dw_t": [(ref[1].T, "dw_t is transposed: it has w_t's (out, in) layout.")]}
    shape_hints = {"dword_embeddings": "dword_embeddings is laid out as E, (V, H) (not transposed).",
                   "dout_bias": f"dout_bias has out_bias's shape (V,): sum over the {m} positions.",
                   "db_t": "db_t has b_t's shape (H,): sum over the positions."}
    order = (5, 6, 3, 4, 1, 2, 0)        # backward order: the decoder, LayerNorm, the transform, x
    for i in order:
        name = NAMES[i]
        cands = extra.get(name, []) + [(v[i], BACKWARD_MISTAKES[k]) for k, v in variants.items()]
        hint = "re-derive the step of the backward that produces this gradient."
        if loss is None:
            t.compare(name, got[i], ref[i], candidates=cands, shape_hint=shape_hints.get(name, ""), hint=hint)
        else:
            t.gradient(name, got[i], ref[i], loss, wrt[i], candidates=cands, shape_hint=shape_hints.get(name, ""),
                       hint=hint, forward_failed=failed, entries=8)


def _backward_check(t, m, hidden, vocab, forward_ok, on_reference_cache=False):
    args = _head_inputs(t, m, hidden, vocab)
    x, w_t, b_t, gamma, beta, word, bias = args
    dlogits = t.rng.normal(size=(m, vocab))
    ref_cache = mlm_head_forward(x, w_t, b_t, gamma, beta, EPS, word, bias)[1]
    ref = mlm_head_backward(dlogits, ref_cache)
    variants = _backward_variants(dlogits, ref_cache)
    if on_reference_cache:
        got = t.unpack(t.call("mlm_head_backward", dlogits.copy(), ref_cache), "mlm_head_backward", ", ".join(NAMES))
        _compare(t, got, ref, variants)
        return
    _, cache, forward, own = t.forward_for_backward("mlm_head_forward", x.copy(), w_t.copy(), b_t.copy(),
                                                    gamma.copy(), beta.copy(), EPS, word.copy(), bias.copy())
    got = t.unpack(t.call("mlm_head_backward", dlogits.copy(), cache), "mlm_head_backward", ", ".join(NAMES))

    def loss():
        return float((forward(x.copy(), w_t.copy(), b_t.copy(), gamma.copy(), beta.copy(), EPS, word.copy(),
                              bias.copy()) * dlogits).sum())

    wrt = (x, w_t, b_t, gamma, beta, word, bias)
    _compare(t, got, ref, variants, loss=loss, wrt=wrt, failed=own and not forward_ok)


def _tied_candidates(ddecoder, dembedded, ids):
    flat, rows = ids.reshape(-1), dembedded.reshape(-1, dembedded.shape[-1])

    def assigned():
        out = ddecoder.copy()
        out[flat] += rows                  # buffered: a repeated id keeps one of its rows
        return out

    def lookup_only():
        out = numpy.zeros_like(ddecoder)
        numpy.add.at(out, flat, rows)
        return out

    return [
        (ddecoder, "only the decoder's gradient: E was also looked up for the input, and that gradient adds."),
        (lookup_only, "only the lookup's gradient: E is also the decoder's weight, whose gradient adds."),
        (assigned, "a repeated id counts once: fancy-index `+=` is buffered, so an id that occurs k times adds "
                   "only one of its k rows (exercise 03)."),
    ]


def _tied_check(t, shape, vocab, hidden):
    ids = t.rng.integers(0, vocab, size=shape)
    ids.reshape(-1)[:3] = ids.reshape(-1)[0]          # an id that occurs (at least) three times
    ddecoder = t.rng.normal(size=(vocab, hidden))
    dembedded = t.rng.normal(size=(*shape, hidden))
    expected = tied_word_embeddings_backward(ddecoder, dembedded, ids)
    mine_dec, mine_emb = ddecoder.copy(), dembedded.copy()
    got = t.call("tied_word_embeddings_backward", mine_dec, mine_emb, ids.copy())
    t.compare("dE", got, expected, candidates=_tied_candidates(ddecoder, dembedded, ids),
              shape_hint=f"dE has E's shape (V, H) = ({vocab}, {hidden}).",
              hint="E was used twice; each use sends it a gradient.")
    if not (numpy.array_equal(mine_dec, ddecoder) and numpy.array_equal(mine_emb, dembedded)):
        raise CheckFailed("tied_word_embeddings_backward changed one of its inputs (ddecoder or dembedded) in "
                          "place: dE is right, but the caller's array now holds something else.",
                          "start from a copy of ddecoder and add into the copy.")


def _tied_model_check(t, forward_ok):
    """E used twice for real: x = E[ids] -> head -> logits; the total dE by finite differences of that."""
    m, hidden, vocab = 6, 5, 11
    _, w_t, b_t, gamma, beta, word, bias = _head_inputs(t, m, hidden, vocab)
    ids = t.rng.integers(0, vocab, size=m)
    ids[:2] = ids[2]
    dlogits = t.rng.normal(size=(m, vocab))
    _, cache, forward, own = t.forward_for_backward("mlm_head_forward", word[ids], w_t, b_t, gamma, beta, EPS,
                                                    word.copy(), bias)
    grads = t.unpack(t.call("mlm_head_backward", dlogits.copy(), cache), "mlm_head_backward", ", ".join(NAMES))
    total = t.call("tied_word_embeddings_backward", numpy.asarray(grads[5]).copy(), numpy.asarray(grads[0]).copy(),
                   ids.copy())
    ref_cache = mlm_head_forward(word[ids], w_t, b_t, gamma, beta, EPS, word, bias)[1]
    ref = mlm_head_backward(dlogits, ref_cache)
    expected = tied_word_embeddings_backward(ref[5], ref[0], ids)

    def loss():
        return float((forward(word[ids], w_t, b_t, gamma, beta, EPS, word.copy(), bias) * dlogits).sum())

    t.gradient("dE (the whole tied gradient)", total, expected, loss, word, forward_failed=own and not forward_ok,
               candidates=[(ref[5], "the total is the decoder's share only: the input lookup's gradient adds.")],
               hint="E was used twice; each use sends it a gradient.")


def check(t):
    with t.check("forward: x (7, 10), V = 23"):
        _forward_check(t, 7, 10, 23)
    with t.check("forward: a single position, x (1, 6), V = 9"):
        _forward_check(t, 1, 6, 9)
    forward_ok = all(r.status == "pass" for r in t.results if r.title.startswith("forward"))
    with t.check("backward: the seven gradients, x (7, 10), V = 23"):
        _backward_check(t, 7, 10, 23, forward_ok)
    with t.check("backward on minibert's own cache: x (4, 6), V = 13"):
        _backward_check(t, 4, 6, 13, forward_ok, on_reference_cache=True)
    with t.check("tied_word_embeddings_backward: ids (3, 5) with a repeated id, V = 17"):
        _tied_check(t, (3, 5), 17, 4)
    with t.check("the tied table end to end: x = E[ids] -> head -> logits, dE against finite differences"):
        _tied_model_check(t, forward_ok)


EXERCISE = Exercise(
    number=16, name="mlm_head", title="the MLM head and the decoder tied to the word embeddings",
    functions=(mlm_head_forward, mlm_head_backward, tied_word_embeddings_backward),
    imports="import numpy as np\n\n"
            "from minibert.model.heads.pretraining import MlmHeadCache          # the cache your forward returns\n"
            "from minibert.model.ops_table import REFERENCE_OPS                 # the op table your cache records\n"
            "from minibert.ops.activations import gelu_backward, gelu_forward     # you may use these\n"
            "from minibert.ops.layer_norm import layer_norm_backward, layer_norm_forward\n"
            "from minibert.ops.linear import linear_backward, linear_forward",
    minutes=50,
    assesses="the MLM transform (dense, GELU, LayerNorm) and its backward in order; the decoder's (V, H) "
             "gradient; one matrix used twice gets the sum of two gradients; scatter-add over repeated ids; "
             "the loss at initialisation against ln V",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/pretraining.md",), notebooks=("03_mlm_nsp.ipynb",),
    contracts=CONTRACTS, derivation=DERIVATION, questions=QUESTIONS, sanity=SANITY,
)
