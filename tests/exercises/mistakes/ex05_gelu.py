"""Learner mistakes in exercise 05 (gelu), and correct forms written differently."""
from mistakes import Mistake

E = "gelu"

REFERENCE = '''
    def gelu_forward(x):
        cdf = 0.5 * (1.0 + erf(x / math.sqrt(2.0)))
        pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
        y = x * cdf
        return y, cdf + x * pdf

    def gelu_backward(dy, cache):
        return dy * cache
    '''


def _variant(old, new):
    assert old in REFERENCE, old
    return REFERENCE.replace(old, new)


CDF = "cdf = 0.5 * (1.0 + erf(x / math.sqrt(2.0)))"
Y = "y = x * cdf"
DERIV = "return y, cdf + x * pdf"

MISTAKES = [
    Mistake(E, "the tanh approximation", _variant(
        Y, "y = 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))"),
            diagnosis=r"tanh approximation"),
    Mistake(E, "the sigmoid approximation", _variant(Y, "y = x / (1.0 + np.exp(-1.702 * x))"),
            diagnosis=r"sigmoid approximation"),
    Mistake(E, "erf of x, not of x / sqrt 2", _variant(CDF, "cdf = 0.5 * (1.0 + erf(x))"),
            diagnosis=r"erf's argument is not scaled"),
    Mistake(E, "Phi without its 1/2", _variant(Y, "y = x * (1.0 + erf(x / math.sqrt(2.0)))"),
            diagnosis=r"twice too large"),
    Mistake(E, "y = Phi(x)", _variant(Y, "y = cdf"), diagnosis=r"the factor x is missing"),
    Mistake(E, "the derivative with one product-rule term", _variant(DERIV, "return y, cdf"),
            diagnosis=r"cache holds Phi\(x\) only: one term of the product rule is missing", forward_ok=True),
    Mistake(E, "the density without 1/sqrt(2 pi)", _variant(
        "pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)", "pdf = np.exp(-0.5 * x * x)"),
            diagnosis=r"too large by the constant sqrt\(2 pi\)", forward_ok=True),
    Mistake(E, "the derivative without the factor x", _variant(DERIV, "return y, cdf + pdf"),
            diagnosis=r"lacks a factor that varies with x", forward_ok=True),
    Mistake(E, "the derivative's second term subtracted", _variant(DERIV, "return y, cdf - x * pdf"),
            diagnosis=r"second term of the derivative has the wrong sign", forward_ok=True),
    Mistake(E, "x kept as the cache (and the derivative in the backward)", '''
        def gelu_forward(x):
            return x * 0.5 * (1.0 + erf(x / math.sqrt(2.0))), x

        def gelu_backward(dy, cache):
            x = cache
            cdf = 0.5 * (1.0 + erf(x / math.sqrt(2.0)))
            pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
            return dy * (cdf + x * pdf)
        ''', diagnosis=r"the cache holds x; the contract's cache is the local derivative.*treats the cache as x",
            forward_ok=True),
    Mistake(E, "the backward ignores dy", _variant("return dy * cache", "return cache"),
            diagnosis=r"the upstream gradient dy is missing", forward_ok=True),
    Mistake(E, "the backward adds dy", _variant("return dy * cache", "return dy + cache"),
            diagnosis=r"the chain rule multiplies them", forward_ok=True),
    Mistake(E, "the backward with an extra factor", '''
        def gelu_forward(x):
            cdf = 0.5 * (1.0 + erf(x / math.sqrt(2.0)))
            pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
            return x * cdf, cdf + x * pdf

        def gelu_backward(dy, cache):
            return 2.0 * dy * cache
        ''', diagnosis=r"times 2: a constant factor", forward_ok=True),
]

CORRECT = [
    Mistake(E, "the density from erf's derivative", '''
        def gelu_forward(x):
            z = x / math.sqrt(2.0)
            cdf = 0.5 + 0.5 * erf(z)
            derf = 2.0 / math.sqrt(math.pi) * np.exp(-z * z)        # d erf(z) / dz
            return x * cdf, cdf + x * 0.5 * derf / math.sqrt(2.0)   # chain rule through z = x / sqrt 2

        def gelu_backward(dy, cache):
            return cache * dy
        ''', diagnosis=""),
    Mistake(E, "an explicit diagonal Jacobian on the flattened rows", '''
        def gelu_forward(x):
            cdf = 0.5 * (1.0 + erf(x * (1.0 / math.sqrt(2.0))))
            return x * cdf, cdf + x * np.exp(-x ** 2 / 2.0) * (1.0 / math.sqrt(2.0 * math.pi))

        def gelu_backward(dy, cache):
            flat = cache.reshape(-1)
            return (np.diag(flat) @ dy.reshape(-1)).reshape(dy.shape)
        ''', diagnosis=""),
]
