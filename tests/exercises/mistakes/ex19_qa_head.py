"""Learner mistakes in exercise 19 (qa_head), and correct alternative forms."""
from textwrap import dedent

from mistakes import Mistake

E = "qa_head"

GOOD_FORWARD = '''
def _ce(logits, target, T):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    valid = target != T
    n = max(int(valid.sum()), 1)
    rows = np.arange(len(target))
    loss = -(log_p[rows, np.where(valid, target, 0)] * valid).sum() / n
    return loss, np.exp(log_p)


def span_head_forward(x, weight, bias, start_positions, end_positions):
    T = x.shape[1]
    z = x @ weight.T + bias
    start = np.clip(start_positions, 0, T)
    end = np.clip(end_positions, 0, T)
    loss_s, p_s = _ce(z[..., 0], start, T)
    loss_e, p_e = _ce(z[..., 1], end, T)
    return (loss_s + loss_e) / 2, (x, weight, p_s, p_e, start, end)
'''

GOOD_BACKWARD = '''
def span_head_backward(dloss, cache):
    x, weight, p_s, p_e, start, end = cache
    B, T, _ = x.shape
    dz = np.zeros((B, T, 2))
    for k, (p, y) in enumerate(((p_s, start), (p_e, end))):
        valid = y != T
        g = p.copy()
        g[np.arange(B), np.where(valid, y, 0)] -= 1
        dz[..., k] = g * valid[:, None] * dloss / 2 / max(int(valid.sum()), 1)
    dx = dz @ weight
    dweight = dz.reshape(-1, 2).T @ x.reshape(-1, x.shape[2])
    dbias = dz.sum(axis=(0, 1))
    return dx, dweight, dbias
'''


def forward(old, new):
    """The good forward with one line changed (a learner's whole function)."""
    assert old in GOOD_FORWARD, old
    return GOOD_FORWARD.replace(old, new) + GOOD_BACKWARD


def backward(old, new):
    assert old in GOOD_BACKWARD, old
    return GOOD_FORWARD + GOOD_BACKWARD.replace(old, new)


MISTAKES = [
    Mistake(E, "start and end columns swapped", forward(
        "loss_s, p_s = _ce(z[..., 0], start, T)\n    loss_e, p_e = _ce(z[..., 1], end, T)",
        "loss_s, p_s = _ce(z[..., 1], start, T)\n    loss_e, p_e = _ce(z[..., 0], end, T)"),
        diagnosis=r"start and end logits are swapped"),
    Mistake(E, "sum of the two losses", forward("return (loss_s + loss_e) / 2,", "return loss_s + loss_e,"),
            diagnosis=r"mean of the two cross-entropies"),
    Mistake(E, "positions not clamped", forward(
        "start = np.clip(start_positions, 0, T)\n    end = np.clip(end_positions, 0, T)",
        "start = start_positions\n    end = end_positions"),
        diagnosis=r"IndexError.*clamped to \[0, T\]"),
    Mistake(E, "negative positions index from the end", forward(
        "start = np.clip(start_positions, 0, T)\n    end = np.clip(end_positions, 0, T)",
        "start = np.minimum(start_positions, T)\n    end = np.minimum(end_positions, T)"),
        diagnosis=r"negative position indexes from the end"),
    Mistake(E, "negative positions ignored", forward(
        "start = np.clip(start_positions, 0, T)\n    end = np.clip(end_positions, 0, T)",
        "start = np.where(start_positions < 0, T, np.minimum(start_positions, T))\n"
        "    end = np.where(end_positions < 0, T, np.minimum(end_positions, T))"),
        diagnosis=r"negative position is not ignored"),
    Mistake(E, "mean over the whole batch", forward("n = max(int(valid.sum()), 1)", "n = len(target)"),
            diagnosis=r"divide by the batch size"),
    Mistake(E, "rows summed, not averaged", forward("n = max(int(valid.sum()), 1)", "n = 1"),
            diagnosis=r"sums over the rows"),
    Mistake(E, "0/0 when every position is ignored", forward("n = max(int(valid.sum()), 1)", "n = valid.sum()"),
            diagnosis=r"NaN.*cross-entropy 0, not 0/0"),
    Mistake(E, "the backward without the 1/2", backward("* dloss / 2 /", "* dloss /"),
            diagnosis=r"twice the expected ones.*1/2", forward_ok=True),
    Mistake(E, "the backward divides by the batch", backward("* dloss / 2 / max(int(valid.sum()), 1)", "* dloss / 2 / B"),
            diagnosis=r"divide by the batch size.*own counted rows", forward_ok=True),
    Mistake(E, "the backward ignores dloss", backward("* dloss / 2 /", "* 0.5 /"),
            diagnosis=r"ignore dloss", forward_ok=True),
    Mistake(E, "ignored rows get a gradient", backward("dz[..., k] = g * valid[:, None] * dloss", "dz[..., k] = g * dloss"),
            diagnosis=r"ignored row .* zero gradient", forward_ok=True),
    Mistake(E, "start and end gradients swapped", backward("dz[..., k] = g", "dz[..., 1 - k] = g"),
            diagnosis=r"start and end gradients are swapped", forward_ok=True),
    Mistake(E, "dweight transposed", backward("dweight = dz.reshape(-1, 2).T @ x.reshape(-1, x.shape[2])",
                                              "dweight = x.reshape(-1, x.shape[2]).T @ dz.reshape(-1, 2)"),
            diagnosis=r"dweight has shape \(\d+, 2\).*\(2, H\)", forward_ok=True),
    Mistake(E, "dbias summed over the batch only", backward("dbias = dz.sum(axis=(0, 1))", "dbias = dz.sum(axis=0)"),
            diagnosis=r"dbias has shape .*sum dz over both B and T", forward_ok=True),
    Mistake(E, "onehot not subtracted", backward("g[np.arange(B), np.where(valid, y, 0)] -= 1", "pass"),
            diagnosis=r"softmax minus the one-hot target", forward_ok=True),
]

