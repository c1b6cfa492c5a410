"""The grader's results as data, for a course that grades automatically: `check --format json|gradescope`.

    json        {"seed", "seconds", "passed", "total", "exercises": [{number, name, title, verdict, passed,
                score, max_score, seconds, notes, checks: [{title, status, message, hint, detail}]}]}
                score: the fraction of the exercise's checks that pass (0 while anything is not implemented)
    gradescope  Gradescope's autograder results.json (https://gradescope-autograders.readthedocs.io/en/latest/specs/):
                one test per exercise, score = max_score when every check passes, else 0; its output is
                the report the learner reads (`ExerciseResult.format()`)

Neither holds anything the text report does not: no expected array, no reference code.
"""
from __future__ import annotations

__all__ = ["FORMATS", "exercise_score", "as_json", "as_gradescope"]

FORMATS = ("text", "json", "gradescope")


def exercise_score(result) -> float:
    """The fraction of checks that pass; 0 while a function is not implemented (its checks never ran)."""
    if not result.checks or result.not_implemented:
        return 0.0
    return sum(c.status == "pass" for c in result.checks) / len(result.checks)


def _exercise(result) -> dict:
    return {
        "number": result.number,
        "name": result.name,
        "title": result.title,
        "verdict": result.verdict,
        "passed": result.passed,
        "score": round(exercise_score(result), 6),
        "max_score": 1.0,
        "seconds": round(result.seconds, 3),
        "notes": list(result.notes),
        "checks": [{"title": c.title, "status": c.status, "message": c.message, "hint": c.hint, "detail": c.detail}
                   for c in result.checks],
    }


def as_json(results, *, seed: int, seconds: float) -> dict:
    """The results of `check` as one JSON-ready object (see the module's docstring)."""
    return {
        "seed": seed,
        "seconds": round(seconds, 3),
        "passed": sum(r.passed for r in results),
        "total": len(results),
        "exercises": [_exercise(r) for r in results],
    }


def as_gradescope(results, *, seconds: float, points: float = 1.0, visibility: str = "visible") -> dict:
    """Gradescope's results.json: one test per exercise, worth `points`, all or nothing."""
    tests = [{
        "name": f"{r.number:02d} {r.name}: {r.title}",
        "number": f"{r.number}",
        "score": points if r.passed else 0.0,
        "max_score": points,
        "status": "passed" if r.passed else "failed",
        "output": r.format(),
        "output_format": "text",
        "visibility": visibility,
    } for r in results]
    passed = sum(r.passed for r in results)
    return {
        "score": sum(t["score"] for t in tests),
        "execution_time": max(1, round(seconds)),
        "output": f"{passed} of {len(results)} exercises pass.",
        "output_format": "text",
        "stdout_visibility": "hidden",
        "visibility": visibility,
        "tests": tests,
    }
