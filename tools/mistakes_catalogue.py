"""Write the generated sections of docs/teaching.md (one source of truth each).

    python tools/mistakes_catalogue.py            # rewrites the sections between their markers
    python tools/mistakes_catalogue.py --check    # exit 1 if docs/teaching.md is not current

Two sections, each between its markers:

- the exercises (EXERCISES_BEGIN .. EXERCISES_END): one row per exercise of minibert/exercises/catalog.py
  (its time estimate `minutes`, what it assesses, what to read first) and the total time, so that an
  exercise added or re-estimated changes the page;
- the mistakes catalogue (BEGIN .. END), from tests/exercises/mistakes/: a table of counts per exercise,
  then each exercise's named mistakes (what the learner did; "backward only" where the forward is
  right). Each mistake is planted by tests/exercises/test_mistakes.py and must fail with its own
  diagnosis.

tests/exercises/test_teaching.py checks that the page is current.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEACHING = REPO / "docs" / "teaching.md"
BEGIN = "<!-- mistakes catalogue: begin (written by tools/mistakes_catalogue.py, do not edit) -->"
END = "<!-- mistakes catalogue: end -->"
EXERCISES_BEGIN = "<!-- exercises table: begin (written by tools/mistakes_catalogue.py, do not edit) -->"
EXERCISES_END = "<!-- exercises table: end -->"

sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "exercises"))

from minibert.exercises import EXERCISES  # noqa: E402
from mistakes import all_mistakes  # noqa: E402


def catalogue() -> str:
    """The generated section (markdown), markers included."""
    mistakes = all_mistakes()
    by_exercise = {ex.name: [m for m in mistakes if m.exercise == ex.name] for ex in EXERCISES}
    lines = [BEGIN, "",
             f"{len(mistakes)} named learner mistake{'s' if len(mistakes) != 1 else ''}, each planted by a test and failed with its own diagnosis "
             "(tests/exercises/mistakes/, one module per exercise).", "",
             "| # | exercise | named mistakes |", "|---|---|---|"]
    lines += [f"| {ex.number:02d} | `{ex.name}` | {len(by_exercise[ex.name])} |" for ex in EXERCISES]
    for ex in EXERCISES:
        found = by_exercise[ex.name]
        if not found:
            continue
        lines += ["", f"**{ex.number:02d} `{ex.name}`**", ""]
        lines += [f"- {m.name}" + (" (backward only)" if m.forward_ok else "") for m in found]
    lines += ["", END]
    return "\n".join(lines)


def exercise_hours(exercises=EXERCISES) -> float:
    """The exercises' time estimates added up, in hours, to the nearest half hour."""
    return round(sum(ex.minutes for ex in exercises) / 30) / 2


def _read_first(ex) -> str:
    docs = [d.removeprefix("docs/") for d in ex.docs]
    notebooks = [f"notebook {n.split('_', 1)[0]}" for n in ex.notebooks]
    return ", ".join(docs + notebooks)


def exercises_table() -> str:
    """The generated table of the exercises (markers included): time, what it assesses, what to read first."""
    lines = [EXERCISES_BEGIN, "", "| # | exercise | time | assesses | read first |", "|---|---|---|---|---|"]
    lines += [f"| {ex.number:02d} | `{ex.name}` | {ex.minutes} min | {ex.assesses.replace('|', '/')} | "
              f"{_read_first(ex)} |" for ex in EXERCISES]
    total = sum(ex.minutes for ex in EXERCISES)
    lines += ["", f"About {exercise_hours():g} hours of exercises in all ({len(EXERCISES)} exercises, "
              f"{total} minutes: the sum of the estimates above), plus the reading and the notebooks of the "
              "learning path.", "", EXERCISES_END]
    return "\n".join(lines)


def _replace(text: str, begin: str, end: str, section: str, what: str) -> str:
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise SystemExit(f"{TEACHING}: the markers of {what} are missing")
    return text[:start] + section + text[stop + len(end):]


def updated(text: str) -> str:
    """`text` (docs/teaching.md) with its generated sections (exercises, mistakes) replaced by the current ones."""
    text = _replace(text, EXERCISES_BEGIN, EXERCISES_END, exercises_table(), "the exercises table")
    return _replace(text, BEGIN, END, catalogue(), "the mistakes catalogue")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = TEACHING.read_text(encoding="utf-8")
    new = updated(text)
    if "--check" in argv:
        if new != text:
            print(f"{TEACHING.relative_to(REPO)} is not current: run python tools/mistakes_catalogue.py")
            return 1
        return 0
    if new != text:
        from minibert.files import write_text
        write_text(TEACHING, new)
        print(f"wrote the generated sections of {TEACHING.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
