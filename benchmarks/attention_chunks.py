"""Chunked attention on/off (minibert.ops.attention.CHUNKED), whole BertModel, interleaved repeats, wall and CPU time.

    PYTHONPATH=. python benchmarks/attention_chunks.py [minilm|mini]

B=32, T=128, random weights; inference forward, then training fwd+bwd. Medians of 5.
"""
import time, sys, numpy as np
from minibert.model.config import BertConfig
from minibert.model.bert import BertModel
from minibert.ops import attention
shape = sys.argv[1] if len(sys.argv) > 1 else "minilm"
if shape == "minilm":
    cfg = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
else:
    cfg = BertConfig.preset("mini")
m = BertModel(cfg, seed=0).eval()
B, T = 32, 128
ids = np.random.default_rng(0).integers(1000, 5000, size=(B, T))
def fwd():
    with m.inference():
        m.forward(ids)
def fwdbwd():
    m.train(); x, p = m.forward(ids); m.zero_grad(); m.backward(np.ones_like(x)); m.eval()
for name, f in (("inference fwd", fwd), ("train fwd+bwd", fwdbwd)):
    res = {False: [], True: []}
    for r in range(5):
        for ch in (False, True):
            attention.CHUNKED = ch
            w, c = time.perf_counter(), time.process_time(); f()
            res[ch].append((time.perf_counter() - w, time.process_time() - c))
    for ch in (False, True):
        a = np.median(np.array(res[ch]), axis=0)
        print(f"{shape} {name} chunked={ch}: wall {a[0]*1e3:.0f} ms, cpu {a[1]*1e3:.0f} ms")
