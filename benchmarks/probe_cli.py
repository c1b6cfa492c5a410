"""Bad inputs through the real command line: how many end as one clear line, how many as a traceback.

    python benchmarks/probe_cli.py                       # the code of this checkout
    python benchmarks/probe_cli.py --code /tmp/old       # another checkout (e.g. `git worktree add /tmp/old dcf3ac5`)
    python benchmarks/probe_cli.py --show traceback      # also list the probes that ended with a traceback
    python benchmarks/probe_cli.py --only "flag range"   # one category (repeat --only for more)

Every probe of tests/cli/bad_inputs.py (the table tests/cli/test_bad_inputs.py runs in-process) runs
here as its own `python -m minibert ...` process, with PYTHONPATH set to --code, in a small world
(a tiny pretraining run, a fine-tuning run, a corpus, a CSV ...) built once with that same code.
Each outcome is one of:

    one line      the exit code expected (2) and exactly one line on stderr, `error: ...`, no traceback
    traceback     a Python traceback reached the terminal
    exit 0        the command accepted the bad input and went on (silently wrong)
    other         anything else: argparse's usage block, exit code 1, several lines, a timeout

and, separately, "names it" (the one line matches the probe's expected message, which names the flag
or file and the problem), "files changed" (an input file or pre-existing run folder not
byte-identical afterwards) and "left behind" (the probe created a file or folder: a run folder, a
lock, an output). The table is printed by category, with the total.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "cli"))

from bad_inputs import CATEGORIES, PROBES, build_world, tree_hashes  # noqa: E402

OUTCOMES = ("one line", "traceback", "exit 0", "other")


def environment(code: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code), MPLBACKEND="Agg", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    env.pop("MINIBERT_BACKEND", None)
    return env


def run_minibert(argv, env, cwd, stdin=None, timeout=300) -> subprocess.CompletedProcess:
    data = stdin.encode("utf-8") if isinstance(stdin, str) else (stdin or b"")
    return subprocess.run([sys.executable, "-m", "minibert", *argv], input=data, capture_output=True, env=env,
                          cwd=cwd, timeout=timeout)


def outcome(probe, result) -> tuple[str, bool]:
    """(one of OUTCOMES, whether the error line matches the probe's expected message)."""
    if result is None:
        return "other", False
    err = result.stderr.decode("utf-8", "replace")
    out = result.stdout.decode("utf-8", "replace")
    if "Traceback (most recent call last)" in err + out:
        return "traceback", False
    if result.returncode == 0:
        return "exit 0", False
    lines = [line for line in err.splitlines() if line.strip()]
    if result.returncode == probe.code and len(lines) == 1 and lines[0].startswith("error: "):
        return "one line", re.search(probe.match, lines[0][len("error: "):]) is not None
    return "other", False


def probe_all(code: Path, root: Path, show: set, timeout: float, probes=PROBES) -> list[dict]:
    env = environment(code)
    world = build_world(root / "world", lambda argv: run_minibert(argv, env, root).returncode)
    results = []
    for n, probe in enumerate(probes):
        case = root / f"case-{n:03d}"
        case.mkdir()
        if probe.setup is not None:
            probe.setup(world, case)
        before = tree_hashes(world.root, case)
        start = time.perf_counter()
        argv = probe.argv(world, case)
        try:
            result = run_minibert(argv, env, case, probe.stdin, timeout)
        except subprocess.TimeoutExpired:
            result = None
        after = tree_hashes(world.root, case)
        changed = [p for p, h in before.items() if after.get(p) != h]
        created = set(after) - set(before)
        kind, named = outcome(probe, result)
        results.append({"probe": probe, "outcome": kind, "named": named, "changed": bool(changed),
                        "created": bool(created), "seconds": time.perf_counter() - start})
        if kind in show or ("unnamed" in show and kind == "one line" and not named):
            err = result.stderr.decode("utf-8", "replace").strip().splitlines() if result else ["(timed out)"]
            typed = shlex.join(argv).replace(str(root) + "/", "")
            print(f"[{kind}] minibert {typed}\n    " + "\n    ".join(err[-3:]), file=sys.stderr)
    return results


def table(results) -> str:
    rows = collections.OrderedDict((c, collections.Counter()) for c in CATEGORIES)
    for r in results:
        counts = rows[r["probe"].category]
        counts["probes"] += 1
        counts[r["outcome"]] += 1
        counts["names it"] += r["named"]
        counts["files changed"] += r["changed"]
        counts["left behind"] += r["created"]
    columns = ("probes", *OUTCOMES, "names it", "files changed", "left behind")
    lines = [f"{'category':<16}" + "".join(f"{c:>14}" for c in columns)]
    total = collections.Counter()
    for category, counts in rows.items():
        if counts["probes"]:
            lines.append(f"{category:<16}" + "".join(f"{counts[c]:>14}" for c in columns))
            total.update(counts)
    lines.append(f"{'total':<16}" + "".join(f"{total[c]:>14}" for c in columns))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--code", default=str(REPO), help="the checkout whose minibert runs (default: this one)")
    parser.add_argument("--show", action="append", default=[], choices=[*OUTCOMES, "unnamed"],
                        help="also list the probes with this outcome (repeat)")
    parser.add_argument("--only", action="append", choices=list(CATEGORIES), help="probe this category only (repeat)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per probe")
    args = parser.parse_args(argv)
    probes = [p for p in PROBES if not args.only or p.category in args.only]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="probe-cli-") as tmp:
        results = probe_all(Path(args.code).resolve(), Path(tmp), set(args.show), args.timeout, probes)
    print(f"{len(results)} probes of `minibert` with bad inputs, code from {Path(args.code).resolve()} "
          f"({time.perf_counter() - start:.0f} s)\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
