"""Every row of issue 16's target table in one command: minibert beside PyTorch/transformers.

    python benchmarks/run_all.py [--repeats 5] [--sections model2,model1,embed,pretrain] [--quick]

Rows (each a ratio taken in one run: minibert and the reference alternate, repeat after repeat, and
the median of each side is kept, so that noise from other processes hits both alike):

  model2    BertModel mini, batch 32 x 128, float32, dropout off, 2 threads each:
              forward + backward, wall time                           target <= 0.85x PyTorch's time
              forward only, inference mode (`with model.inference()`
              vs `torch.inference_mode()`), wall time                 target <= 0.9x
              achieved matmul FLOP/s during forward + backward, as a
              share of NumPy's float32 matmul peak on the model's own
              shapes, measured in the same run                        target >= 70%
  model1    the same forward + backward with 1 thread each (NumPy's OpenBLAS, MINIBERT_THREADS and
            torch), CPU seconds of the process                        target <= 0.8x
  embed     all-MiniLM-L6-v2 (needs the bundled model, and ../shared/data/sst2 for the second row):
              256 SST-2 sentences padded to 128 tokens, model + mean
              pooling, sentences/s                                    target >= 1.3x transformers
              2,000 real SST-2 sentences end to end (tokenize, sort
              by length, pad per batch, forward, pool, normalise)     target >= 2x transformers and
                                                                        >= 1.5x sentence-transformers
            "transformers end to end" is its fast tokenizer + BertModel under inference_mode + the same
            pooling, on the batches minibert makes (sorted by length, as sentence-transformers does).
  pretrain  BertForPreTraining mini, one training step (32 x 128, 20 masked positions per row,
            dropout on, AdamW, clipping at 1.0) against the gather-first reference: transformers'
            BertForPreTraining with its MLM head run on the labelled rows only, as minibert and
            google-research/bert do (benchmarks/pretrain_compare.py: gathered_loss)  target <= 0.85x

Each section runs in a child process of its own, with the thread settings in its environment
(OPENBLAS_NUM_THREADS is read once, when NumPy loads OpenBLAS); the parent prints the table. The
machine's CPU and BLAS are printed first (the same lines as docs/performance.md). `--quick` runs tiny
sizes (the test that the script still works); its figures mean nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
SECTIONS = ("model2", "model1", "embed", "pretrain")


# -- the machine -----------------------------------------------------------------------------------

def machine_lines() -> list[str]:
    """CPU model and cores (/proc/cpuinfo), NumPy's BLAS, its kernels and threads (threadpoolctl when
    installed: OpenBLAS's `architecture` is the kernel set it picked at run time, which
    `numpy.show_config()` does not say: that prints the build's baseline)."""
    import numpy as np
    lines = []
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
        name = next((x.split(":", 1)[1].strip() for x in info if x.startswith("model name")), "?")
        flags = next((x.split(":", 1)[1].split() for x in info if x.startswith("flags")), [])
        simd = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile") if f in flags]
        lines.append(f"CPU: {name}, {os.cpu_count()} logical cores, {' '.join(simd)}")
    except OSError:
        lines.append(f"CPU: {os.cpu_count()} logical cores (no /proc/cpuinfo)")
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    lines.append(f"NumPy {np.__version__}, BLAS {blas.get('name')} {blas.get('version')}")
    try:
        from threadpoolctl import threadpool_info
        for p in threadpool_info():
            lines.append(f"  threadpoolctl: {p.get('internal_api')} {p.get('version')}, kernels "
                         f"{p.get('architecture')}, {p.get('num_threads')} threads, {p.get('threading_layer')}")
    except ImportError:
        lines.append("  (threadpoolctl not installed: the run-time kernel set is not shown)")
    return lines


# -- timing ----------------------------------------------------------------------------------------

def interleaved(pairs, repeats, clock=time.perf_counter, warm_up=True):
    """Medians of `repeats` alternating calls of each function in `pairs` (one warm-up call each first,
    unless the caller has run them: the first pass over fresh large arrays pays page faults)."""
    for fn in pairs if warm_up else ():
        fn()
    times = [[] for _ in pairs]
    for _ in range(repeats):
        for i, fn in enumerate(pairs):
            t = clock()
            fn()
            times[i].append(clock() - t)
    return [statistics.median(t) for t in times]


