"""The README's two commands are what CI runs and what a newcomer types."""
import re
import subprocess

from conftest import REPO


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


def test_main_command_installs_and_runs_gradcheck():
    cmd = readme_command("main-command")
    assert cmd.startswith("python3 -m venv .venv") and "requirements.txt" in cmd
    assert cmd.endswith("python -m minibert gradcheck")


def test_main_job_runs(tmp_path):
    """`python -m minibert gradcheck` (the main job) exits 0 and prints a passing table."""
    import sys
    r = subprocess.run([sys.executable, "-m", "minibert", "gradcheck", "--config", "odd"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAIL" not in r.stdout and re.search(r"(\d+)/\1 passed", r.stdout)
