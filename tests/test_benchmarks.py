"""The benchmark scripts still run (tiny sizes, one repeat): figures are not checked here, only that
the scripts work, so they do not rot between the runs that report them."""
import re
import subprocess
import sys

import nbformat
import pytest

from helpers import REPO, data_path, minilm_path

NEEDS_DATA = {"bench_finetune.py": ("sst2", "train.tsv")}   # under ../shared/data: skipped without it


@pytest.mark.parametrize("script,args", [
    ("bench_model.py", ["--config", "tiny", "--batch", "2", "--seq", "16", "--repeats", "1"]),
    ("bench_pretraining.py", ["--config", "tiny", "--batch", "2", "--seq", "16", "--repeats", "1"]),
    ("bench_finetune.py", ["--batch", "2", "--repeats", "1"]),
    ("bench_fused.py", ["--batch", "2", "--seq", "16", "--hidden", "32", "--heads", "2", "--repeats", "1"]),
])
def test_benchmark_script_runs(script, args):
    if script in NEEDS_DATA:
        data_path(*NEEDS_DATA[script])
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], capture_output=True, text=True,
                       timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ratio" in r.stdout or "x " in r.stdout


def test_bench_long_line_prints_a_row_per_size():
    """benchmarks/bench_long_line.py on a 50 KB line: tokens, each stage's time, peak memory, truncation."""
    minilm_path()
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_long_line.py"), "--sizes", "0.05",
                        "--dupe", "1"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    assert re.search(r"^ 0\.05 +\d{1,3},\d{3}( +[\d.]+){8}$", r.stdout, re.M), r.stdout
    assert "peak MB" in r.stdout and "truncate s" in r.stdout


def test_bench_main_job_prints_time_figures_and_baselines():
    """benchmarks/bench_main_job.py on a 4-step main job: the times, every figure beside its baseline."""
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_main_job.py"), "--steps", "4",
                        "--eval-batches", "2", "--vocab-size", "3000"], capture_output=True, text=True,
                       timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    assert re.search(r"wall-clock [\d.]+ s, CPU [\d.]+ s", r.stdout) and "4 steps" in r.stdout
    for label in ("the most frequent word", "a unigram guess", "at [MASK] inputs", "the unigram model",
                  "the majority class"):
        assert label in r.stdout, label
    assert "the run's own verdict:\nmasked LM: held-out accuracy" in r.stdout


def test_finetune_compare_runs_both_sides_and_plots(tmp_path):
    """benchmarks/finetune_compare.py end to end on 8 SST-2 sentences: the minibert side, the
    transformers side from its run.json, then the report with the per-evaluation plot."""
    data_path("sst2")
    script = str(REPO / "benchmarks" / "finetune_compare.py")
    out = str(tmp_path / "ft")
    small = ["--out", out, "--train-limit", "8", "--dev-limit", "8", "--epochs", "2", "--batch-size", "4",
             "--max-seq-len", "16"]
    for cmd in (["minibert", "sst2", *small], ["reference", "sst2", "--out", out, "--threads", "1"],
                ["report", "--out", out, "--plot", str(tmp_path / "curves.png")]):
        r = subprocess.run([sys.executable, script, *cmd], capture_output=True, text=True, timeout=300, cwd=REPO)
        assert r.returncode == 0, (cmd, r.stderr[-2000:])
    import json
    ref = json.loads((tmp_path / "ft" / "sst2" / "reference" / "result.json").read_text())
    assert [e["step"] for e in ref["evaluations"]] == [2, 4]      # 8 sentences / batch 4, 2 epochs
    assert "sst2" in r.stdout and "minibert" in r.stdout and "transformers" in r.stdout
    assert (tmp_path / "curves.png").stat().st_size > 10_000


def test_bench_notebooks_prints_each_notebooks_wall_and_cpu_time(tmp_path):
    """benchmarks/bench_notebooks.py on notebooks made here (notebooks/ itself runs in test_notebooks.py): a
    row per notebook with its wall-clock and CPU seconds, and the total; a failing cell gives exit code 1."""
    def notebook(name, source):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(source)]
        nbformat.write(nb, tmp_path / name)
        return str(tmp_path / name)

    ok = notebook("ok.ipynb", f"import os, pathlib\nassert pathlib.Path.cwd() == pathlib.Path({str(tmp_path)!r})\n"
                              "assert 'MINIBERT_FULL' not in os.environ\nsum(i * i for i in range(10**5))")
    script = str(REPO / "benchmarks" / "bench_notebooks.py")
    r = subprocess.run([sys.executable, script, ok, ok], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = re.findall(r"^(ok\.ipynb|total)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", r.stdout, re.M)
    assert [name for name, *_ in rows] == ["ok.ipynb", "ok.ipynb", "total"], r.stdout
    assert all(float(wall) > 0 and float(cpu) > 0 for _, wall, cpu, _ in rows)
    assert "wall s" in r.stdout and "CPU s" in r.stdout

    bad = notebook("bad.ipynb", "raise ValueError('planted')")
    r = subprocess.run([sys.executable, script, bad], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 1 and "bad.ipynb: a cell raised an error" in r.stderr and "planted" in r.stderr


def test_run_all_prints_a_row_per_target():
    """benchmarks/run_all.py --quick (tiny sizes, no MiniLM): the machine's BLAS kernels first, then a row
    per target with minibert's ratio, the target and whether it is met."""
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run_all.py"), "--quick",
                        "--sections", "model2,model1,pretrain"], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-2000:])
    assert "NumPy" in r.stdout and "BLAS" in r.stdout
    for label, target in (("fwd+bwd, 2 threads", "<= 0.85x"), ("forward only, inference mode", "<= 0.9x"),
                          ("of NumPy peak", ">= 70%"), ("1 thread each, CPU time", "<= 0.8x"),
                          ("step vs gather-first reference", "<= 0.85x")):
        assert re.search(rf"{re.escape(label)}.* [\d.]+[x%] +{re.escape(target)} +(yes|no) ", r.stdout), label


def test_profile_ops_prints_a_row_per_op():
    """benchmarks/profile_ops.py on the tiny config: a row per op of the table (fused ones included), linears by shape with their
    GFLOP/s, the time outside the table, and exp / GELU in cache."""
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "profile_ops.py"), "--config", "tiny",
                        "--batch", "2", "--seq", "16", "--repeats", "1", "--mode", "train"],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    for op in ("bias_gelu fwd", "residual_layer_norm bwd", "layer_norm bwd", "scaled_dot_product_attention fwd",
               "dropout fwd", "embedding bwd"):                # the fused ops are profiled as the model runs them
        assert re.search(rf"^{op} +\d+ +[\d.]+ +[\d.]+%", r.stdout, re.M), op
    assert re.search(r"^linear 128->512 fwd +2 +[\d.]+ +[\d.]+% +[\d.]+$", r.stdout, re.M), r.stdout
    assert "outside the op table" in r.stdout and re.search(r"numpy\.exp [\d.]+ ns/element", r.stdout)
