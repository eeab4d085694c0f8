"""The feedback page a student receives for one graded notebook (HTML, self-contained)."""

from __future__ import annotations

import html
from pathlib import Path

from .course import Assignment
from .report import Report, Status

STATUS_TEXT = {
    Status.GRADED: "graded",
    Status.TIMEOUT: "a cell ran past its time limit and was stopped; the rest was graded",
    Status.KERNEL_DIED: "the kernel crashed; it was restarted and the rest was graded",
    Status.MEMORY_EXCEEDED: "a cell used more memory than allowed; the rest was graded",
    Status.INVALID_NOTEBOOK: "the file is not a readable notebook",
    Status.UNKNOWN_ASSIGNMENT: "the notebook does not match this assignment",
    Status.MISSING: "no notebook was submitted",
    Status.GRADER_ERROR: "the grader failed on this notebook; the instructor will look at it",
}


def render_feedback(row, a: Assignment) -> str:
    """One self-contained HTML page per notebook: scores, messages, the student's own cells.

    Test cells appear as students saw them (hidden parts stripped), and failure messages of
    hidden checks carry no inputs or expected values (see :mod:`autograde.grader`).
    """
    from .notebooks import InvalidNotebook, grade_id, is_test, read_notebook, visible_source

    esc = html.escape
    rep = row.report or Report.failed(a.name, row.path or "", row.status, "")
    parts = [f"<h1>{esc(a.name)}: feedback for {esc(row.student_id)}</h1>",
             f"<p class=score>Score: <b>{row.score:g} / {row.max_score:g}</b> (autograded)"]
    manual = sum(m.get("max_score", 0) for m in rep.manual)
    if manual:
        parts.append(f" &middot; {manual:g} more points are graded by hand")
    parts.append(f"</p><p>Status: {esc(STATUS_TEXT.get(row.status, row.status))}</p>")
    for note in row.notes:
        parts.append(f"<p class=note>{esc(note)}</p>")
    verdicts = {t.grade_id: t for t in rep.tests}
    if verdicts:
        parts.append("<table><tr><th>test</th><th>exercise</th><th>points</th>"
                     "<th>result</th></tr>")
        for t in verdicts.values():
            msg = esc(t.message)
            parts.append(f"<tr class={'ok' if t.passed else 'fail'}><td>{esc(t.grade_id)}"
                         f"</td><td>{esc(t.exercise or '')}</td><td>{t.score:g} / "
                         f"{t.max_score:g}</td><td><pre>{'passed' if t.passed else msg}"
                         f"</pre></td></tr>")
        parts.append("</table>")
    for flag in rep.flags:
        parts.append(f"<p class=note>{esc(flag)}</p>")
    if row.path:
        try:
            nb = read_notebook(Path(row.path))
        except InvalidNotebook:
            nb = None
        if nb is not None:
            sol = {grade_id(c): c for c in read_notebook(a.source).cells if grade_id(c)}
            parts.append("<h2>Your notebook</h2>")
            for cell in nb.cells:
                gid = grade_id(cell)
                src = cell.get("source", "")
                if gid in sol and is_test(sol[gid]):
                    src = visible_source(sol[gid].source)  # as released, never hidden tests
                tag = "pre class=md" if cell.get("cell_type") == "markdown" else "pre"
                parts.append(f"<{tag}>{esc(src)}</pre>")
                if gid in verdicts:
                    t = verdicts[gid]
                    parts.append(f"<p class={'ok' if t.passed else 'fail'}>"
                                 f"{esc(gid)}: {t.score:g} / {t.max_score:g}</p>")
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}pre{background:#f6f6f6;"
             "padding:.5em;white-space:pre-wrap}pre.md{background:#fff;border-left:3px solid "
             "#ccc}.ok{color:#006d2c}.fail{color:#b30000}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.3em;vertical-align:top}.note{color:#555}")
    page = (f"<!DOCTYPE html><html><head><meta charset=utf-8><title>{esc(a.name)} - "
            f"{esc(row.student_id)}</title><style>{style}</style></head><body>"
            + "".join(parts) + "</body></html>\n")
    return page
