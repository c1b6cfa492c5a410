"""The benchmark scripts still run (tiny sizes, one repeat): figures are not checked here, only that
the scripts work, so they do not rot between the runs that report them."""
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.parametrize("script,args", [
    ("bench_model.py", ["--config", "tiny", "--batch", "2", "--seq", "16", "--repeats", "1"]),
    ("bench_pretraining.py", ["--config", "tiny", "--batch", "2", "--seq", "16", "--repeats", "1"]),
    ("bench_finetune.py", ["--batch", "2", "--repeats", "1"]),
])
def test_benchmark_script_runs(script, args):
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], capture_output=True, text=True,
                       timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ratio" in r.stdout or "x " in r.stdout
