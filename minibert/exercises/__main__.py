"""`python -m minibert.exercises {list,start,check}`: the command line of the classroom exercises."""
from __future__ import annotations

import argparse
import sys
import time

from minibert.exercises import EXERCISES, check_workspace, get, grade_reference, start
from minibert.exercises.base import DEFAULT_TIMEOUT_S


def _list() -> int:
    total = 0
    print(f"{'#':<3}{'name':<22}{'time':>8}  what you implement")
    for ex in EXERCISES:
        total += ex.minutes
        print(f"{ex.number:02d} {ex.name:<22}{ex.minutes:>5} min  {ex.title}")
    print(f"\n{len(EXERCISES)} exercises, about {total / 60:.1f} hours in all. "
          f"Start with: python -m minibert.exercises start DIR")
    return 0


def _start(args) -> int:
    done = start(args.dir, force=args.force)
    print(f"wrote {len(done['written'])} files in {args.dir}")
    if done["kept"]:
        print(f"kept {len(done['kept'])} existing files (your work; --force overwrites them): "
              + ", ".join(p.name for p in done["kept"][:6]) + (" ..." if len(done["kept"]) > 6 else ""))
    print(f"\nNext: open {args.dir}/notebooks/exercises/01_wordpiece.ipynb, or edit "
          f"{args.dir}/01_wordpiece.py and run\n    python -m minibert.exercises check {args.dir} wordpiece")
    return 0


def _check(args) -> int:
    try:
        names = [get(n).name for n in args.names]
    except KeyError as err:
        print(err.args[0], file=sys.stderr)
        return 2
    timeout = args.timeout if args.timeout > 0 else None
    start_time = time.perf_counter()
    if args.reference:
        results = grade_reference(names, timeout_s=timeout)
    else:
        if args.dir is None:
            print("check needs the workspace folder (or --reference)", file=sys.stderr)
            return 2
        results = check_workspace(args.dir, names, timeout_s=timeout)
    for r in results:
        print(r.format())
        print()
    print("Summary" + (" (minibert's own functions)" if args.reference else ""))
    for r in results:
        print("  " + r.summary_line())
    passed = sum(r.passed for r in results)
    print(f"{passed} of {len(results)} exercises pass ({time.perf_counter() - start_time:.1f} s).")
    return 0 if passed == len(results) else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minibert.exercises",
                                     description="Classroom exercises with an autograder (docs/teaching.md).")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the exercises in learning-path order, with time estimates")
    p = sub.add_parser("start", help="write a student workspace: starters and one notebook per exercise")
    p.add_argument("dir")
    p.add_argument("--force", action="store_true", help="overwrite existing files (a learner's work!)")
    p = sub.add_parser("check", help="grade a workspace; exit code 1 if any exercise does not pass")
    p.add_argument("dir", nargs="?", help="the workspace folder")
    p.add_argument("names", nargs="*", help="exercises to grade (name or number); all by default")
    p.add_argument("--reference", action="store_true",
                   help="grade minibert's own functions instead of a workspace (then every name is an exercise)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                   help=f"seconds per check before a function counts as hanging (default {DEFAULT_TIMEOUT_S:g}; 0: none)")
    args = parser.parse_args(argv)
    if args.command == "check" and args.reference and args.dir is not None:
        args.names = [args.dir, *args.names]          # `check --reference layer_norm`: the dir slot is a name
        args.dir = None
    return {"list": lambda: _list(), "start": lambda: _start(args), "check": lambda: _check(args)}[args.command]()


if __name__ == "__main__":
    sys.exit(main())
