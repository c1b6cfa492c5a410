"""benchmarks/gpu_bench.py and gpu_check.sh without a GPU: the FLOP model, the peak table, the dry run
(NumPy, tiny shapes), one error line per failed section, the time budget; the check script's syntax and
the test files it hands to `pytest -m gpu`."""
import re
import subprocess
import sys

import pytest

from helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_bench  # noqa: E402


def run_bench(*args):
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_bench.py"), *args], capture_output=True,
                       text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_flop_model_gives_the_issues_2_24_tflop_for_bert_base():
    flops = gpu_bench.pretraining_step_flops(12, 768, 3072, 30522, 32, 128)
    assert abs(flops / 1e12 - 2.24) < 0.005                       # 2.2377 TFLOP
    # the encoder alone: 12 layers x (Q/K/V 14.5 + attention 1.61 + output 4.83 + FFN 38.7 GFLOP), x3
    assert gpu_bench.encoder_forward_flops(12, 768, 3072, 32, 128) == pytest.approx(715.1e9, rel=1e-3)
    assert gpu_bench.pretraining_step_flops(1, 8, 32, 10, 1, 4, predictions_per_seq=0) == \
        3 * (2 * 4 * 8 * 24 + 2 * 2 * 16 * 8 + 2 * 4 * 64 + 2 * 2 * 4 * 8 * 32 + 2 * 64 + 2 * 8 * 2)
    assert 2.24e12 / 495e12 == pytest.approx(4.5e-3, rel=0.01)    # the issue's 4.5 ms at the H100's TF32 peak


def test_peak_table_by_device_name():
    assert gpu_bench.device_peak("NVIDIA H100 80GB HBM3", "tf32") == 495
    assert gpu_bench.device_peak("NVIDIA H200", "fp16") == 989
    assert gpu_bench.device_peak("NVIDIA A100-SXM4-80GB", "tf32") == 156
    assert gpu_bench.device_peak("NVIDIA L4", "fp16") == 121
    assert gpu_bench.device_peak("NVIDIA L40S", "tf32") is None            # not an L4
    assert gpu_bench.device_peak("Tesla T4", "fp32") is None


def test_dry_run_prints_a_row_per_section_and_one_line_per_failure():
    out = run_bench("--dry-run")
    for section in ("train step fp32", "train step fp16", "inference fp32", "inference fp16"):
        assert re.search(rf"^{section} +[\d.]+ ms +[\d.e+-]+ TFLOP/s   peak unknown$", out, re.M), out
    # tf32 does not exist on NumPy: one error line per section, and the script goes on
    assert len(re.findall(r"^error: (train|inference) tf32: PrecisionError: .*$", out, re.M)) == 2
    assert "2.238 TFLOP at B32 T128" in out and "2 section(s) failed" in out


def test_budget_stops_new_sections():
    out = run_bench("--dry-run", "--budget", "0", "--precisions", "fp32")
    assert out.count("skipped: ") == 2 and "train step" not in out


def test_gpu_check_script_is_valid_bash_and_finds_the_gpu_tests():
    script = REPO / "benchmarks" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    found = subprocess.run(["bash", "-c", 'grep -rlE "pytest\\.mark\\.gpu|pytestmark = pytest\\.mark\\.gpu" tests '
                            "--include='test_*.py'"], capture_output=True, text=True, cwd=REPO).stdout.split()
    assert {"tests/ops/test_fused_cuda.py", "tests/backend/test_scatter_add.py",
            "tests/backend/test_precision_setting.py", "tests/test_gradcheck.py"} <= set(found)
