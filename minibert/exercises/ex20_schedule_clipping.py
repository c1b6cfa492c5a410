"""Exercise 20: the learning-rate schedule and global-norm gradient clipping (minibert.train.optim)."""
from __future__ import annotations

import math

import numpy

from minibert.exercises.base import CheckFailed, Exercise, Question
from minibert.train.optim import clip_grad_norm, global_grad_norm, linear_warmup_decay

STATEMENT = r"""
## The schedule

BERT's learning rate is not constant. Over the first `warmup_steps` optimizer steps it rises in a
straight line from 0 to `peak_lr`; from there it falls in a straight line to 0, reached at
`total_steps`, and stays 0 afterwards. `step` counts optimizer steps **from 0** (transformers'
`get_linear_schedule_with_warmup`): with warm-up the very first step has learning rate 0. No
warm-up (`warmup_steps = 0`) and a warm-up as long as the run (`warmup_steps = total_steps`) are
both allowed.

## Clipping

Before each optimizer step, all gradients are treated as **one** vector $g$ (every entry of every
parameter named in `names`, all of them when `names` is None). Its Euclidean norm $\lVert g\rVert$ is
the *global norm*. When it exceeds `max_norm`, every gradient is multiplied, **in place**, by the
same factor $c = \text{max\_norm} / (\lVert g\rVert + 10^{-6})$ (torch.nn.utils.clip_grad_norm_'s rule:
the $10^{-6}$ guards the division); when it does not, nothing changes. The function returns the
norm measured **before** clipping (what a training log records).

## What to work out

- The schedule is two line segments: write each as a function of `step` and check both meet at
  `warmup_steps`. What does each give at the ends of its range, and what must happen past `total_steps`?
- After clipping, what is the new global norm? In which direction does the gradient point?
- What does your clipping do when every gradient is 0? When `max_norm` is 0?

## Your functions

`linear_warmup_decay(step, peak_lr, warmup_steps, total_steps)` returns a float;
`global_grad_norm(grads, names=None)` returns a float; `clip_grad_norm(grads, max_norm, names=None)`
scales the arrays of the dict `grads` in place and returns the norm before clipping.
"""

HINTS = (
    "Draw the schedule for warmup_steps = 4, total_steps = 10 on squared paper, one point per step "
    "from 0 to 12, and read off your function's value at each: which points does it get wrong?",
    "The decay segment goes from peak_lr at warmup_steps to 0 at total_steps: its length is the number "
    "of steps between those two, not the whole run. Both segments divide by a length that can be 0.",
    "Clipping: one norm for all the gradients together (the square root of one sum over every entry), "
    "one factor for all of them, applied only when it shrinks. The model keeps its own gradient arrays, "
    "so change their values, not the dict's entries. See docs/pretraining.md (warm-up, clipping).",
)

CONTRACTS = (
    ("linear_warmup_decay", '''The learning rate of optimizer step `step` (0, 1, 2, ...).

    step: int >= 0; peak_lr: float > 0; warmup_steps: int >= 0; total_steps: int >= warmup_steps.
    Returns a Python float: a straight line from 0 (at step 0) up to peak_lr (reached at
    warmup_steps), then a straight line down to 0 (reached at total_steps), and 0 after that.
    warmup_steps == 0 (no warm-up) and warmup_steps == total_steps are allowed: never divide by 0.

    To derive: the two segments' formulas, and the value at step == warmup_steps.
    '''),
    ("global_grad_norm", '''The Euclidean norm of all the gradients together, as one vector.

    grads: dict name -> array (any shapes); names: the names to include (None: every name).
    Returns a Python float >= 0.
    '''),
    ("clip_grad_norm", '''Clip the gradients named in `names` (None: all) to a global norm of at most max_norm.

    grads: dict name -> array, changed IN PLACE (the model holds these arrays: keep them, change
    their values); max_norm: float >= 0. When the global norm exceeds max_norm, every named
    gradient is multiplied by the same factor max_norm / (norm + 1e-6); otherwise nothing changes.
    Gradients not named are never touched.
    Returns the global norm measured before clipping (a float).

    To derive: the norm after clipping, and what happens when the norm is 0 or max_norm is 0.
    '''),
)

