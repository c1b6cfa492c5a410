"""Learner mistakes in exercise 12 (adamw): eps's place, decay, bias correction, in-place updates."""
from mistakes import Mistake

STEP = '''
def adamw_step(params, grads, m, v, t, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
               variant="torch"):
    b1, b2 = {betas}
    for name in {names}:
        p, g = params[name], grads[name]
        wd = {wd}
        {grad}
        m[name] *= b1
        m[name] += (1 - b1) * g
        v[name] *= b2
        v[name] += (1 - b2) * {square}
        if variant == "torch":
            {torch}
        else:
            {google}
'''
OK = dict(betas="betas", names="m", wd='0.0 if ("bias" in name or "LayerNorm" in name) else weight_decay',
          grad="", square="g * g",
          torch="p *= 1 - lr * wd\n            p -= lr / (1 - b1 ** t) * m[name] / (np.sqrt(v[name]) / math.sqrt(1 - b2 ** t) + eps)",
          google="p -= lr * (m[name] / (np.sqrt(v[name]) + eps) + wd * p)")


def step(**change):
    return STEP.format(**{**OK, **change})


MISTAKES = [
    Mistake("adamw", "eps inside the square root (the issue's case)", step(
        torch="p *= 1 - lr * wd\n            p -= lr / (1 - b1 ** t) * m[name] / np.sqrt(v[name] / (1 - b2 ** t) + eps)"),
        diagnosis=r"eps is in the wrong place.*outside\* the square root"),
    Mistake("adamw", "eps inside the square root, google", step(google="p -= lr * (m[name] / np.sqrt(v[name] + eps) + wd * p)"),
            diagnosis=r"eps is in the wrong place"),
    Mistake("adamw", "decay on every parameter", step(wd="weight_decay"), diagnosis=r"LayerNorm and bias parameters too"),
    Mistake("adamw", "weight decay in the gradient (L2)", step(grad="g = g + wd * p", torch=(
        "p -= lr / (1 - b1 ** t) * m[name] / (np.sqrt(v[name]) / math.sqrt(1 - b2 ** t) + eps)"),
        google="p -= lr * m[name] / (np.sqrt(v[name]) + eps)"), diagnosis=r"Adam with L2"),
    Mistake("adamw", "no bias correction (torch)", step(torch="p *= 1 - lr * wd\n            p -= lr * m[name] / (np.sqrt(v[name]) + eps)"),
            diagnosis=r"bias correction is missing"),
    Mistake("adamw", "bias correction in the google variant", step(
        google="p -= lr * (m[name] / (1 - b1 ** t) / (np.sqrt(v[name] / (1 - b2 ** t)) + eps) + wd * p)"),
        diagnosis=r"Google's variant has no bias correction"),
    Mistake("adamw", "decay after the Adam step", step(
        torch="p -= lr / (1 - b1 ** t) * m[name] / (np.sqrt(v[name]) / math.sqrt(1 - b2 ** t) + eps)\n            p *= 1 - lr * wd"),
        diagnosis=r"decay is applied after the Adam step"),
    Mistake("adamw", "decay not scaled by lr", step(
        torch="p *= 1 - wd\n            p -= lr / (1 - b1 ** t) * m[name] / (np.sqrt(v[name]) / math.sqrt(1 - b2 ** t) + eps)"),
        diagnosis=r"scaled by the learning rate"),
    Mistake("adamw", "betas swapped", step(betas="betas[1], betas[0]"), diagnosis=r"beta1 and beta2 are swapped"),
    Mistake("adamw", "second moment of |g|", step(square="np.abs(g)"), diagnosis=r"averages \|g\|"),
    Mistake("adamw", "v's correction not square-rooted", step(
        torch="p *= 1 - lr * wd\n            p -= lr / (1 - b1 ** t) * m[name] / (np.sqrt(v[name]) / (1 - b2 ** t) + eps)"),
        diagnosis=r"through its square root"),
    Mistake("adamw", "loop over params (the frozen one has no moments)", step(names="params"),
            diagnosis=r"frozen parameter .*visit only the names"),
    Mistake("adamw", "a new array instead of in place", step(
        torch="p = p * (1 - lr * wd) - lr / (1 - b1 ** t) * m[name] / (np.sqrt(v[name]) / math.sqrt(1 - b2 ** t) + eps)\n"
              "            params[name] = p"), diagnosis=r"replaced by a new array"),
    Mistake("adamw", "moments rebound, not updated in place", step().replace(
        "m[name] *= b1\n        m[name] += (1 - b1) * g", "mn = b1 * m[name] + (1 - b1) * g").replace(
        "m[name] / (", "mn / ("), diagnosis=r"running averages"),
]
