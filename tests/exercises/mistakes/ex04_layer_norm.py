"""Learner mistakes in exercise 04 (layer_norm), and correct forms written differently."""
from mistakes import Mistake

E = "layer_norm"

FORWARD = '''
    def layer_norm_forward(x, gamma, beta, eps):
        mu = x.mean(axis=-1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
        rstd = 1.0 / np.sqrt(var + eps)
        xhat = (x - mu) * rstd
        return gamma * xhat + beta, (xhat, rstd, gamma)
    '''

BACKWARD = '''
    def layer_norm_backward(dy, cache):
        xhat, rstd, gamma = cache
        H = xhat.shape[-1]
        dbeta = dy.reshape(-1, H).sum(axis=0)
        dgamma = (dy * xhat).reshape(-1, H).sum(axis=0)
        g = dy * gamma
        dx = rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
        return dx, dgamma, dbeta
    '''


def _forward(old, new):
    assert old in FORWARD
    return FORWARD.replace(old, new) + BACKWARD


def _backward(old, new):
    assert old in BACKWARD
    return FORWARD + BACKWARD.replace(old, new)


DX = "dx = rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))"

MISTAKES = [
    Mistake(E, "the unbiased variance", _forward("var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)",
                                                 "var = x.var(axis=-1, keepdims=True, ddof=1)"),
            diagnosis=r"divided by H - 1"),
    Mistake(E, "eps outside the square root", _forward("rstd = 1.0 / np.sqrt(var + eps)",
                                                       "rstd = 1.0 / (np.sqrt(var) + eps)"),
            diagnosis=r"eps is added after the square root"),
    Mistake(E, "the variance of the uncentred row", _forward("var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)",
                                                             "var = (x ** 2).mean(axis=-1, keepdims=True)"),
            diagnosis=r"squares of the \*centred\* row"),
    Mistake(E, "no scale and shift", _forward("return gamma * xhat + beta,", "return xhat,"),
            diagnosis=r"did not scale and shift"),
    Mistake(E, "statistics over the whole array", _forward(
        "mu = x.mean(axis=-1, keepdims=True)\n        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)",
        "mu = x.mean()\n        var = ((x - mu) ** 2).mean()"), diagnosis=r"over the whole array"),
    Mistake(E, "the standard deviation in the cache", _forward("(xhat, rstd, gamma)", "(xhat, 1.0 / rstd, gamma)"),
            diagnosis=r"the cache holds the standard deviation"),
    Mistake(E, "dx without the mean terms", _backward(DX, "dx = g * rstd"),
            diagnosis=r"only the direct path.*two terms are missing", forward_ok=True),
    Mistake(E, "dx without the path through the mean",
            _backward(DX, "dx = rstd * (g - xhat * (g * xhat).mean(-1, keepdims=True))"),
            diagnosis=r"misses the path through the mean mu", forward_ok=True),
    Mistake(E, "dx without the path through the variance", _backward(DX, "dx = rstd * (g - g.mean(-1, keepdims=True))"),
            diagnosis=r"misses the path through the variance", forward_ok=True),
    Mistake(E, "the variance term with a plus",
            _backward(DX, "dx = rstd * (g - g.mean(-1, keepdims=True) + xhat * (g * xhat).mean(-1, keepdims=True))"),
            diagnosis=r"variance has the wrong sign", forward_ok=True),
    Mistake(E, "dy instead of dy * gamma", _backward("g = dy * gamma", "g = dy"),
            diagnosis=r"gradient reaching xhat is not dy", forward_ok=True),
    Mistake(E, "dx without the outer rstd",
            _backward(DX, "dx = g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True)"),
            diagnosis=r"off by one factor per row", forward_ok=True),
    Mistake(E, "the means of dx over the whole array",
            _backward(DX, "dx = rstd * (g - g.mean() - xhat * (g * xhat).mean())"),
            diagnosis=r"means in dx run over the whole array", forward_ok=True),
    # the wrong hint: this got "dgamma and dbeta are swapped"
    Mistake(E, "dgamma without the normalised input",
            _backward("dgamma = (dy * xhat).reshape(-1, H).sum(axis=0)", "dgamma = dy.reshape(-1, H).sum(axis=0)"),
            diagnosis=r"dgamma is the plain sum of dy over the rows", forward_ok=True),
    Mistake(E, "dgamma and dbeta swapped", _backward("return dx, dgamma, dbeta", "return dx, dbeta, dgamma"),
            diagnosis=r"dgamma and dbeta are swapped", forward_ok=True),
    Mistake(E, "dgamma not summed over the rows",
            _backward("dgamma = (dy * xhat).reshape(-1, H).sum(axis=0)", "dgamma = dy * xhat"),
            diagnosis=r"dgamma has shape \(3, 5, 7\); it must have the shape of gamma", forward_ok=True),
    Mistake(E, "dbeta summed over the first axis only",
            _backward("dbeta = dy.reshape(-1, H).sum(axis=0)", "dbeta = dy.sum(axis=0)"),
            diagnosis=r"dbeta has shape \(5, 7\).*sums over every axis but the last", forward_ok=True),
    Mistake(E, "dgamma times gamma",
            _backward("dgamma = (dy * xhat).reshape(-1, H).sum(axis=0)",
                      "dgamma = (dy * xhat * gamma).reshape(-1, H).sum(axis=0)"),
            diagnosis=r"dgamma carries an extra factor gamma", forward_ok=True),
]

CORRECT = [
    Mistake(E, "the textbook N-form", FORWARD + '''
    def layer_norm_backward(dy, cache):
        xhat, rstd, gamma = cache
        H = xhat.shape[-1]
        dbeta = dy.reshape(-1, H).sum(axis=0)
        dgamma = (dy * xhat).reshape(-1, H).sum(axis=0)
        g = dy * gamma
        dx = (rstd / H) * (H * g - g.sum(-1, keepdims=True) - xhat * (g * xhat).sum(-1, keepdims=True))
        return dx, dgamma, dbeta
    ''', diagnosis=""),
    Mistake(E, "path by path: dvar, dmu, then dx (CS231n's staged chain rule)", FORWARD + '''
    def layer_norm_backward(dy, cache):
        xhat, rstd, gamma = cache
        H = xhat.shape[-1]
        axes = tuple(range(dy.ndim - 1))
        dbeta = dy.sum(axis=axes)
        dgamma = (dy * xhat).sum(axis=axes)
        dxhat = dy * gamma
        xmu = xhat / rstd                                          # x - mu
        dvar = (dxhat * xmu).sum(-1, keepdims=True) * -0.5 * rstd ** 3
        dmu = -(dxhat * rstd).sum(-1, keepdims=True) + dvar * (-2.0 * xmu).mean(-1, keepdims=True)
        dx = dxhat * rstd + dvar * 2.0 * xmu / H + dmu / H
        return dx, dgamma, dbeta
    ''', diagnosis=""),
    Mistake(E, "the explicit H x H Jacobian per row", FORWARD + '''
    def layer_norm_backward(dy, cache):
        xhat, rstd, gamma = cache
        H = xhat.shape[-1]
        jac = (rstd[..., None] / H) * (H * np.eye(H) - 1.0 - xhat[..., :, None] * xhat[..., None, :])
        dx = np.einsum("...j,...ji->...i", dy * gamma, jac)
        dgamma = (dy * xhat).reshape(-1, H).sum(axis=0)
        dbeta = dy.reshape(-1, H).sum(axis=0)
        return dx, dgamma, dbeta
    ''', diagnosis=""),
]
