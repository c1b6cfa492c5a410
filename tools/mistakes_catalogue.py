"""Write the mistakes catalogue of docs/teaching.md from tests/exercises/mistakes/ (one source of truth).

    python tools/mistakes_catalogue.py            # rewrites the section between the markers
    python tools/mistakes_catalogue.py --check    # exit 1 if docs/teaching.md is not current

The section lies between BEGIN and END in docs/teaching.md: a table of counts per exercise, then each
exercise's named mistakes (what the learner did; "backward only" where the forward is right). Each
mistake is planted by tests/exercises/test_mistakes.py and must fail with its own diagnosis;
tests/exercises/test_teaching.py checks that the page is current.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEACHING = REPO / "docs" / "teaching.md"
BEGIN = "<!-- mistakes catalogue: begin (written by tools/mistakes_catalogue.py, do not edit) -->"
END = "<!-- mistakes catalogue: end -->"

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


def updated(text: str) -> str:
    """`text` (docs/teaching.md) with its catalogue section replaced by the current one."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{TEACHING}: the markers of the mistakes catalogue are missing")
    return text[:start] + catalogue() + text[end + len(END):]


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
        print(f"wrote the mistakes catalogue of {TEACHING.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