CORRECT = [
    Mistake(E, "one-hot matrices and einsum", '''
        def span_head_forward(x, weight, bias, start_positions, end_positions):
            T = x.shape[1]
            z = np.einsum("bth,kh->btk", x, weight) + bias
            total, probs, targets = 0.0, [], []
            for k, pos in enumerate((start_positions, end_positions)):
                y = np.clip(pos, 0, T)
                logits = z[:, :, k]
                m = logits.max(axis=1, keepdims=True)
                lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
                counted = y < T
                onehot = np.zeros_like(logits)
                onehot[np.nonzero(counted)[0], y[counted]] = 1.0
                per_row = lse - (onehot * logits).sum(axis=1)
                total += per_row[counted].sum() / counted.sum() if counted.any() else 0.0
                probs.append(np.exp(logits - lse[:, None]))
                targets.append(y)
            return total / 2, (x, weight, probs[0], probs[1], targets[0], targets[1])

        def span_head_backward(dloss, cache):
            x, weight, p_s, p_e, start, end = cache
            B, T, H = x.shape
            grads = []
            for p, y in ((p_s, start), (p_e, end)):
                counted = y < T
                onehot = np.zeros_like(p)
                onehot[np.nonzero(counted)[0], y[counted]] = 1.0
                n = counted.sum()
                grads.append((p - onehot) * counted[:, None] * (0.5 * dloss / n if n else 0.0))
            dz = np.stack(grads, axis=-1)
            return np.einsum("btk,kh->bth", dz, weight), np.einsum("btk,bth->kh", dz, x), dz.sum(axis=(0, 1))
        ''', diagnosis=""),
    Mistake(E, "rows flattened, one side at a time", GOOD_FORWARD + dedent('''
        def span_head_backward(dloss, cache):
            x, weight, p_s, p_e, start, end = cache
            B, T, H = x.shape
            xs = x.reshape(B * T, H)
            dx = np.zeros_like(xs)
            dweight = np.zeros_like(weight)
            dbias = np.zeros(2)
            for k, (p, y) in enumerate(((p_s, start), (p_e, end))):
                rows = [r for r in range(B) if y[r] != T]
                d = np.zeros((B, T))
                for r in rows:
                    d[r] = p[r]
                    d[r, y[r]] -= 1.0
                    d[r] *= dloss / (2 * len(rows))
                flat = d.reshape(B * T)
                dx += np.outer(flat, weight[k])
                dweight[k] = flat @ xs
                dbias[k] = flat.sum()
            return dx.reshape(B, T, H), dweight, dbias
        '''), diagnosis=""),
]