DERIVATION = r"""
## Deriving it

**The schedule, one segment at a time.** The warm-up segment is a line through $(0, 0)$ and
$(w, \text{peak})$: write its value at step $s$. The decay segment is a line through $(w, \text{peak})$
and $(N, 0)$: write it the same way (what is its length?). Check at $s = w$ that both give the
same number, and decide which segment owns the point $s = w$. Then the edges: $w = 0$ (the first
segment is empty: which formula runs at $s = 0$, and does it divide by 0?), $w = N$ (the second is
empty), $s > N$ (a line continued past $N$ goes negative).

A check on paper: the learning rates of steps $0, 1, \dots, N$ add up to the area of a triangle of
base $N$ and height peak. Verify it with your formulas (two arithmetic series).

**Clipping.** With $n = \lVert g \rVert$ and $c = m / (n + 10^{-6})$:

1. Write $\lVert c\, g \rVert$ in terms of $n$ and $m$. Is it exactly $m$?
2. Why must the factor be the same for every parameter? (Compare the direction of $c\,g$ with that of
   a gradient where each parameter is clipped to norm $m$ on its own.)
3. When $n \le m$, what would $c$ do to the gradients if you applied it anyway?
4. $n = 0$: what is $c$ and is it applied? $m = 0$: what is $c$, and what is left of the gradients?
"""

QUESTIONS = (
    Question("Why warm up? What goes wrong in the first steps of Adam on a freshly initialised BERT with "
             "the full learning rate from step 0?",
             "Adam's second moment v starts at 0 and is estimated from one or two gradients in the first "
             "steps, so the per-coordinate step lr * m / sqrt(v) is about lr in *every* coordinate, with "
             "a noisy direction, exactly when the random network's gradients are largest and least "
             "informative. Post-LN transformers are especially fragile there (the residual stream's "
             "LayerNorms see large updates and training diverges). A short warm-up keeps the first steps "
             "small while v becomes a good estimate; Liu et al. (RAdam) and Xiong et al. (On Layer "
             "Normalization in the Transformer) analyse both effects."),
    Question("Why clip the *global* norm rather than each parameter's gradient on its own?",
             "Scaling every gradient by one factor keeps the direction of the whole update: it is still "
             "the steepest-descent direction of the loss, just a shorter step. Clipping each parameter "
             "separately changes the relative sizes of the parts (a layer with a huge gradient is cut, a "
             "small one is not), so the update no longer points along the gradient."),
    Question("What does clip_grad_norm do when every gradient is 0, and when max_norm is 0? What would "
             "happen without the 1e-6?",
             "At norm 0 the factor is max_norm / 1e-6, at least 1, so nothing is changed (and nothing "
             "could be: the gradients are 0). With max_norm = 0 the factor is 0 for any non-zero norm: "
             "every gradient becomes 0 and training stops moving (only weight decay acts). Without the "
             "1e-6, norm 0 gives 0/0 when max_norm is 0 (NaN gradients) and a division by zero otherwise."),
)

SANITY = (
    ("**The area under the schedule.** The learning rates of steps 0 to total add up to "
     "peak x total / 2 (a triangle): a one-line check of both segments and their meeting point.",
     "peak, warm, total = 1e-3, 7, 40\n"
     "area = sum(mine.linear_warmup_decay(s, peak, warm, total) for s in range(total + 1))\n"
     "print(f\"sum {area:.6g}, triangle {peak * total / 2:.6g}\")\n"
     "print(\"peak at warm-up:\", mine.linear_warmup_decay(warm, peak, warm, total))"),
    ("**Clipping keeps the direction.** After clipping, the global norm is (just under) max_norm and "
     "the gradient points the same way (cosine 1).",
     "rng = np.random.default_rng(0)\n"
     "grads = {\"w\": rng.normal(size=(5, 3)), \"b\": rng.normal(size=3) * 10}\n"
     "before = np.concatenate([g.ravel() for g in grads.values()])\n"
     "norm = mine.clip_grad_norm(grads, 1.0)\n"
     "after = np.concatenate([g.ravel() for g in grads.values()])\n"
     "cos = before @ after / (np.linalg.norm(before) * np.linalg.norm(after))\n"
     "print(f\"norm before {norm:.4f}, after {np.linalg.norm(after):.6f}, cosine {cos:.6f}\")"),
)


