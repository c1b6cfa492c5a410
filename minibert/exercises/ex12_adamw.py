"""Exercise 12: one AdamW step (minibert.train.optim.adamw_step)."""
from __future__ import annotations

import math

import numpy

from minibert.exercises.base import CheckFailed, Exercise, Question, fmt_index
from minibert.train.optim import adamw_step, decays

STATEMENT = r"""
## The update

AdamW keeps two running averages per parameter, of the gradient ($m$) and of its square ($v$), and
moves each parameter by $m$ scaled by $1/\sqrt v$: a step of about `lr` in every coordinate,
whatever the size of its gradient. For step $t = 1, 2, \dots$ and each parameter $p$ with gradient
$g$ (torch.optim.AdamW):

$$
\begin{aligned}
m &\leftarrow \beta_1 m + (1 - \beta_1)\, g, \qquad v \leftarrow \beta_2 v + (1 - \beta_2)\, g^2, \\
p &\leftarrow p\,(1 - \text{lr}\cdot\text{wd}) \quad \text{(decoupled weight decay, before the Adam step)}, \\
p &\leftarrow p - \text{lr}\, \frac{\hat m}{\sqrt{\hat v} + \varepsilon}, \qquad
\hat m = \frac{m}{1 - \beta_1^t}, \quad \hat v = \frac{v}{1 - \beta_2^t}.
\end{aligned}
$$

Google's BERT optimizer (`variant="google"`) has no bias correction and adds the decay to the
direction: $p \leftarrow p - \text{lr}\,\big(m / (\sqrt v + \varepsilon) + \text{wd}\cdot p\big)$.

Two rules both references follow:

- **No weight decay for biases and LayerNorm parameters** (names containing `bias` or `LayerNorm`):
  shrinking a LayerNorm gain towards 0 or a bias towards 0 is not a useful prior.
- **Decoupled**: the decay never enters $g$, so it does not pass through $m$ and $v$. Adding
  $\text{wd}\cdot p$ to the gradient is Adam with L2 regularisation, a different optimizer (the
  decay of a parameter with large gradients would be divided away by $\sqrt v$).

## Your function

`adamw_step(params, grads, m, v, t, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
variant="torch")`: one step for every name in `m` (frozen parameters have no moments and are
skipped), updating `params[name]`, `m[name]` and `v[name]` **in place** (the model holds these
arrays).
"""

HINTS = (
    "Three things to get right before any formula: which names to visit (a frozen parameter is in params "
    "and grads but not in m), updating the model's arrays themselves (a name bound to a new array leaves "
    "the model's array unchanged), and which names are not decayed.",
    "Order matters: the moments first (with the raw gradient), then the decay on the parameter, then the "
    "Adam step. Where eps goes, and whether the bias correction touches m, v, or the step, decide which "
    "variant you are computing: write both variants' update side by side before coding.",
    "If only the parameters differ and by a tiny amount, look at eps's place and at the order of decay and "
    "step; if they differ from step 1 by a factor, look at the bias correction. docs/pretraining.md, "
    "'6. AdamW'.",
)

CONTRACTS = (
    ("adamw_step", """One AdamW step, in place, for every parameter that has moments.

    params, grads: dict name -> float array (the model's own arrays: update params[name] in place).
    m, v: dict name -> array of the parameter's shape: the first and second moments, updated in place.
        A frozen parameter is in params and grads but has no entry in m and v: it is not touched.
    t: the step number, 1 for the first step.
    lr, betas = (beta1, beta2), eps, weight_decay: the hyper-parameters of this step.
    variant: "torch" (torch.optim.AdamW) or "google" (google-research/bert's optimizer): the two update
        rules of the statement.

    Returns None. No weight decay for a name containing "bias" or "LayerNorm".

    To think through: what m and v hold after the first step from zeros, and what the bias correction
    must do about it; where the decay enters (and where it must not); what the very first step's size
    is in each variant.
    """),
)

