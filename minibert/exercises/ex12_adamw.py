"""Exercise 12: one AdamW step (minibert.train.optim.adamw_step)."""
from __future__ import annotations

import math

import numpy

from minibert.exercises.base import CheckFailed, Exercise
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

## What to work out

- Why the bias correction? (What are $m$ and $v$ after the first step, with $m_0 = v_0 = 0$?)
- How large is the very first step, $\hat m / \sqrt{\hat v}$ at $t = 1$?

## Your function

`adamw_step(params, grads, m, v, t, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
variant="torch")`: one step for every name in `m` (frozen parameters have no moments and are
skipped), updating `params[name]`, `m[name]` and `v[name]` **in place** (the model holds these
arrays).
"""

HINTS = (
    "Loop `for name in m:`; with `p = params[name]`, update in place: `p *= ...`, `p -= ...`, "
    "`m[name] *= beta1; m[name] += (1 - beta1) * g` (a new array assigned to `p` would leave the model's "
    "array unchanged).",
    "Decide the decay per name: 0 when \"bias\" or \"LayerNorm\" is in the name, else weight_decay. "
    "Apply it to p directly, never to g.",
    "torch: `p *= 1 - lr * wd`, then `p -= lr / (1 - beta1**t) * m / (np.sqrt(v) / math.sqrt(1 - beta2**t) + eps)`. "
    "google: `p -= lr * (m / (np.sqrt(v) + eps) + wd * p)`.",
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
    for name in m:
        p, g = params[name], g_all[name]
        decay = wd if (decays(name) or mistake == "decay all") else 0.0
        if mistake == "l2":
            g = g + decay * p
        m[name] = b1 * m[name] + (1 - b1) * g
        v[name] = b2 * v[name] + (1 - b2) * g * g
        if variant == "torch":
            if decay and mistake not in ("l2", "decay after"):
                p *= 1 - lr * decay
            if mistake == "no correction":
                step = lr * m[name] / (numpy.sqrt(v[name]) + eps)
            elif mistake == "eps inside":
                step = lr / (1 - b1 ** t) * m[name] / numpy.sqrt(v[name] / (1 - b2 ** t) + eps)
            else:
                step = lr / (1 - b1 ** t) * m[name] / (numpy.sqrt(v[name]) / math.sqrt(1 - b2 ** t) + eps)
            p -= step
            if decay and mistake == "decay after":
                p *= 1 - lr * decay
        else:
            if mistake == "correction":
                update = (m[name] / (1 - b1 ** t)) / (numpy.sqrt(v[name] / (1 - b2 ** t)) + eps)
            else:
                update = m[name] / (numpy.sqrt(v[name]) + eps)
            if decay and mistake != "l2":
                update = update + decay * p
            p -= lr * update


MISTAKES = {
    "decay all": "weight decay is applied to LayerNorm and bias parameters too: skip it for every name that "
                 "contains \"bias\" or \"LayerNorm\" (both references do).",
    "l2": "weight decay is added to the gradient (g + wd * p), so it goes through m and v: that is Adam with L2 "
          "regularisation. AdamW decays the parameter itself, p *= 1 - lr * wd, outside the moments.",
    "no correction": "the bias correction is missing: divide m by (1 - beta1^t) and v by (1 - beta2^t) "
                     "(torch variant).",
    "eps inside": "eps is added after the square root: sqrt(v_hat) + eps, not sqrt(v_hat + eps).",
    "decay after": "apply the decay before the Adam step (p *= 1 - lr * wd, then p -= ...), as torch does.",
    "correction": "Google's variant has no bias correction: m / (sqrt(v) + eps) as they are.",
}


def _run(t, variant, lr=0.01, betas=(0.9, 0.999), eps=1e-8, wd=0.1, seed=1):
    rng = numpy.random.default_rng(seed)
    params, grads, m, v = _state(rng)
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
                failure.hint = ("loop over the names in m (`for name in m:`): a frozen parameter is in params "
                                "and grads but has no moments.")
            raise
        for name in SHAPES:
            if mine[0][name] is not arrays[name]:
                raise CheckFailed(f"params[{name!r}] was replaced by a new array at step {step}.",
                                  "update in place (p -= ..., p *= ...): the model keeps using its own arrays.")
        if not numpy.array_equal(mine[0][FROZEN], params[FROZEN]):
            raise CheckFailed(f"the frozen parameter {FROZEN!r} (it has no entry in m) changed at step {step}.",
                              "loop over the names in m: a frozen parameter has no moments and is not updated.")
        for what, i in (("params", 0), ("m", 1), ("v", 2)):
            for name in ref[i]:
                candidates = [(variants[k][i][name], hint) for k, hint in MISTAKES.items()]
                try:
                    t.compare(f"{what}[{name!r}] after step {step}", mine[i][name], ref[i][name],
                              candidates=candidates, tolerance=1e-9)
                except CheckFailed as failure:
                    if what != "params" and not failure.hint:
                        failure.hint = ("m = beta1 m + (1 - beta1) g and v = beta2 v + (1 - beta2) g^2, in place, "
                                        "with the raw gradient g.")
                    raise
    t.note(f"{len(grads)} steps, {len(SHAPES) - 1} parameters")


def check(t):
    with t.check("torch variant: 3 steps, lr 0.01, weight decay 0.1, biases/LayerNorm and a frozen parameter"):
        _run(t, "torch")
    with t.check("google variant: 3 steps, eps 1e-6"):
        _run(t, "google", eps=1e-6, seed=2)
    with t.check("torch variant: betas (0.8, 0.95), lr 0.1, no weight decay"):
        _run(t, "torch", lr=0.1, betas=(0.8, 0.95), wd=0.0, seed=3)


EXERCISE = Exercise(
    number=12, name="adamw", title="one AdamW step: moments, bias correction, decoupled weight decay",
    functions=(adamw_step,),
    imports="import math\n\nimport numpy as np",
    minutes=30,
    assesses="Adam's moments and bias correction; decoupled weight decay (AdamW) vs L2 in the gradient; no decay "
             "for biases and LayerNorm; in-place updates of shared arrays; torch vs Google variants",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/pretraining.md",), notebooks=("03_mlm_nsp.ipynb",),
)
