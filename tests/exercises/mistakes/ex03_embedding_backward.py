"""Learner mistakes in exercise 03 (embedding_backward), and correct forms written differently."""
from mistakes import Mistake

E = "embedding_backward"

REFERENCE = '''
    def embedding_backward(dout, cache, dweight=None, padding_idx=None):
        ids, shape = cache
        if dweight is None:
            dweight = np.zeros(shape, dtype=dout.dtype)
        flat = ids.reshape(-1)
        rows = dout.reshape(-1, shape[1])
        if padding_idx is not None:
            keep = flat != padding_idx
            flat, rows = flat[keep], rows[keep]
        np.add.at(dweight, flat, rows)
        return dweight
    '''


def _variant(old, new):
    assert old in REFERENCE, old
    return REFERENCE.replace(old, new)


ADD = "np.add.at(dweight, flat, rows)"

MISTAKES = [
    Mistake(E, "fancy-indexed += (repeated ids counted once)", _variant(ADD, "dweight[flat] += rows"),
            diagnosis=r"wrong for the ids that occur several times", forward_ok=True),
    Mistake(E, "fancy-indexed assignment", _variant(ADD, "dweight[flat] = rows"),
            diagnosis=r"wrong for the ids that occur several times|buffer's old content is lost", forward_ok=True),
    Mistake(E, "a fresh zero array when dweight is given", _variant(
        "if dweight is None:\n            dweight = np.zeros(shape, dtype=dout.dtype)",
        "dweight = np.zeros(shape, dtype=dout.dtype)"),
            diagnosis=r"buffer's old content is lost", forward_ok=True),
    Mistake(E, "a new array returned instead of the buffer", _variant(
        ADD + "\n        return dweight", "grad = np.zeros(shape)\n        np.add.at(grad, flat, rows)\n"
        "        return dweight + grad"),
            diagnosis=r"returned a new array instead of the dweight buffer", forward_ok=True),
    Mistake(E, "padding_idx ignored", _variant("if padding_idx is not None:", "if False:"),
            diagnosis=r"padding_idx = 5 is ignored", forward_ok=True),
    Mistake(E, "padding_idx 0 taken for no padding", _variant("if padding_idx is not None:", "if padding_idx:"),
            diagnosis=r"padding_idx = 0 is ignored.*0 is a valid padding id", forward_ok=True),
    Mistake(E, "the padding row zeroed afterwards", _variant(
        ADD, ADD.replace("flat, rows", "ids.reshape(-1), dout.reshape(-1, shape[1])")
        + "\n        if padding_idx is not None:\n            dweight[padding_idx] = 0.0").replace(
        "flat, rows = flat[keep], rows[keep]", "pass"),
            diagnosis=r"row padding_idx was zeroed after the sum", forward_ok=True),
    Mistake(E, "a hard-coded [PAD] id 0", _variant("keep = flat != padding_idx", "keep = flat != 0"),
            diagnosis=r"positions of id 0 were left out, not those of padding_idx = 5", forward_ok=True),
    Mistake(E, "ids and dout flattened in different orders", _variant(
        "flat = ids.reshape(-1)", "flat = ids.T.reshape(-1)"),
            diagnosis=r"flattened in different orders", forward_ok=True),
    Mistake(E, "the mean over the occurrences of an id", _variant(
        ADD, ADD + "\n        counts = np.bincount(flat, minlength=shape[0])[:, None]\n"
        "        dweight /= np.maximum(counts, 1)"),
            diagnosis=r"mean of the gradients of its occurrences", forward_ok=True),
    Mistake(E, "an integer buffer", _variant("np.zeros(shape, dtype=dout.dtype)", "np.zeros(shape, dtype=np.int64)")
            .replace(ADD, "np.add.at(dweight, flat, rows.astype(np.int64))"),
            diagnosis=r"dtype int64", forward_ok=True),
]

CORRECT = [
    Mistake(E, "a loop over the positions", '''
    def embedding_backward(dout, cache, dweight=None, padding_idx=None):
        ids, shape = cache
        if dweight is None:
            dweight = np.zeros(shape, dtype=dout.dtype)
        rows = dout.reshape(-1, shape[1])
        for n, v in enumerate(ids.reshape(-1)):
            if v != padding_idx:
                dweight[v] += rows[n]
        return dweight
    ''', diagnosis=""),
    Mistake(E, "the one-hot product of the derivation", '''
    def embedding_backward(dout, cache, dweight=None, padding_idx=None):
        ids, shape = cache
        flat = ids.reshape(-1)
        onehot = (flat[:, None] == np.arange(shape[0])[None, :]).astype(dout.dtype)   # (N, V)
        if padding_idx is not None:
            onehot[:, padding_idx] = 0.0
        grad = onehot.T @ dout.reshape(-1, shape[1])                                   # (V, H)
        if dweight is None:
            return grad
        dweight += grad
        return dweight
    ''', diagnosis=""),
    Mistake(E, "np.bincount per feature", '''
    def embedding_backward(dout, cache, dweight=None, padding_idx=None):
        ids, shape = cache
        V, H = shape
        flat = ids.reshape(-1)
        rows = dout.reshape(-1, H)
        weights = (flat != padding_idx).astype(dout.dtype)
        grad = np.stack([np.bincount(flat, rows[:, h] * weights, minlength=V) for h in range(H)], axis=1)
        if dweight is None:
            return grad
        dweight += grad
        return dweight
    ''', diagnosis=""),
]