DERIVATION = r"""
## Thinking it through

**1. The moments from zero.** Start from $m_0 = v_0 = 0$ and compute $m_1$ and $v_1$ for one
coordinate with gradient $g_1$ and $\beta_1 = 0.9$, $\beta_2 = 0.999$. Compared with $g_1$ and
$g_1^2$, how biased are they? Generalise: if every $g_t$ had the same mean, what is the mean of $m_t$?
Which factor undoes that, and for $v$?

**2. The first step's size.** With the bias correction, compute $\hat m_1 / \sqrt{\hat v_1}$ (ignore
eps). Does it depend on the size of $g_1$? Without the correction (Google's variant), what is the
same ratio? Which of the two steps is larger, and by what factor?

**3. Where eps goes.** Compare $\sqrt{\hat v} + \varepsilon$ and $\sqrt{\hat v + \varepsilon}$ for a
coordinate whose gradient is tiny ($\hat v = 10^{-12}$, $\varepsilon = 10^{-8}$): how large is the step
in each case? The statement fixes one; they differ most where gradients vanish.

**4. The decay.** Write the update of a parameter with L2 in the gradient ($g + \text{wd}\,p$) and with
decoupled decay. In the L2 version, what divides the decay term? For a coordinate with large
gradients, is it decayed more or less than one with small gradients? Which does AdamW want?

**5. Edge cases.** A frozen parameter (in params, not in m); names with "bias" or "LayerNorm"; the
caller holding the arrays (in place!); t counting from 1.

**Check on paper**: after one torch step from zeros with wd = 0, every coordinate with a non-zero
gradient moves by almost exactly lr, against the sign of its gradient.

When you are done, open the solution page on purpose: `docs/exercises/solutions/12_adamw.md`.
"""

QUESTIONS = (
    Question(
        "Why does AdamW *decouple* the weight decay instead of adding $\\text{wd}\\cdot p$ to the gradient?",
        "Added to the gradient (L2), the decay passes through m and v and is divided by $\\sqrt{\\hat v}$ "
        "like the gradient: coordinates with large gradients are barely decayed, those with small ones "
        "decayed a lot, so the regulariser depends on the gradient history. Decoupled decay shrinks every "
        "decayed coordinate by the same factor $1 - \\text{lr}\\cdot\\text{wd}$ per step, independent of m "
        "and v (Loshchilov and Hutter), which is what weight decay is meant to be and generalises better "
        "with Adam."),
    Question(
        "What are $m_1$ and $v_1$ after the first step from zero, and what would the first steps look like "
        "without the bias correction?",
        "$m_1 = (1 - \\beta_1) g_1$ (a tenth of the gradient) and $v_1 = (1 - \\beta_2) g_1^2$ (a "
        "thousandth of its square): both biased towards 0, v much more. Corrected, $\\hat m_1 / "
        "\\sqrt{\\hat v_1} = \\operatorname{sign}(g_1)$, a step of lr per coordinate. Uncorrected, the ratio "
        "is $0.1 / \\sqrt{0.001} \\approx 3.16$: the first steps are about 3 times too large (Google's "
        "variant relies on the warm-up to absorb this)."),
    Question(
        "Why no weight decay for biases and LayerNorm parameters?",
        "Decay pulls parameters towards 0. A LayerNorm gain starts at 1 and scales the normalised "
        "activations; pulling it to 0 shrinks the layer's output for no benefit. Biases and LayerNorm "
        "shifts are few and do not cause overfitting the way large weight matrices do; a prior that they "
        "are 0 is not useful. Both references exclude them by name."),
)

SANITY = (
    ("**Sanity: the first step moves every coordinate by about lr.** With the bias correction and no "
     "decay, $|\\Delta p| \\approx$ lr whatever the gradient's size.",
     "g = np.array([1e-3, 1.0, -50.0])\n"
     "params, m, v = {\"w\": np.zeros(3)}, {\"w\": np.zeros(3)}, {\"w\": np.zeros(3)}\n"
     "mine.adamw_step(params, {\"w\": g}, m, v, 1, 0.01, weight_decay=0.0)\n"
     "print(\"first step:\", params[\"w\"], \"(expected about -0.01 * sign(g))\")"),
)

SHAPES = {
    "embeddings.word_embeddings.weight": (5, 3),
    "embeddings.LayerNorm.weight": (3,),
    "embeddings.LayerNorm.bias": (3,),
    "encoder.layer.0.attention.self.query.weight": (4, 3),
    "encoder.layer.0.attention.self.query.bias": (4,),
    "encoder.layer.0.output.LayerNorm.weight": (3,),
    "cls.predictions.bias": (5,),
    "pooler.dense.weight": (2, 3),          # frozen in the checks: no moments, never updated
}
FROZEN = "pooler.dense.weight"


def _state(rng):
    params = {name: rng.normal(size=shape) for name, shape in SHAPES.items()}
    grads = [{name: rng.normal(size=shape) * scale for name, shape in SHAPES.items()} for scale in (1.0, 0.01, 3.0)]
    m = {name: numpy.zeros(shape) for name, shape in SHAPES.items() if name != FROZEN}
    v = {name: numpy.zeros(shape) for name, shape in SHAPES.items() if name != FROZEN}
    return params, grads, m, v


