"""Learner mistakes in exercise 07 (attention): forward (scale, mask, softmax, dropout) and backward."""
from mistakes import Mistake

FORWARD = '''
def scaled_dot_product_attention_forward(q, k, v, mask_bias=None, dropout_p=0.0, rng=None,
                                         training=False, dropout_mask=None):
    scale = {scale}
    q_scaled = q * scale
    scores = q_scaled @ k.swapaxes(-1, -2)
    if mask_bias is not None:
        scores = {masked}
    probs{softmax}
    dropped, drop_cache = dropout_forward({drop_in}, dropout_p, rng, training, dropout_mask)
    {after}
    return dropped @ v, (q_scaled, k, v, probs, dropped, drop_cache, scale)
'''
OK = dict(scale="1.0 / math.sqrt(q.shape[-1])", masked="scores + mask_bias", softmax=", _ = softmax_forward(scores)",
          drop_in="probs", after="")


def forward(**change):
    return FORWARD.format(**{**OK, **change})


BACKWARD = '''
def scaled_dot_product_attention_backward(dout, cache):
    q_scaled, k, v, probs, dropped, drop_cache, scale = cache
    dv = {dv}
    dprobs = {dprobs}
    dscores = {dscores}
    dq = {dq}
    dk = {dk}
    return dq, dk, dv
'''
GOOD = dict(dv="dropped.swapaxes(-1, -2) @ dout", dprobs="dropout_backward(dout @ v.swapaxes(-1, -2), drop_cache)",
            dscores="softmax_backward(dprobs, probs)", dq="(dscores @ k) * scale",
            dk="dscores.swapaxes(-1, -2) @ q_scaled")


def backward(**change):
    return BACKWARD.format(**{**GOOD, **change})


MISTAKES = [
    Mistake("attention", "no 1/sqrt(d) scale", forward(scale="1.0"), diagnosis=r"not scaled by 1/sqrt\(d_k\)"),
    Mistake("attention", "scale 1/d instead of 1/sqrt(d)", forward(scale="1.0 / q.shape[-1]"),
            diagnosis=r"1/sqrt\(d_k\), not 1/d_k"),
    Mistake("attention", "scale multiplies by sqrt(d)", forward(scale="math.sqrt(q.shape[-1])"),
            diagnosis=r"multiplies by sqrt\(d_k\) where it should divide"),
    Mistake("attention", "padding mask ignored", forward(masked="scores"), diagnosis=r"padding mask is ignored"),
    Mistake("attention", "padding mask on the queries", forward(masked="scores + mask_bias.swapaxes(-1, -2)"),
            diagnosis=r"applied to the queries"),
    Mistake("attention", "padding mask after the softmax",
            forward(after="probs = probs * (mask_bias == 0); dropped = probs", masked="scores"),
            diagnosis=r"applied after the softmax"),
    Mistake("attention", "own softmax without the max trick",
            forward(softmax=" = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)"),
            diagnosis=r"overflow in the softmax"),
    Mistake("attention", "softmax over the query axis",
            forward(softmax=", _ = softmax_forward(scores.swapaxes(-1, -2)); probs = probs.swapaxes(-1, -2)"),
            diagnosis=r"the axis of the softmax"),
    Mistake("attention", "dropout ignored in training", forward(after="dropped, drop_cache = probs, None"),
            diagnosis=r"dropout is missing"),
    Mistake("attention", "cache in another order", forward().replace(
        "(q_scaled, k, v, probs, dropped, drop_cache, scale)", "(q_scaled, k, v, dropped, probs, drop_cache, scale)"),
        diagnosis=r"cache item probs"),
    Mistake("attention", "dv from the probabilities before dropout", backward(dv="probs.swapaxes(-1, -2) @ dout"),
            diagnosis=r"dv uses the probabilities before dropout", forward_ok=True),
    Mistake("attention", "dv without the transpose", backward(dv="dropped @ dout"),
            diagnosis=r"dv: the probabilities are not transposed", forward_ok=True),
    Mistake("attention", "dq without the scale", backward(dq="dscores @ k"),
            diagnosis=r"dq is missing the scale.*constant factor sqrt\(d\)", forward_ok=True),
    Mistake("attention", "dk with the scale twice", backward(dk="(dscores.swapaxes(-1, -2) @ q_scaled) * scale"),
            diagnosis=r"dk carries the scale twice", forward_ok=True),
    Mistake("attention", "dk from rows of the score gradient", backward(dk="dscores @ q_scaled"),
            diagnosis=r"key j collects column j", forward_ok=True),
    Mistake("attention", "softmax backward without the row term", backward(dscores="probs * dprobs"),
            diagnosis=r"misses its row term", forward_ok=True),
    Mistake("attention", "dropout skipped in the backward", backward(dprobs="dout @ v.swapaxes(-1, -2)"),
            diagnosis=r"skips dropout on the way back", forward_ok=True),
    Mistake("attention", "dq from the transposed score gradient", backward(dq="(dscores.swapaxes(-1, -2) @ k) * scale"),
            diagnosis=r"query i owns row i", forward_ok=True),
]

CORRECT = [
    Mistake("attention", "einsum backward with an explicit softmax backward", forward() + '''
def scaled_dot_product_attention_backward(dout, cache):
    q_scaled, k, v, probs, dropped, drop_cache, scale = cache
    dv = np.einsum("baij,baic->bajc", dropped, dout)              # V[j] collects column j of P'
    dprobs = np.einsum("baic,bajc->baij", dout, v)
    if drop_cache is not None:
        dprobs = dprobs * drop_cache
    dscores = probs * (dprobs - np.einsum("baij,baij->bai", dprobs, probs)[..., None])
    dq = np.einsum("baij,bajc->baic", dscores, k) * scale
    dk = np.einsum("baij,baic->bajc", dscores, q_scaled)
    return dq, dk, dv
''', diagnosis=""),
    Mistake("attention", "softmax Jacobian built explicitly, dk from Q", forward() + '''
def scaled_dot_product_attention_backward(dout, cache):
    q_scaled, k, v, probs, dropped, drop_cache, scale = cache
    dv = np.matmul(np.swapaxes(dropped, 2, 3), dout)
    dprobs = np.matmul(dout, np.swapaxes(v, 2, 3))
    if drop_cache is not None:
        dprobs = dprobs * drop_cache
    jac = probs[..., :, None] * np.eye(probs.shape[-1]) - probs[..., :, None] * probs[..., None, :]
    dscores = np.einsum("...ij,...j->...i", jac, dprobs)         # the Jacobian is symmetric
    q = q_scaled / scale
    dq = np.matmul(dscores, k) * scale
    dk = np.matmul(np.swapaxes(dscores, 2, 3), q) * scale
    return dq, dk, dv
''', diagnosis=""),
]
