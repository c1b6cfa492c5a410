"""Learner mistakes in exercise 16 (mlm_head), and correct alternatives that must pass."""
from mistakes import Mistake

SOLUTION = '''
def mlm_head_forward(x, w_t, b_t, gamma, beta, eps, word_embeddings, out_bias, hidden_act="gelu", ops=None):
    u, c_dense = linear_forward(x, w_t, b_t)                             # (M,H) -> (M,H)
    a, c_act = gelu_forward(u)
    h, c_ln = layer_norm_forward(a, gamma, beta, eps)
    logits, c_dec = linear_forward(h, word_embeddings, out_bias)         # (M,H) -> (M,V): E is the weight
    return logits, MlmHeadCache(c_dense, c_act, c_ln, c_dec, hidden_act, REFERENCE_OPS)


def mlm_head_backward(dlogits, cache):
    dh, dword, dbias = linear_backward(dlogits, cache.decoder)           # dE (V,H), db (V,)
    da, dgamma, dbeta = layer_norm_backward(dh, cache.layer_norm)
    du = gelu_backward(da, cache.activation)
    dx, dw_t, db_t = linear_backward(du, cache.transform)
    return dx, dw_t, db_t, dgamma, dbeta, dword, dbias


def tied_word_embeddings_backward(ddecoder, dembedded, ids):
    dE = ddecoder.copy()                                                 # the decoder's share
    np.add.at(dE, ids.reshape(-1), dembedded.reshape(-1, dE.shape[1]))   # + every occurrence of every id
    return dE
'''


def _changed(*pairs):
    source = SOLUTION
    for old, new in pairs:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    return source


def _m(name, pairs, diagnosis, forward_ok=False):
    return Mistake("mlm_head", name, _changed(*pairs), diagnosis=diagnosis, forward_ok=forward_ok)


MISTAKES = [
    _m("transform weight not transposed", [("linear_forward(x, w_t, b_t)", "linear_forward(x, w_t.T, b_t)")],
       r"transform's weight is used transposed"),
    _m("LayerNorm before GELU", [
        ("    a, c_act = gelu_forward(u)\n    h, c_ln = layer_norm_forward(a, gamma, beta, eps)\n",
         "    a, c_ln = layer_norm_forward(u, gamma, beta, eps)\n    h, c_act = gelu_forward(a)\n")],
       r"dense, GELU, then LayerNorm"),
    _m("no GELU", [("layer_norm_forward(a, gamma, beta, eps)", "layer_norm_forward(u, gamma, beta, eps)")],
       r"GELU .* is missing"),
    _m("tanh GELU", [("    a, c_act = gelu_forward(u)\n",
                      "    a = 0.5 * u * (1 + np.tanh(np.sqrt(2 / np.pi) * (u + 0.044715 * u ** 3)))\n"
                      "    c_act = gelu_forward(u)[1]\n")],
       r"tanh approximation"),
    _m("no LayerNorm", [("logits, c_dec = linear_forward(h, ", "logits, c_dec = linear_forward(a, ")],
       r"LayerNorm \(gamma, beta\) is missing"),
    _m("no decoder bias", [("linear_forward(h, word_embeddings, out_bias)", "linear_forward(h, word_embeddings)")],
       r"own bias out_bias is missing"),
    _m("decoder weight not transposed", [
        ("logits, c_dec = linear_forward(h, word_embeddings, out_bias)",
         "logits, c_dec = h @ word_embeddings + out_bias, None")],
       r"inner sizes of a matrix product disagree"),
    _m("backward: LayerNorm backward skipped", [("du = gelu_backward(da, cache.activation)",
                                                 "du = gelu_backward(dh, cache.activation)")],
       r"without going back through the LayerNorm", forward_ok=True),
    _m("backward: GELU backward skipped", [("dx, dw_t, db_t = linear_backward(du, cache.transform)",
                                            "dx, dw_t, db_t = linear_backward(da, cache.transform)")],
       r"GELU's backward is missing", forward_ok=True),
    _m("backward: dgamma and dbeta swapped", [("return dx, dw_t, db_t, dgamma, dbeta, dword, dbias",
                                               "return dx, dw_t, db_t, dbeta, dgamma, dword, dbias")],
       r"dgamma and dbeta are swapped", forward_ok=True),
    _m("backward: decoder gradient transposed", [("return dx, dw_t, db_t, dgamma, dbeta, dword, dbias",
                                                  "return dx, dw_t, db_t, dgamma, dbeta, dword.T, dbias")],
       r"dword_embeddings is (transposed|laid out as E)", forward_ok=True),
    _m("backward: decoder bias not summed", [("return dx, dw_t, db_t, dgamma, dbeta, dword, dbias",
                                              "return dx, dw_t, db_t, dgamma, dbeta, dword, dlogits")],
       r"dout_bias has out_bias's shape", forward_ok=True),
    _m("tied: the decoder's share only", [
        ("    np.add.at(dE, ids.reshape(-1), dembedded.reshape(-1, dE.shape[1]))   # + every occurrence of every id\n", "")],
       r"only the decoder's gradient", forward_ok=True),
    _m("tied: the lookup's share only", [("dE = ddecoder.copy()", "dE = np.zeros_like(ddecoder)")],
       r"only the lookup's gradient", forward_ok=True),
    _m("tied: fancy-index += loses repeated ids", [
        ("    np.add.at(dE, ids.reshape(-1), dembedded.reshape(-1, dE.shape[1]))",
         "    dE[ids.reshape(-1)] += dembedded.reshape(-1, dE.shape[1])")],
       r"repeated id counts once", forward_ok=True),
    _m("tied: ddecoder modified in place", [("dE = ddecoder.copy()", "dE = ddecoder")],
       r"changed one of its inputs", forward_ok=True),
]

CORRECT = [
    Mistake("mlm_head", "backward by hand with explicit matmuls, a loop for the lookup", _changed(
        ("    dh, dword, dbias = linear_backward(dlogits, cache.decoder)           # dE (V,H), db (V,)\n",
         "    h, E, _ = cache.decoder\n    dh = dlogits @ E\n    dword = dlogits.T @ h\n    dbias = dlogits.sum(axis=0)\n"),
        ("    dx, dw_t, db_t = linear_backward(du, cache.transform)\n",
         "    x, w_t, _ = cache.transform\n    dx = du @ w_t\n    dw_t = du.T @ x\n    db_t = du.sum(axis=0)\n"),
        ("    np.add.at(dE, ids.reshape(-1), dembedded.reshape(-1, dE.shape[1]))   # + every occurrence of every id\n",
         "    for i, row in zip(ids.reshape(-1), dembedded.reshape(-1, dE.shape[1])):\n        dE[i] += row\n")),
        diagnosis=""),
    Mistake("mlm_head", "one-hot product for the lookup, einsum for the decoder", _changed(
        ("    dh, dword, dbias = linear_backward(dlogits, cache.decoder)           # dE (V,H), db (V,)\n",
         "    h, E, _ = cache.decoder\n    dh = np.einsum('mv,vh->mh', dlogits, E)\n"
         "    dword = np.einsum('mv,mh->vh', dlogits, h)\n    dbias = np.einsum('mv->v', dlogits)\n"),
        ("    dE = ddecoder.copy()                                                 # the decoder's share\n"
         "    np.add.at(dE, ids.reshape(-1), dembedded.reshape(-1, dE.shape[1]))   # + every occurrence of every id\n",
         "    V, H = ddecoder.shape\n    onehot = np.eye(V)[ids.reshape(-1)]\n"
         "    dE = ddecoder + onehot.T @ dembedded.reshape(-1, H)\n")),
        diagnosis=""),
]