# -- sections (each runs in a child process; returns a dict of figures) -----------------------------

def bert_model_pair(config, B, T):
    import torch
    import transformers
    from bench_model import hf_config, model_inputs
    from minibert import BertConfig, BertModel

    cfg = BertConfig.preset(config, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    ids, types, mask, d_seq, d_pool = model_inputs(cfg, B, T)
    model = BertModel(cfg, seed=0).eval()
    ref = transformers.BertModel(hf_config(cfg)).eval()
    t_ids, t_types, t_mask = (torch.tensor(a) for a in (ids, types, mask))
    t_dseq, t_dpool = torch.tensor(d_seq), torch.tensor(d_pool)

    def mb_step():
        model.forward(ids, types, mask)
        model.zero_grad()
        model.backward(d_seq, d_pool)

    def mb_infer():
        with model.inference():
            model.forward(ids, types, mask)

    def pt_step():
        ref.zero_grad()
        out = ref(input_ids=t_ids, token_type_ids=t_types, attention_mask=t_mask)
        torch.autograd.backward([out.last_hidden_state, out.pooler_output], [t_dseq, t_dpool])

    def pt_infer():
        with torch.inference_mode():
            ref(input_ids=t_ids, token_type_ids=t_types, attention_mask=t_mask)

    return cfg, mb_step, pt_step, mb_infer, pt_infer


def section_model2(a):
    import torch
    from bench_model import matmul_peak, model_matmul_flops
    torch.set_num_threads(a.threads)
    cfg, mb_step, pt_step, mb_infer, pt_infer = bert_model_pair(a.config, a.batch, a.seq)
    peak_before = matmul_peak(cfg, a.batch, a.seq)
    m_step, p_step = interleaved([mb_step, pt_step], a.repeats)
    m_inf, p_inf = interleaved([mb_infer, pt_infer], a.repeats)
    peak = max(peak_before, matmul_peak(cfg, a.batch, a.seq))   # before and after: the best of both
    flops = 3 * model_matmul_flops(cfg, a.batch, a.seq)
    return dict(step=(m_step, p_step), infer=(m_inf, p_inf), peak=peak, gflops=flops / m_step / 1e9,
                flops=flops)


def section_model1(a):
    import torch
    torch.set_num_threads(1)
    cfg, mb_step, pt_step, _, _ = bert_model_pair(a.config, a.batch, a.seq)
    m, p = interleaved([mb_step, pt_step], a.repeats, clock=time.process_time)
    return dict(step=(m, p))


def section_embed(a):
    import numpy as np
    import torch
    import transformers
    import minibert
    from bench_embed import read_sst2
    from minibert.apps.embed import _batches, l2_normalize, load_encoder, pool

    torch.set_num_threads(a.threads)
    encoder = load_encoder()
    folder = str(Path(encoder.name))
    hf = transformers.BertModel.from_pretrained(folder).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(folder)
    tok = encoder.tokenizer
    n_real, n_pad = (64, 32) if a.quick else (a.sentences, a.padded)
    sentences = read_sst2(Path(a.data) / "sst2" / "train.tsv", max(n_real, n_pad))
    real, padded_set = sentences[:n_real], sentences[:n_pad]

    def hf_model(batches):
        out = []
        with torch.inference_mode():
            for ids, mask in batches:
                h = hf(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state
                out.append(l2_normalize(pool(h.numpy(), mask)))
        return out

    def mb_model(batches):
        out = []
        with encoder.model.inference():
            for ids, mask in batches:
                h, _ = encoder.model.forward(ids, None, mask)
                out.append(l2_normalize(pool(h, mask)))
        return out

    # B. padded to --seq tokens: the model alone on identical (batch, seq) arrays
    enc = tok(padded_set, padding="max_length", truncation=True, max_length=a.seq, return_tensors="np")
    batches_b = [(enc["input_ids"][i:i + a.batch], enc["attention_mask"][i:i + a.batch])
                 for i in range(0, len(padded_set), a.batch)]
    m_pad, p_pad = interleaved([lambda: mb_model(batches_b), lambda: hf_model(batches_b)], a.repeats)

    # A. real sentences end to end
    order = None

    def hf_end_to_end():
        # transformers' own fast tokenizer, on the length-sorted batches minibert (and
        # sentence-transformers) make, then the model and the same pooling and normalisation
        nonlocal order
        if order is None:
            lengths = [len(x) for x in tok(real, truncation=True, max_length=encoder.max_length)["input_ids"]]
            order = _batches(lengths, a.batch)
        out = []
        with torch.inference_mode():
            for index in order:
                t = hf_tok([real[i] for i in index], padding=True, truncation=True,
                           max_length=encoder.max_length, return_tensors="pt")
                h = hf(**t).last_hidden_state.numpy()
                out.append(l2_normalize(pool(h, t["attention_mask"].numpy())))
        return out

    def mb_end_to_end():
        return minibert.embed(real, encoder, batch_size=a.batch, progress=False)

    fns = [mb_end_to_end, hf_end_to_end]
    st = None
    try:
        from sentence_transformers import SentenceTransformer
        st = SentenceTransformer(folder, device="cpu")
        fns.append(lambda: st.encode(real, batch_size=a.batch, show_progress_bar=False))
    except ImportError:
        pass
    # the warm-up passes, and a check that the vectors agree, so that the comparison is between equals
    mine = mb_end_to_end()
    theirs = np.concatenate(hf_end_to_end())
    order_flat = np.concatenate([np.asarray(i) for i in order])
    assert np.abs(mine[order_flat] - theirs).max() < 1e-4, "minibert and transformers disagree"
    if st is not None:
        fns[2]()
    times = interleaved(fns, a.repeats, warm_up=False)
    return dict(padded=(n_pad / m_pad, n_pad / p_pad), real=[n_real / t for t in times], n_pad=n_pad,
                n_real=n_real, st=st is not None)


def section_pretrain(a):
    import numpy as np
    import torch
    import transformers
    from bench_model import hf_config
    from bench_pretraining import make_batch
    from pretrain_compare import gathered_loss
    from minibert import BertConfig
    from minibert.model.heads.pretraining import BertForPreTraining
    from minibert.train.optim import AdamW, decays
    from minibert.train.pretrain import pretraining_step

    torch.set_num_threads(a.threads)
    cfg = BertConfig.preset(a.config)
    batch = make_batch(cfg, a.batch, a.seq, np.random.default_rng(0))
    model = BertForPreTraining(cfg, seed=0).train()
    opt = AdamW(model.params, lr=1e-4)
    ref = transformers.BertForPreTraining(hf_config(cfg)).train()
    topt = torch.optim.AdamW([{"params": [p for n, p in ref.named_parameters() if decays(n)], "weight_decay": 0.01},
                              {"params": [p for n, p in ref.named_parameters() if not decays(n)], "weight_decay": 0.0}],
                             lr=1e-4)
    tb = {k: torch.tensor(v) for k, v in batch.items()}

    def mb_step():
        pretraining_step(model, opt, [batch], lr=1e-4, max_grad_norm=1.0)

    def pt_step():
        topt.zero_grad()
        gathered_loss(ref, tb).backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
        topt.step()

    m, p = interleaved([mb_step, pt_step], a.repeats)
    return dict(step=(m, p))


# -- the parent: one child per section, then the table ----------------------------------------------

def child_env(threads: int) -> dict:
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    if threads == 1:
        env["MINIBERT_THREADS"] = "1"          # else minibert's own default (backend/blocks.py)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def run_section(name, argv, threads) -> dict:
    r = subprocess.run([sys.executable, __file__, "--child", name, *argv], capture_output=True, text=True,
                       env=child_env(threads))
    if r.returncode < 0:
        return {"error": f"killed by signal {-r.returncode}"}
    if r.returncode != 0:
        lines = [x for x in r.stderr.strip().splitlines() if x.strip() and "%|" not in x]   # no progress bars
        return {"error": (lines or ["?"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def row(label, ratio, target, ok, detail):
    mark = "yes" if ok else "no"
    print(f"{label:58s} {ratio:>9s} {target:>14s} {mark:>4s}   {detail}")


def print_rows(name, r, a, shape):
    """The table rows of section `name` from its child's figures `r`."""
    if "error" in r:
        print(f"{name}: failed: {r['error']}")
        return
    if name == "model2":
        (m, p), (mi, pi) = r["step"], r["infer"]
        row(f"BertModel {shape} fwd+bwd, {a.threads} threads, vs PyTorch time", f"{m / p:.2f}x", "<= 0.85x",
            m / p <= 0.85, f"{m:.3f} s vs {p:.3f} s")
        row(f"forward only, inference mode, {a.threads} threads", f"{mi / pi:.2f}x", "<= 0.9x", mi / pi <= 0.9,
            f"{mi:.3f} s vs {pi:.3f} s")
        share = r["gflops"] / r["peak"]
        row("achieved matmul FLOP/s during fwd+bwd, of NumPy peak", f"{100 * share:.0f}%", ">= 70%",
            share >= 0.7, f"{r['gflops']:.1f} of {r['peak']:.1f} GFLOP/s ({r['flops'] / 1e9:.1f} GFLOP)")
    if name == "model1":
        m, p = r["step"]
        row("same fwd+bwd, 1 thread each, CPU time", f"{m / p:.2f}x", "<= 0.8x", m / p <= 0.8,
            f"{m:.3f} s vs {p:.3f} s CPU")
    if name == "embed":
        mb, hf = r["padded"]
        row(f"MiniLM embedding, {r['n_pad']} sentences padded to {a.seq}, vs transformers", f"{mb / hf:.2f}x",
            ">= 1.3x", mb / hf >= 1.3, f"{mb:.1f} vs {hf:.1f} sentences/s")
        mb, hf, *st = r["real"]
        row(f"MiniLM, {r['n_real']} real SST-2 sentences end to end, vs transformers", f"{mb / hf:.2f}x",
            ">= 2x", mb / hf >= 2, f"{mb:.1f} vs {hf:.1f} sentences/s")
        if st:
            row("  same, vs sentence-transformers encode", f"{mb / st[0]:.2f}x", ">= 1.5x", mb / st[0] >= 1.5,
                f"{mb:.1f} vs {st[0]:.1f} sentences/s")
    if name == "pretrain":
        m, p = r["step"]
        row(f"BertForPreTraining {shape} step vs gather-first reference", f"{m / p:.2f}x", "<= 0.85x",
            m / p <= 0.85, f"{m:.3f} s vs {p:.3f} s")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--config", default="mini")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--padded", type=int, default=256)
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: checks the script works")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.quick:
        a.config, a.batch, a.seq, a.repeats = "tiny", 2, 16, 1
    if a.child:
        print(json.dumps(globals()[f"section_{a.child}"](a)))
        return 0

    passed = [f"--repeats={a.repeats}", f"--threads={a.threads}", f"--config={a.config}", f"--batch={a.batch}",
              f"--seq={a.seq}", f"--sentences={a.sentences}", f"--padded={a.padded}", f"--data={a.data}"]
    if a.quick:
        passed.append("--quick")
    sys.stdout.reconfigure(line_buffering=True)          # rows appear as their sections finish
    wanted = [s.strip() for s in a.sections.split(",") if s.strip()]
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown section(s) {', '.join(sorted(unknown))}; the sections: {', '.join(SECTIONS)}")
    os.environ["OPENBLAS_NUM_THREADS"] = str(a.threads)
    for line in machine_lines():
        print(line)
    print(f"date {time.strftime('%Y-%m-%d %H:%M')}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
          f", median of {a.repeats} interleaved repeats")
    print(f"{'row':58s} {'minibert':>9s} {'target':>14s} {'met':>4s}   figures")
    shape = f"{a.config} {a.batch}x{a.seq}"
    res = {}
    for name in wanted:                       # each section's rows as soon as it has run
        res[name] = run_section(name, passed, 1 if name == "model1" else a.threads)
        print_rows(name, res[name], a, shape)
    return 1 if any("error" in r for r in res.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