def _copy(d):
    return {k: a.copy() for k, a in d.items()}


def _variant_step(params, g_all, m, v, t, lr, betas, eps, wd, variant, mistake):
    """One step as a known mistake computes it (on the dicts, in place)."""
    b1, b2 = betas
    if mistake == "betas swapped":
        b1, b2 = b2, b1
    for name in m:
        p, g = params[name], g_all[name]
        decay = wd if (decays(name) or mistake == "decay all") else 0.0
        if mistake == "l2":
            g = g + decay * p
        m[name] = b1 * m[name] + (1 - b1) * g
        v[name] = b2 * v[name] + (1 - b2) * (numpy.abs(g) if mistake == "v not squared" else g * g)
        if variant == "torch":
            if decay and mistake not in ("l2", "decay after"):
                p *= 1 - (1.0 if mistake == "decay without lr" else lr) * decay
            if mistake == "no correction":
                step = lr * m[name] / (numpy.sqrt(v[name]) + eps)
            elif mistake == "eps inside":
                step = lr / (1 - b1 ** t) * m[name] / numpy.sqrt(v[name] / (1 - b2 ** t) + eps)
            elif mistake == "v correction not rooted":
                step = lr / (1 - b1 ** t) * m[name] / (numpy.sqrt(v[name]) / (1 - b2 ** t) + eps)
            else:
                step = lr / (1 - b1 ** t) * m[name] / (numpy.sqrt(v[name]) / math.sqrt(1 - b2 ** t) + eps)
            p -= step
            if decay and mistake == "decay after":
                p *= 1 - lr * decay
        else:
            if mistake == "correction":
                update = (m[name] / (1 - b1 ** t)) / (numpy.sqrt(v[name] / (1 - b2 ** t)) + eps)
            elif mistake == "eps inside":
                update = m[name] / numpy.sqrt(v[name] + eps)
            else:
                update = m[name] / (numpy.sqrt(v[name]) + eps)
            if decay and mistake != "l2":
                update = update + decay * p
            p -= lr * update


MISTAKES = {
    "eps inside": "eps is in the wrong place: it goes *outside* the square root (added to the root of the "
                  "second moment). Inside, it changes the step most where gradients are tiny.",
    "decay all": "weight decay is applied to LayerNorm and bias parameters too: both references skip every name "
                 "that contains \"bias\" or \"LayerNorm\".",
    "l2": "weight decay is added to the gradient, so it goes through m and v: that is Adam with L2 "
          "regularisation. AdamW decays the parameter itself, outside the moments (decoupled).",
    "no correction": "the bias correction is missing (torch variant): the first steps are too large by about "
                     "(1 - beta1) / sqrt(1 - beta2).",
    "decay after": "the decay is applied after the Adam step: torch shrinks the parameter first, then steps "
                   "(a difference of order lr x wd x step).",
    "decay without lr": "the decay shrinks by wd per step instead of lr x wd: the decay is scaled by the "
                        "learning rate.",
    "correction": "Google's variant has no bias correction: its m and v are used as they are.",
    "betas swapped": "beta1 and beta2 are swapped: beta1 (0.9) averages the gradient, beta2 (0.999) its square.",
    "v not squared": "the second moment averages |g| instead of the squared gradient.",
    "v correction not rooted": "the second moment's bias correction enters through its square root: you divided "
                               "the root by the whole correction factor.",
}


def _close(a, b) -> bool:
    scale = max(float(numpy.max(numpy.abs(b), initial=0.0)), 1e-3)
    return a.shape == b.shape and float(numpy.max(numpy.abs(a - b), initial=0.0)) <= 1e-12 * scale


def _diagnose(mine: dict, variants: dict, i: int, ref: dict) -> str:
    """The mistake whose state matches the learner's on every parameter (to 1e-12), or ''.

    Only mistakes that change this part of the state (params, m or v) in this run can match."""
    for k, state in variants.items():
        if all(_close(state[i][name], ref[i][name]) for name in state[i]):
            continue
        if all(_close(numpy.asarray(mine[i][name], dtype=float), state[i][name]) for name in state[i]):
            return MISTAKES[k]
    return ""


