"""`python -m minibert.exercises report WS`: one file to hand in, the grader's results and the written answers.

    WS/report.md     a summary table (exercise, verdict, checks passed, questions answered), then per
                     exercise: each check (pass/FAIL/TODO, the message and hint the learner read), each
                     written question with the learner's answer, read from the answer cells of
                     WS/notebooks/exercises/NN_name.ipynb ("(not answered)" while a cell holds the placeholder)
    WS/report.html   the same, self-contained (inline style, no script, no external file)

Both are written atomically (minibert.files.write_text). The answers are the learner's text, shown as
written (escaped in the HTML).
"""
from __future__ import annotations

import html
import json
from pathlib import Path

from minibert.exercises.base import grader_seed
from minibert.exercises.catalog import EXERCISES
from minibert.exercises.formats import exercise_score
from minibert.exercises.notebook import answer_key, answers
from minibert.exercises.workspace import grade_file
from minibert.files import write_text

__all__ = ["NOT_ANSWERED", "read_answers", "collect", "report_markdown", "report_html", "write_report"]

NOT_ANSWERED = "(not answered)"
_MARK = {"pass": "pass", "fail": "FAIL", "not implemented": "TODO"}


def read_answers(workspace, ex) -> dict[str, str]:
    """The learner's answers to exercise `ex`'s questions, {"q1": text}; {} if the notebook is missing or broken."""
    path = Path(workspace) / "notebooks" / "exercises" / f"{ex.stem}.ipynb"
    try:
        return answers(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def collect(workspace, exercises=EXERCISES, timeout_s=None, seed=None) -> list[dict]:
    """Per exercise: its result and its questions with the learner's answers (None: not answered)."""
    rows = []
    for ex in exercises:
        given = read_answers(workspace, ex)
        rows.append({"exercise": ex, "result": grade_file(ex, workspace, timeout_s, seed),
                     "answers": [(q.prompt.strip(), given.get(answer_key(n)))
                                 for n, q in enumerate(ex.questions, 1)]})
    return rows


def _checks_passed(result) -> str:
    return f"{sum(c.status == 'pass' for c in result.checks)}/{len(result.checks)}"


def _answered(row) -> str:
    return f"{sum(a is not None for _, a in row['answers'])}/{len(row['answers'])}"


def report_markdown(rows, seed: int) -> str:
    passed = sum(r["result"].passed for r in rows)
    lines = ["# minibert exercises: report", "",
             f"{passed} of {len(rows)} exercises pass (grader seed {seed}).", "",
             "| # | exercise | verdict | checks passed | score | questions answered |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        res = r["result"]
        lines.append(f"| {res.number:02d} | `{res.name}` | {res.verdict} | {_checks_passed(res)} | "
                     f"{exercise_score(res):.2f} | {_answered(r)} |")
    for r in rows:
        res, ex = r["result"], r["exercise"]
        lines += ["", f"## {ex.number:02d} {ex.title} (`{ex.name}`): {res.verdict}", "", "### The grader", ""]
        lines += [f"- note: {n}" for n in res.notes]
        for c in res.checks:
            lines.append(f"- **{_MARK[c.status]}** {c.title}" + (f" [{c.detail}]" if c.detail else ""))
            for text, prefix in ((c.message, ""), (c.hint, "Hint: ")):
                if text:
                    lines += ["", "  ```text", *("  " + t for t in (prefix + text).splitlines()), "  ```"]
        if r["answers"]:
            lines += ["", "### Written questions"]
            for n, (prompt, answer) in enumerate(r["answers"], 1):
                lines += ["", f"**Question {n}.** {prompt}", "", *(("> " + t).rstrip() for t in
                                                                   (answer or NOT_ANSWERED).splitlines())]
    return "\n".join(lines) + "\n"


_STYLE = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
          "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:.2em .6em}"
          ".pass{color:#070}.FAIL{color:#b00}.TODO{color:#a60}pre{background:#f4f4f4;padding:.4em;"
          "white-space:pre-wrap}blockquote{border-left:3px solid #ccc;margin:0;padding:0 1em;white-space:pre-wrap}")


def report_html(rows, seed: int) -> str:
    e = html.escape
    passed = sum(r["result"].passed for r in rows)
    out = ["<!DOCTYPE html>", '<html><head><meta charset="utf-8"><title>minibert exercises: report</title>',
           f"<style>{_STYLE}</style></head><body>", "<h1>minibert exercises: report</h1>",
           f"<p>{passed} of {len(rows)} exercises pass (grader seed {seed}).</p>",
           "<table><tr><th>#</th><th>exercise</th><th>verdict</th><th>checks passed</th><th>score</th>"
           "<th>questions answered</th></tr>"]
    for r in rows:
        res = r["result"]
        out.append(f"<tr><td>{res.number:02d}</td><td><code>{e(res.name)}</code></td><td>{e(res.verdict)}</td>"
                   f"<td>{_checks_passed(res)}</td><td>{exercise_score(res):.2f}</td><td>{_answered(r)}</td></tr>")
    out.append("</table>")
    for r in rows:
        res, ex = r["result"], r["exercise"]
        out.append(f"<h2>{ex.number:02d} {e(ex.title)} (<code>{e(ex.name)}</code>): {e(res.verdict)}</h2>")
        out.append("<h3>The grader</h3><ul>")
        out += [f"<li>note: {e(n)}</li>" for n in res.notes]
        for c in res.checks:
            mark = _MARK[c.status]
            said = "\n".join(t for t in (c.message, "Hint: " + c.hint if c.hint else "") if t)
            out.append(f'<li><b class="{mark}">{mark}</b> {e(c.title)}' + (f" [{e(c.detail)}]" if c.detail else "")
                       + (f"<pre>{e(said)}</pre>" if said else "") + "</li>")
        out.append("</ul>")
        if r["answers"]:
            out.append("<h3>Written questions</h3>")
            for n, (prompt, answer) in enumerate(r["answers"], 1):
                out.append(f"<p><b>Question {n}.</b> {e(prompt)}</p><blockquote>{e(answer or NOT_ANSWERED)}"
                           f"</blockquote>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(workspace, exercises=EXERCISES, timeout_s=None, seed=None) -> dict:
    """Grade `workspace`, write report.md and report.html in it; returns the paths and the counts."""
    seed = grader_seed(seed)
    rows = collect(workspace, exercises, timeout_s, seed)
    root = Path(workspace)
    md = write_text(root / "report.md", report_markdown(rows, seed))
    page = write_text(root / "report.html", report_html(rows, seed))
    return {"markdown": md, "html": page, "passed": sum(r["result"].passed for r in rows), "total": len(rows),
            "answered": sum(a is not None for r in rows for _, a in r["answers"]),
            "questions": sum(len(r["answers"]) for r in rows)}