# -- the schedule ---------------------------------------------------------------------------------

def _lr_variant(step, peak, warm, total, mistake):
    """The schedule as a known mistake computes it (None where it would fail)."""
    if mistake == "warm-up one step ahead":
        if step < warm:
            return peak * (step + 1) / warm
        return peak * max(0.0, (total - step) / max(1, total - warm))
    if mistake == "decay over the whole run":
        if step < warm:
            return peak * step / max(1, warm)
        return peak * max(0.0, (total - step) / total)
    if mistake == "no floor at 0":
        if step < warm:
            return peak * step / max(1, warm)
        return peak * (total - step) / max(1, total - warm)
    if mistake == "warm-up owns its end":
        if step <= warm:
            return peak * step / max(1, warm)
        return peak * max(0.0, (total - step) / max(1, total - warm))
    if mistake == "constant after warm-up":
        return peak * step / max(1, warm) if step < warm else peak
    raise ValueError(mistake)


SCHEDULE_MISTAKES = {
    "warm-up one step ahead": "your warm-up is one step ahead: the rise starts from 0 at step 0 (steps count "
                              "from 0), so the first step's learning rate is 0.",
    "decay over the whole run": "your decay is too slow: it spreads over the whole run, but it starts at "
                                "warmup_steps, so its length is the steps between warmup_steps and total_steps.",
    "no floor at 0": "past total_steps your learning rate goes negative: the schedule stays at 0 there "
                     "(a negative rate climbs the loss).",
    "warm-up owns its end": "with warmup_steps = 0 there is no warm-up: step 0 already has peak_lr. Your "
                            "warm-up segment still runs at step == warmup_steps, where its length is 0.",
    "constant after warm-up": "after the warm-up the learning rate must fall linearly to 0 at total_steps; "
                              "yours stays at peak_lr.",
}


def _schedule_check(t, peak, warm, total, steps):
    expected = numpy.array([linear_warmup_decay(s, peak, warm, total) for s in steps])
    got = []
    for s in steps:
        try:
            value = t.call("linear_warmup_decay", s, peak, warm, total)
        except CheckFailed as failure:
            if "ZeroDivisionError" in failure.message:
                failure.hint = (f"warmup_steps = {warm}, total_steps = {total}: one of your segments has "
                                f"length 0 here. Decide which segment runs at this step and never divide by "
                                f"a length that can be 0.")
            raise
        if isinstance(value, numpy.ndarray) and value.size == 1:
            value = value.reshape(())
        if not isinstance(value, (int, float, numpy.floating, numpy.integer, numpy.ndarray)):
            raise CheckFailed(f"linear_warmup_decay returned {type(value).__name__} at step {s}; expected a float.",
                              "return one number.")
        got.append(float(value))
    candidates = []
    for mistake, hint in SCHEDULE_MISTAKES.items():
        def variant(mistake=mistake):
            return numpy.array([_lr_variant(s, peak, warm, total, mistake) for s in steps])
        candidates.append((variant, hint))
    t.compare(f"the learning rates at steps {list(steps)}", numpy.array(got), expected, candidates=candidates,
              tolerance=1e-12, scale_floor=1e-30,
              hint="compare your values step by step with a drawing of the two segments; "
                   "which steps are off, the rising or the falling ones?")


# -- clipping --------------------------------------------------------------------------------------

SHAPES = {"encoder.weight": (7, 5), "encoder.bias": (5,), "cls.weight": (2, 3, 4), "pooler.weight": (1,)}


def _grads(rng, scale):
    return {name: rng.normal(size=shape) * scale for name, shape in SHAPES.items()}


def _copy(d):
    return {k: a.copy() for k, a in d.items()}


