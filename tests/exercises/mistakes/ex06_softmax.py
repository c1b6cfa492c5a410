"""Learner mistakes in exercise 06 (softmax), and correct forms written differently."""
from mistakes import Mistake

E = "softmax"

FORWARD = '''
    def softmax_forward(x, inplace=False):
        p = x if inplace else x.copy()
        p -= p.max(axis=-1, keepdims=True)
        np.exp(p, out=p)
        p /= p.sum(axis=-1, keepdims=True)
        return p, p
    '''


def _backward(body):
    return FORWARD + f'''
    def softmax_backward(dp, cache):
        p = cache
        return {body}
    '''


def _forward(body, cache="p"):
    return f'''
    def softmax_forward(x, inplace=False):
        {body}
        return p, {cache}
    ''' + '''
    def softmax_backward(dp, cache):
        p = cache
        return p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    '''


MISTAKES = [
    Mistake(E, "no max subtracted", _forward("e = np.exp(x); p = e / e.sum(axis=-1, keepdims=True)"),
            diagnosis=r"large logits.*NaN/inf.*exp overflowed"),
    Mistake(E, "one max for the whole array",
            _forward("e = np.exp(x - x.max()); p = e / e.sum(axis=-1, keepdims=True)"),
            diagnosis=r"subtracted from the whole array, not one per row"),
    Mistake(E, "normalised over the first axis",
            _forward("e = np.exp(x - x.max(axis=0, keepdims=True)); p = e / e.sum(axis=0, keepdims=True)"),
            diagnosis=r"normalise over the last axis"),
    Mistake(E, "no denominator", _forward("p = np.exp(x - x.max(axis=-1, keepdims=True))"),
            diagnosis=r"the denominator is missing"),
    Mistake(E, "one sum for the whole array",
            _forward("e = np.exp(x - x.max(axis=-1, keepdims=True)); p = e / e.sum()"),
            diagnosis=r"one sum over the whole array instead of one sum per row"),
    # the miss: a softmax that ignores inplace=True
    Mistake(E, "inplace ignored",
            _forward("e = np.exp(x - x.max(axis=-1, keepdims=True)); p = e / e.sum(axis=-1, keepdims=True)"),
            diagnosis=r"inplace=True the array x passed in must hold p afterwards"),
    Mistake(E, "inplace made a new array on the first step", _forward(
        "p = x if inplace else x.copy()\n        p = p - p.max(axis=-1, keepdims=True)\n"
        "        np.exp(p, out=p)\n        p /= p.sum(axis=-1, keepdims=True)"),
            diagnosis=r"made a new array"),
    Mistake(E, "always in place", _forward(
        "p = x\n        p -= p.max(axis=-1, keepdims=True)\n        np.exp(p, out=p)\n"
        "        p /= p.sum(axis=-1, keepdims=True)"),
            diagnosis=r"inplace=False .* the caller's x was changed"),
    Mistake(E, "the scores kept as the cache", '''
        def softmax_forward(x, inplace=False):
            e = np.exp(x - x.max(axis=-1, keepdims=True))
            p = e / e.sum(axis=-1, keepdims=True)
            if inplace:
                x[...] = p
                p = x
            return p, x.copy() if not inplace else x

        def softmax_backward(dp, cache):
            e = np.exp(cache - cache.max(axis=-1, keepdims=True))
            p = e / e.sum(axis=-1, keepdims=True)
            return p * (dp - (dp * p).sum(axis=-1, keepdims=True))
        ''', diagnosis=r"the cache holds the scores x.*applies softmax to the cache"),
    Mistake(E, "the diagonal of the Jacobian only", _backward("dp * p * (1 - p)"),
            diagnosis=r"right on the diagonal of the Jacobian, wrong off it", forward_ok=True),
    Mistake(E, "the row sum of dp instead of dp * p", _backward("p * (dp - dp.sum(axis=-1, keepdims=True))"),
            diagnosis=r"weighs dp by nothing", forward_ok=True),
    Mistake(E, "without the outer p", _backward("dp - (dp * p).sum(axis=-1, keepdims=True)"),
            diagnosis=r"off by a factor p_i in every entry", forward_ok=True),
    Mistake(E, "the row sum over the first axis", _backward("p * (dp - (dp * p).sum(axis=0, keepdims=True))"),
            diagnosis=r"summed over the wrong axis \(the first\)", forward_ok=True),
    Mistake(E, "the row sum over the whole array", _backward("p * (dp - (dp * p).sum())"),
            diagnosis=r"summed over the whole array", forward_ok=True),
    Mistake(E, "the sign of dx flipped", _backward("p * ((dp * p).sum(axis=-1, keepdims=True) - dp)"),
            diagnosis=r"exactly minus the expected one", forward_ok=True),
]

CORRECT = [
    Mistake(E, "the explicit Jacobian per row, diag(p) - p p^T", FORWARD + '''
    def softmax_backward(dp, cache):
        p = cache
        jacobian = np.einsum("...i,ij->...ij", p, np.eye(p.shape[-1])) - p[..., :, None] * p[..., None, :]
        return np.einsum("...ij,...j->...i", jacobian, dp)
    ''', diagnosis=""),
    Mistake(E, "the dot product with einsum, a forward from the log-sum-exp", '''
    def softmax_forward(x, inplace=False):
        m = x.max(axis=-1, keepdims=True)
        lse = m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True))
        p = np.exp(x - lse)
        if inplace:
            x[...] = p
            p = x
        return p, p

    def softmax_backward(dp, cache):
        p = cache
        return p * dp - p * np.einsum("...k,...k->...", dp, p)[..., None]
    ''', diagnosis=""),
]