def _compare_state(t, mine, ref, variants, step):
    for what, i in (("params", 0), ("m", 1), ("v", 2)):
        for name in ref[i]:
            got = t.array(f"{what}[{name!r}]", mine[i][name])
            want = ref[i][name]
            if got.shape != want.shape:
                raise CheckFailed(f"{what}[{name!r}] has shape {got.shape} after step {step}; expected {want.shape}.")
            err = numpy.abs(got.astype(float) - want)
            scale = max(float(numpy.max(numpy.abs(want))), 1e-3)
            if not numpy.all(numpy.isfinite(got)) or float(err.max()) > 1e-9 * scale:
                index = numpy.unravel_index(int(numpy.nanargmax(numpy.where(numpy.isfinite(err), err, numpy.inf))),
                                            err.shape)
                hint = _diagnose(mine, variants, i, ref)
                if not hint and what != "params":
                    hint = ("the moments are running averages of the raw gradient and of its square, with beta1 "
                            "and beta2, updated in place.")
                raise CheckFailed(
                    f"{what}[{name!r}] after step {step}: largest error {float(err[index]):.3g} at "
                    f"{fmt_index(index)} (yours {float(got[index]):.12g}, expected {float(want[index]):.12g}).",
                    hint or "compare your update with the statement's, line by line: the moments, the decay, "
                            "the bias correction, eps.")


def _run(t, variant, lr=0.01, betas=(0.9, 0.999), eps=1e-8, wd=0.1, tiny=False):
    rng = numpy.random.default_rng(int(t.rng.integers(2 ** 31)))
    params, grads, m, v = _state(rng)
    if tiny:                                    # vanishing gradients: where eps's place matters most
        grads = [{k: g * 1e-5 for k, g in step.items()} for step in grads]
    ref = (_copy(params), _copy(m), _copy(v))
    mine = (_copy(params), _copy(m), _copy(v))
    arrays = {name: a for name, a in mine[0].items()}          # the model's arrays: must be updated in place
    variants = {k: (_copy(params), _copy(m), _copy(v)) for k in MISTAKES}
    for step, g in enumerate(grads, start=1):
        adamw_step(ref[0], g, ref[1], ref[2], step, lr, betas, eps, wd, variant)
        for k, state in variants.items():
            _variant_step(state[0], g, state[1], state[2], step, lr, betas, eps, wd, variant, k)
        try:
            t.call("adamw_step", mine[0], _copy(g), mine[1], mine[2], step, lr, betas, eps, wd, variant)
        except CheckFailed as failure:
            if "KeyError" in failure.message and FROZEN in failure.message:
                failure.hint = ("a frozen parameter is in params and grads but has no moments: visit only the "
                                "names that have them.")
            raise
        for name in SHAPES:
            if mine[0][name] is not arrays[name]:
                raise CheckFailed(f"params[{name!r}] was replaced by a new array at step {step}.",
                                  "the model keeps using its own arrays: change their contents in place, never "
                                  "bind the name to a new array.")
        if not numpy.array_equal(mine[0][FROZEN], params[FROZEN]):
            raise CheckFailed(f"the frozen parameter {FROZEN!r} (it has no entry in m) changed at step {step}.",
                              "a frozen parameter has no moments and is not updated: visit only the names in m.")
        _compare_state(t, mine, ref, variants, step)
    t.note(f"{len(grads)} steps, {len(SHAPES) - 1} parameters")


def check(t):
    with t.check("torch variant: 3 steps, lr 0.01, weight decay 0.1, biases/LayerNorm and a frozen parameter"):
        _run(t, "torch")
    with t.check("google variant: 3 steps, eps 1e-6"):
        _run(t, "google", eps=1e-6)
    with t.check("torch variant: betas (0.8, 0.95), lr 0.1, no weight decay"):
        _run(t, "torch", lr=0.1, betas=(0.8, 0.95), wd=0.0)
    with t.check("torch variant: vanishing gradients (1e-5), where eps's place matters"):
        _run(t, "torch", tiny=True)


EXERCISE = Exercise(
    number=12, name="adamw", title="one AdamW step: moments, bias correction, decoupled weight decay",
    functions=(adamw_step,),
    imports="import math\n\nimport numpy as np",
    minutes=35,
    assesses="Adam's moments and bias correction; decoupled weight decay (AdamW) vs L2 in the gradient; no decay "
             "for biases and LayerNorm; in-place updates of shared arrays; torch vs Google variants",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/pretraining.md",), notebooks=("03_mlm_nsp.ipynb",),
    contracts=CONTRACTS, derivation=DERIVATION, questions=QUESTIONS, sanity=SANITY,
)
