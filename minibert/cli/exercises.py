"""`minibert exercises {list,start,check,report,capstone}`: the command line of the classroom exercises.

`python -m minibert.exercises ...` runs the same commands (`main` below); docs/teaching.md is the
teacher's guide.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from minibert import checks
from minibert.cli.command import Command, Parser, add_commands, errors_as_messages, run_command
from minibert.errors import InputError
from minibert.exercises import EXERCISES, check_workspace, get, grade_reference, start
from minibert.exercises import capstone
from minibert.exercises.base import DEFAULT_TIMEOUT_S, GRADER_SEED_VARIABLE, grader_seed
from minibert.exercises.formats import FORMATS, as_gradescope, as_json
from minibert.exercises.report import write_report
from minibert.files import write_text

__all__ = ["COMMANDS", "main"]

DESCRIPTION = "Classroom exercises with an autograder (docs/teaching.md)."


@dataclass(kw_only=True)
class ListArgs:
    """`list` takes no arguments."""


def run_list(args: ListArgs) -> int:
    """The exercises in learning-path order, with time estimates."""
    total = 0
    print(f"{'#':<3}{'name':<22}{'time':>8}  what you implement")
    for ex in EXERCISES:
        total += ex.minutes
        print(f"{ex.number:02d} {ex.name:<22}{ex.minutes:>5} min  {ex.title}")
    print(f"\n{len(EXERCISES)} exercises, about {total / 60:.1f} hours in all. "
          f"Start with: python -m minibert.exercises start (a workspace in {DEFAULT_WORKSPACE}/)")
    return 0


# Where a workspace goes unless told: under runs/ (which git ignores), not in the repository's root
DEFAULT_WORKSPACE = "runs/exercises"


@dataclass(kw_only=True)
class StartArgs:
    dir: str = field(default=DEFAULT_WORKSPACE, metadata={
        "positional": True, "nargs": "?", "help": f"the workspace folder, created (default: {DEFAULT_WORKSPACE})"})
    force: bool = field(default=False, metadata={"help": "overwrite existing files (a learner's work!)"})


def run_start(args: StartArgs) -> int:
    """Write the workspace, say what was kept and where to begin."""
    if Path(args.dir).exists() and not Path(args.dir).is_dir():
        raise InputError(f"{args.dir} is a file, not a folder: give the folder of the workspace to write")
    done = start(args.dir, force=args.force)
    print(f"wrote {len(done['written'])} files in {args.dir}")
    if done["kept"]:
        print(f"kept {len(done['kept'])} existing files (your work; --force overwrites them): "
              + ", ".join(p.name for p in done["kept"][:6]) + (" ..." if len(done["kept"]) > 6 else ""))
    print(f"\nNext: open {args.dir}/notebooks/exercises/01_wordpiece.ipynb, or edit "
          f"{args.dir}/01_wordpiece.py and run\n    python -m minibert.exercises check {args.dir} wordpiece")
    return 0


@dataclass(kw_only=True)
class CheckArgs:
    dir: str | None = field(default=None, metadata={"positional": True, "nargs": "?",
                                                     "help": f"the workspace folder (default: {DEFAULT_WORKSPACE}); "
                                                             f"give it to name exercises"})
    names: list[str] = field(metadata={"positional": True, "nargs": "*",
                                       "help": "exercises to grade (name or number); all by default"})
    reference: bool = field(default=False, metadata={
        "help": "grade minibert's own functions instead of a workspace (then every name is an exercise)"})
    timeout: float = field(default=DEFAULT_TIMEOUT_S, metadata={
        "check": checks.finite_non_negative,
        "help": f"seconds per check before a function counts as hanging (default {DEFAULT_TIMEOUT_S:g}; 0: none)"})
    format: str = field(default="text", metadata={
        "choices": FORMATS, "help": "text: the reports a learner reads; json: one object per exercise (checks, "
                                    "statuses, messages, score); gradescope: Gradescope's autograder results.json"})
    out: str | None = field(default=None, metadata={
        "help": "write the json/gradescope output to this file (atomically) instead of standard output"})
    seed: int | None = field(default=None, metadata={
        "help": f"seed of every random case of the grader (default: ${GRADER_SEED_VARIABLE}, else 0): "
                f"an instructor's seed makes a hard-coded answer fail"})


def run_check(args: CheckArgs) -> int:
    """Grade, print each report and a summary (or write json/gradescope); exit code 1 if any exercise does
    not pass."""
    if args.out is not None and args.format == "text":
        raise InputError("--out is for --format json or gradescope (the text report goes to standard output)")
    # `check --reference layer_norm`: there is no workspace, the first name sits in the dir slot
    names = [args.dir, *args.names] if args.reference and args.dir is not None else args.names
    names = [get(n).name for n in names]                          # an unknown name is an error here
    workspace = args.dir if args.dir is not None else DEFAULT_WORKSPACE
    if not args.reference and not Path(workspace).is_dir():
        raise InputError(f"no workspace at {workspace}: create one with "
                         f"`python -m minibert.exercises start {workspace}`")
    timeout = args.timeout if args.timeout > 0 else None
    seed = grader_seed(args.seed)
    start_time = time.perf_counter()
    if args.reference:
        results = grade_reference(names, timeout_s=timeout, seed=seed)
    else:
        results = check_workspace(workspace, names, timeout_s=timeout, seed=seed)
    passed = sum(r.passed for r in results)
    if args.format != "text":
        seconds = time.perf_counter() - start_time
        data = (as_json(results, seed=seed, seconds=seconds) if args.format == "json"
                else as_gradescope(results, seconds=seconds))
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        if args.out is None:
            print(text, end="")
        else:
            write_text(args.out, text)
            print(f"{passed} of {len(results)} exercises pass; {args.format} results written to {args.out}")
        return 0 if passed == len(results) else 1
    for r in results:
        print(r.format())
        print()
    print("Summary" + (" (minibert's own functions)" if args.reference else ""))
    for r in results:
        print("  " + r.summary_line())
    print(f"{passed} of {len(results)} exercises pass ({time.perf_counter() - start_time:.1f} s).")
    return 0 if passed == len(results) else 1


@dataclass(kw_only=True)
class ReportArgs:
    dir: str = field(default=DEFAULT_WORKSPACE, metadata={
        "positional": True, "nargs": "?", "help": f"the workspace folder (default: {DEFAULT_WORKSPACE})"})
    timeout: float = field(default=DEFAULT_TIMEOUT_S, metadata={
        "check": checks.finite_non_negative,
        "help": f"seconds per check before a function counts as hanging (default {DEFAULT_TIMEOUT_S:g}; 0: none)"})
    seed: int | None = field(default=None, metadata={
        "help": f"seed of the grader's random cases (default: ${GRADER_SEED_VARIABLE}, else 0)"})


def run_report(args: ReportArgs) -> int:
    """Grade the workspace and write DIR/report.md and DIR/report.html (results and written answers)."""
    if not Path(args.dir).is_dir():
        raise InputError(f"no workspace at {args.dir}: create one with "
                         f"`python -m minibert.exercises start {args.dir}`")
    done = write_report(args.dir, timeout_s=args.timeout if args.timeout > 0 else None, seed=args.seed)
    print(f"{done['passed']} of {done['total']} exercises pass, {done['answered']} of {done['questions']} "
          f"questions answered.\nwrote {done['markdown']} and {done['html']}: hand them in.")
    return 0


@dataclass(kw_only=True)
class CapstoneArgs:
    dir: str = field(default=DEFAULT_WORKSPACE, metadata={
        "positional": True, "nargs": "?", "help": f"the workspace folder (default: {DEFAULT_WORKSPACE})"})
    steps: int = field(default=capstone.Recipe.steps, metadata={
        "check": checks.positive, "help": f"pretraining steps of each of the two runs (default {capstone.Recipe.steps}: a few minutes)"})
    seed: int = field(default=capstone.Recipe.seed, metadata={"help": "seed of the data, the init and dropout"})


def run_capstone(args: CapstoneArgs) -> int:
    """Build a BERT from the workspace's functions, gradient-check it, train it next to minibert's.
    Exit code 0 when the gradient check passes and the two loss curves coincide, 1 otherwise."""
    if not Path(args.dir).is_dir():
        raise InputError(f"no workspace at {args.dir}: create one with `python -m minibert.exercises start {args.dir}`")
    if args.steps < 1:
        raise InputError(f"--steps must be at least 1, got {args.steps}")
    summary = capstone.run(args.dir, capstone.Recipe(steps=args.steps, seed=args.seed))
    return 0 if summary["gradcheck_passed"] and summary["parted_at"] is None else 1


SUBCOMMANDS = (
    Command("list", "the exercises in learning-path order, with time estimates", ListArgs, run_list),
    Command("start", "write a student workspace: starters and one notebook per exercise", StartArgs, run_start),
    Command("check", "grade a workspace; exit code 1 if any exercise does not pass", CheckArgs, run_check),
    Command("report", "write DIR/report.md and report.html: the grader's results and your written answers",
            ReportArgs, run_report),
    Command("capstone", "your functions as a BERT: gradient-check it, pretrain it next to minibert's, compare",
            CapstoneArgs, run_capstone),
)

COMMANDS = (
    Command("exercises", "classroom exercises: list them, start a workspace, check it, write a report, the capstone",
            description=DESCRIPTION,
            subcommands=SUBCOMMANDS),
)


def main(argv=None) -> int:
    """`python -m minibert.exercises ...`: the sub-commands of `minibert exercises`, on their own."""
    parser = Parser(prog="python -m minibert.exercises", description=DESCRIPTION)
    add_commands(parser, SUBCOMMANDS)
    namespace = parser.parse_args(argv)
    with errors_as_messages():
        return run_command(namespace)