def _norm_variants(grads, names):
    arrays = [grads[k] for k in names]
    return [
        (lambda: sum(float(numpy.sqrt((a * a).sum())) for a in arrays),
         "you added the parameters' norms: the global norm is the norm of one vector made of every entry "
         "(square root of one sum of squares), not a sum of norms."),
        (lambda: sum(float((a * a).sum()) for a in arrays),
         "your norm is the squared norm: the square root is missing."),
        (lambda: max(float(numpy.sqrt((a * a).sum())) for a in arrays),
         "your norm is the largest of the parameters' norms: the global norm combines all of them."),
        (lambda: math.sqrt(sum(float((a * a).mean()) for a in arrays)),
         "you averaged the squares within each parameter: the norm sums the squares of every entry."),
        (lambda: math.sqrt(sum(float((a * a).sum()) for a in grads.values())),
         "your norm includes gradients not in `names`: only the named ones count."),
        (lambda: sum(float(numpy.abs(a).sum()) for a in arrays),
         "your norm is a sum of absolute values (the L1 norm): the Euclidean norm is a square root of squares."),
    ]


def _norm_check(t, names):
    grads = _grads(t.rng, 1.5)
    expected = global_grad_norm(_copy(grads), names)
    got = t.call("global_grad_norm", _copy(grads), names)
    t.compare("the global norm", _as_number(got, "global_grad_norm"), expected,
              candidates=_norm_variants(grads, list(grads if names is None else names)), tolerance=1e-12,
              hint="one vector made of every entry of every named gradient: its Euclidean length.")


def _as_number(value, function):
    if isinstance(value, numpy.ndarray) and value.size == 1:
        value = value.reshape(())
    if not isinstance(value, (int, float, numpy.floating, numpy.integer, numpy.ndarray)):
        raise CheckFailed(f"{function} returned {type(value).__name__}; expected a float.",
                          "return one number (float(...) of a NumPy scalar is fine).")
    return numpy.float64(value)


def _clip_variant(grads, max_norm, names, mistake):
    """(gradients, returned norm) as a known mistake computes them."""
    g = _copy(grads)
    names = list(g if names is None else names)
    norm = math.sqrt(sum(float((g[k] * g[k]).sum()) for k in names))
    if mistake == "per parameter":
        for k in names:
            n = float(numpy.sqrt((g[k] * g[k]).sum()))
            c = max_norm / (n + 1e-6)
            if c < 1:
                g[k] *= c
        return g, norm
    if mistake == "always scaled":
        for k in names:
            g[k] *= max_norm / (norm + 1e-6)
        return g, norm
    c = max_norm / (norm + 1e-6)
    if mistake == "inverted":
        if norm > max_norm:
            for k in names:
                g[k] *= (norm + 1e-6) / max_norm if max_norm else 0.0
        return g, norm
    if mistake == "norm after":
        if c < 1:
            for k in names:
                g[k] *= c
        return g, math.sqrt(sum(float((g[k] * g[k]).sum()) for k in names))
    if c < 1:
        for k in names:
            g[k] *= c
    return g, norm


CLIP_MISTAKES = {
    "per parameter": "you clipped each parameter's gradient to max_norm on its own: one factor for all of "
                     "them, from the global norm, keeps the direction of the whole gradient.",
    "always scaled": "you scaled the gradients although their global norm is below max_norm (you stretched "
                     "them up to max_norm): clipping only ever shrinks.",
    "inverted": "your factor is upside down: it must bring the norm down to max_norm, so the norm is in "
                "its denominator.",
    "norm after": "the returned norm is the one after clipping; return the norm measured before (what the "
                  "training log reports, and how you see that clipping happened).",
}


