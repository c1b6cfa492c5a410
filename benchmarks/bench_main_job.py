"""The main job, `python -m minibert pretrain`, timed, with its held-out figures beside their baselines.

    python benchmarks/bench_main_job.py                 # the default run (about 2 minutes on 2 cores)
    python benchmarks/bench_main_job.py --steps 250     # any extra flags go to `minibert pretrain`

Runs the command in a fresh temporary run folder, as the README states it, and prints its wall-clock
time, its CPU time (user + system, of the process and the threads it started), the final held-out
figures next to the context-free baselines it computed on the same positions, and the verdict the
run printed. The README's figures for the default run come from this script on a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIGURES = (  # (figure, its baseline, label)
    ("eval_mlm_accuracy", "eval_mlm_accuracy_most_frequent", "MLM accuracy (baseline: the most frequent word)"),
    ("eval_mlm_accuracy", "eval_mlm_accuracy_unigram", "MLM accuracy (baseline: a unigram guess)"),
    ("eval_mlm_accuracy_at_mask", "eval_mlm_accuracy_at_mask_most_frequent",
     "MLM accuracy at [MASK] inputs (baseline: the most frequent word)"),
    ("eval_perplexity", "eval_perplexity_unigram", "perplexity (baseline: the unigram model; lower is better)"),
    ("eval_nsp_accuracy", "eval_nsp_accuracy_majority", "NSP accuracy (baseline: the majority class)"),
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _, extra = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory(prefix="minibert-main-job-") as tmp:
        out = Path(tmp) / "run"
        command = [sys.executable, "-m", "minibert", "pretrain", "--no-progress", "--out", str(out), *extra]
        print("+", " ".join(command[1:]), flush=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=tmp)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            print(done.stdout + done.stderr, file=sys.stderr)
            return 1
        rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    last = [r for r in rows if "eval_mlm_accuracy" in r][-1]
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    print(f"\nwall-clock {wall:.1f} s, CPU {user + system:.1f} s (user {user:.1f} s, system {system:.1f} s), "
          f"{last['step']} steps")
    print(f"\n{'held-out, at the last step':66s} {'model':>8s} {'baseline':>9s} {'ratio':>7s}")
    for figure, baseline, label in FIGURES:
        if figure in last:
            print(f"{label:66s} {last[figure]:8.3f} {last[baseline]:9.3f} {last[figure] / last[baseline]:6.2f}x")
    verdict = done.stdout[done.stdout.find("masked LM: held-out accuracy"):]
    print("\nthe run's own verdict:\n" + verdict.rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
