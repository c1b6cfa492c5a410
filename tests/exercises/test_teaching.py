"""docs/teaching.md is current: its mistakes catalogue is the one tools/mistakes_catalogue.py writes from
tests/exercises/mistakes/, and it documents the instructor's commands."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from minibert.exercises import EXERCISES

REPO = Path(__file__).resolve().parents[2]


def load_tool():
    spec = importlib.util.spec_from_file_location("mistakes_catalogue", REPO / "tools" / "mistakes_catalogue.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_mistakes_catalogue_in_teaching_md_is_current():
    tool = load_tool()
    text = tool.TEACHING.read_text(encoding="utf-8")
    assert tool.updated(text) == text, "docs/teaching.md is not current: run python tools/mistakes_catalogue.py"
    section = text[text.index(tool.BEGIN):text.index(tool.END)]
    for m in tool.all_mistakes():
        assert f"- {m.name}" in section, m.id
    for ex in EXERCISES:
        assert f"| {ex.number:02d} | `{ex.name}` |" in section, ex.name
    stale = text.replace(section, section.replace("| 0", "| 9", 1).replace("| 1", "| 9", 1))
    assert tool.updated(stale) != stale                               # a stale table is caught


def test_teaching_md_documents_the_instructors_side():
    text = (REPO / "docs" / "teaching.md").read_text(encoding="utf-8")
    for needed in ("--format gradescope --out /autograder/results/results.json", "--format json",
                   "MINIBERT_GRADER_SEED", "run_autograder", "setup.sh", "python -m minibert.exercises report",
                   "## A syllabus", "capstone", "tests/exercises/test_no_leaks.py"):
        assert needed in text, needed