def _clip_check(t, scale, max_norm, names=None, zero=False):
    grads = _grads(t.rng, scale)
    if zero:
        grads = {k: numpy.zeros_like(a) for k, a in grads.items()}
    ref = _copy(grads)
    ref_norm = clip_grad_norm(ref, max_norm, names)
    mine = _copy(grads)
    arrays = dict(mine)
    try:
        got_norm = t.call("clip_grad_norm", mine, max_norm, names)
    except CheckFailed as failure:
        if "ZeroDivisionError" in failure.message:
            failure.hint = ("every gradient is 0 here, so the global norm is 0: what guards the division in the "
                            "factor? (See the contract: max_norm / (norm + 1e-6).)")
        raise
    for name in SHAPES:
        if mine.get(name) is not arrays[name]:
            raise CheckFailed(f"grads[{name!r}] was replaced by a new array.",
                              "change the gradients in place (an in-place multiplication): the model keeps "
                              "and reads its own gradient arrays, not the dict's new entries.")
    variants = {k: _clip_variant(grads, max_norm, names, k) for k in CLIP_MISTAKES}
    for name in SHAPES:
        if names is not None and name not in names:
            t.compare(f"grads[{name!r}] (not in names) after clipping", mine[name], grads[name], tolerance=0,
                      candidates=[(grads[name] * (max_norm / (ref_norm + 1e-6)), "you scaled a gradient that "
                                   "is not in `names`: gradients not in `names` are never touched.")],
                      hint="gradients not in `names` are never touched.")
            continue
        candidates = [(variants[k][0][name], hint) for k, hint in CLIP_MISTAKES.items()]
        candidates.append((grads[name] * (max_norm / ref_norm) if ref_norm else None,
                           "your factor is max_norm / norm: torch's rule (and the contract) adds 1e-6 to the "
                           "norm, which makes the result a hair smaller than max_norm and keeps norm 0 safe."))
        hint = "all named gradients are multiplied by one factor when the global norm exceeds max_norm."
        t.compare(f"grads[{name!r}] after clipping", mine[name], ref[name], candidates=candidates, hint=hint,
                  tolerance=1e-12)
    t.compare("the returned norm", _as_number(got_norm, "clip_grad_norm"), ref_norm,
              candidates=[(variants["norm after"][1], CLIP_MISTAKES["norm after"])], tolerance=1e-12,
              hint="return the global norm of the gradients as they were before clipping.")
    t.note(f"norm {ref_norm:.3g}, max_norm {max_norm:g}")


def _peak(t) -> float:
    """A peak learning rate from the grader's seed: the edge cases' steps stay, their values change with it."""
    return float(t.rng.uniform(1e-5, 1e-3))


def check(t):
    with t.check("schedule: warm-up 10 of 100 steps, steps 0 to 150, a random peak"):
        _schedule_check(t, _peak(t), 10, 100, [0, 1, 5, 9, 10, 11, 37, 55, 99, 100, 101, 150])
    with t.check("schedule: odd sizes, a random peak (warm-up 7 of 23 steps, every step)"):
        _schedule_check(t, _peak(t), 7, 23, list(range(0, 26)))
    with t.check("schedule: no warm-up (warmup_steps = 0), a random peak"):
        _schedule_check(t, _peak(t), 0, 13, [0, 1, 6, 12, 13, 20])
    with t.check("schedule: warm-up as long as the run (warmup_steps = total_steps = 6), a random peak"):
        _schedule_check(t, _peak(t), 6, 6, [0, 3, 5, 6, 7])
    with t.check("global norm of 4 gradients (shapes (7, 5), (5,), (2, 3, 4), (1,))"):
        _norm_check(t, None)
    with t.check("global norm over 2 named gradients of the 4"):
        _norm_check(t, ["encoder.weight", "cls.weight"])
    with t.check("clipping: a norm far above max_norm = 1 (in place, one factor, the norm before)"):
        _clip_check(t, 3.0, 1.0)
    with t.check("clipping: a norm below max_norm = 50 (nothing changes)"):
        _clip_check(t, 1.0, 50.0)
    with t.check("clipping: only the named gradients (2 of 4), max_norm = 0.5"):
        _clip_check(t, 2.0, 0.5, names=["encoder.bias", "cls.weight"])
    with t.check("clipping: every gradient 0 (norm 0), max_norm = 1"):
        _clip_check(t, 1.0, 1.0, zero=True)
    with t.check("clipping: max_norm = 0"):
        _clip_check(t, 1.0, 0.0)


EXERCISE = Exercise(
    number=20, name="schedule_clipping", title="the learning-rate schedule and global-norm clipping",
    functions=(linear_warmup_decay, global_grad_norm, clip_grad_norm),
    imports="import math\n\nimport numpy as np",
    minutes=35,
    assesses="a piecewise-linear schedule with its edges (step 0, the meeting point, no warm-up, past the end); "
             "one global norm over all parameters; one clipping factor that keeps the direction; in-place "
             "updates; the norm-0 and max_norm-0 cases",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/pretraining.md",), notebooks=("03_mlm_nsp.ipynb",),
    contracts=CONTRACTS, derivation=DERIVATION, questions=QUESTIONS, sanity=SANITY,
)
