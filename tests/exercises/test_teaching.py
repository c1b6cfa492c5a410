"""docs/teaching.md is current: its exercises table and mistakes catalogue are the ones tools/mistakes_catalogue.py
writes from the exercises and tests/exercises/mistakes/, and it documents the instructor's commands; the learning
path of docs/index.md holds every exercise, and its times add up."""
from __future__ import annotations

import importlib.util
import re
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


def test_the_exercises_table_and_its_total_follow_the_exercises():
    tool = load_tool()
    text = tool.TEACHING.read_text(encoding="utf-8")
    section = text[text.index(tool.EXERCISES_BEGIN):text.index(tool.EXERCISES_END)]
    for ex in EXERCISES:
        assert f"| {ex.number:02d} | `{ex.name}` | {ex.minutes} min |" in section, ex.name
    hours = sum(ex.minutes for ex in EXERCISES) / 60
    assert f"About {tool.exercise_hours():g} hours of exercises in all" in section
    assert abs(tool.exercise_hours() - hours) <= 0.25
    stale = text.replace(section, section.replace(" min |", "0 min |", 1))
    assert tool.updated(stale) != stale                               # a stale estimate is caught


def _hours(cell: str) -> float:
    number, unit = cell.split()
    return float(number) / (60 if unit == "min" else 1)


def test_the_learning_path_holds_every_exercise_and_its_times_add_up():
    """docs/index.md's learning path: every exercise in one step, each step's time at least its exercises'
    estimates, the total and the exercises' hours stated as they add up."""
    tool = load_tool()
    text = (REPO / "docs" / "index.md").read_text(encoding="utf-8")
    path = text[text.index("## Learning path"):text.index("## Reading order")]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in path.splitlines()
            if re.match(r"\| \d+ \|", line)]
    minutes = {f"{ex.number:02d} `{ex.name}`": ex.minutes for ex in EXERCISES}
    placed = []
    for row in rows:
        found = [k for k in minutes if k in row[-2]]
        placed += found
        assert sum(minutes[k] for k in found) <= 60 * _hours(row[-1]), row
    assert sorted(placed) == sorted(minutes), set(minutes) ^ set(placed)
    total = sum(_hours(row[-1]) for row in rows)
    stated = re.search(r"About (\d+(?:\.\d+)?) hours in all, (\d+(?:\.\d+)?) of them exercises", path)
    assert stated, "the learning path states its total time"
    assert abs(float(stated.group(1)) - total) <= 0.5, (stated.group(0), total)
    assert float(stated.group(2)) == tool.exercise_hours(), (stated.group(0), tool.exercise_hours())
