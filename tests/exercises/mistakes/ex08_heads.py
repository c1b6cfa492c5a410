"""Learner mistakes in exercise 08 (heads): reshape vs transpose, contiguous heads, dtype, the inverse."""
from mistakes import Mistake

SPLIT = '''
def split_heads(x, num_heads):
    B, T, H = x.shape
    return {body}
'''
MERGE = '''
def merge_heads(x):
    B, A, T, d = x.shape
    return {body}
'''

MISTAKES = [
    Mistake("heads", "split by reshape only", SPLIT.format(body="x.reshape(B, num_heads, T, H // num_heads)"),
            diagnosis=r"mixes tokens across heads"),
    Mistake("heads", "split interleaves the heads", SPLIT.format(
        body="x.reshape(B, T, H // num_heads, num_heads).transpose(0, 3, 1, 2)"), diagnosis=r"contiguous columns"),
    Mistake("heads", "split with the last two axes swapped", SPLIT.format(
        body="x.reshape(B, T, num_heads, H // num_heads).transpose(0, 2, 3, 1)"), diagnosis=r"last two axes are swapped"),
    Mistake("heads", "split without the transpose", SPLIT.format(body="x.reshape(B, T, num_heads, H // num_heads)"),
            diagnosis=r"heads before tokens"),
    Mistake("heads", "split with a hard-coded head size", SPLIT.format(
        body="x.reshape(B, T, num_heads, 4).transpose(0, 2, 1, 3)"), diagnosis=r"cannot reshape|ValueError"),
    Mistake("heads", "split converts to float64", SPLIT.format(
        body="x.reshape(B, T, num_heads, H // num_heads).transpose(0, 2, 1, 3).astype(np.float64)"),
        diagnosis=r"float64 for a float32 input"),
    Mistake("heads", "merge by reshape only", MERGE.format(body="x.reshape(B, T, A * d)"),
            diagnosis=r"mixes the tokens of different heads"),
    Mistake("heads", "merge interleaves the columns", MERGE.format(body="x.transpose(0, 2, 3, 1).reshape(B, T, A * d)"),
            diagnosis=r"interleaved"),
    Mistake("heads", "merge swaps the wrong axes", MERGE.format(body="x.swapaxes(2, 3).reshape(B, T, A * d)"),
            diagnosis=r"token and head-size axes are swapped"),
    Mistake("heads", "merge returns float32 always", MERGE.format(
        body="x.transpose(0, 2, 1, 3).reshape(B, T, A * d).astype(np.float32)"),
        diagnosis=r"float32 for a float64 input|dtype"),
    Mistake("heads", "split works in place on the input", '''
def split_heads(x, num_heads):
    B, T, H = x.shape
    x[...] = x.reshape(B, num_heads, T, H // num_heads).transpose(0, 2, 1, 3).reshape(B, T, H)
    return x.reshape(B, T, num_heads, H // num_heads).transpose(0, 2, 1, 3)
''', diagnosis=r"changed its input|wrong|mixes"),
]

CORRECT = [
    Mistake("heads", "swapaxes and -1 sizes", '''
def split_heads(x, num_heads):
    B, T, H = x.shape
    return x.reshape(B, T, num_heads, -1).swapaxes(1, 2)

def merge_heads(x):
    B, A, T, d = x.shape
    return np.ascontiguousarray(x.swapaxes(1, 2)).reshape(B, T, -1)
''', diagnosis=""),
    Mistake("heads", "einsum-free loops over heads", '''
def split_heads(x, num_heads):
    d = x.shape[-1] // num_heads
    return np.stack([x[:, :, a * d:(a + 1) * d] for a in range(num_heads)], axis=1)

def merge_heads(x):
    return np.concatenate([x[:, a] for a in range(x.shape[1])], axis=-1)
''', diagnosis=""),
]
