"""Write class grading results into a real nbgrader course (``OUT/nbgrader``).

The folder is an nbgrader course directory without the solutions: ``release/`` (made by
nbgrader's own ``generate_assignment`` from a copy of the solution in a temporary folder
outside it, which also registers the assignment's cells in ``gradebook.db``), ``submitted/``
(the files as handed in) and
``autograded/`` (each student's notebook with the released test cells, whose outputs say
what passed). Scores go into the gradebook through nbgrader's API, the way its
``SaveAutoGrades`` step would, so ``nbgrader formgrader`` (manual grading of the free-text
answers), ``generate_feedback`` and ``export`` work on it. Hidden tests never appear in it:
autograded notebooks carry the released (visible) test cells only.

This module is the only writer of the gradebook, and it copies the database to
``backups/`` before it changes anything.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import nbformat

from .course import Assignment, CourseError
from .report import Report, Status, TestResult

CONFIG = '''"""nbgrader configuration of this grading folder (from python -m autograde grade)."""
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
c = get_config()  # noqa: F821
c.CourseDirectory.root = _HERE
c.CourseDirectory.course_id = "taming-unstable-gradients"
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(_HERE, "gradebook.db")
c.CourseDirectory.include = ["*.ipynb"]
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.ClearOutput.remove_metadata_fields = ["collapsed", "scrolled", "execution", "ExecuteTime"]
c.GenerateAssignment.force = True
'''
KEEP_BACKUPS = 10


def _backup(db: Path) -> Path | None:
    if not db.exists():
        return None
    folder = db.parent / "backups"
    folder.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    target = folder / f"gradebook-{stamp}.db"
    shutil.copy2(db, target)
    for old in sorted(folder.glob("gradebook-*.db"))[:-KEEP_BACKUPS]:
        old.unlink(missing_ok=True)
    return target


def _venv_on_path() -> None:
    """nbgrader runs the ``alembic`` command of its own environment: make sure it is found."""
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def _nbgrader(args: list[str], cwd: Path) -> None:
    _venv_on_path()
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_CONFIG_PATH"}
    env["JUPYTER_CONFIG_DIR"] = str(cwd / ".jupyter")
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise CourseError(f"nbgrader {' '.join(args)} failed in {cwd}:\n{proc.stdout}\n"
                          f"{proc.stderr}")


def prepare_course(folder: Path, assigns: list[Assignment]) -> Path | None:
    """Create or refresh the nbgrader course; returns the gradebook backup, if one was made."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "nbgrader_config.py"
    if not cfg.exists() or cfg.read_text() != CONFIG:
        cfg.write_text(CONFIG)
    backup = _backup(folder / "gradebook.db")
    # the solutions never sit in this folder (an earlier version kept them in source/)
    shutil.rmtree(folder / "source", ignore_errors=True)
    for a in assigns:
        digest = hashlib.sha256(a.source.read_bytes()).hexdigest()
        released = folder / "release" / a.name / f"{a.name}.ipynb"
        stamp = released.parent / ".source-hash"
        if stamp.exists() and stamp.read_text() == digest and released.exists():
            continue
        with tempfile.TemporaryDirectory(prefix="tug-source-") as tmp:
            source_dir = Path(tmp) / "source"
            (source_dir / a.name).mkdir(parents=True)
            shutil.copyfile(a.source, source_dir / a.name / f"{a.name}.ipynb")
            _nbgrader(["generate_assignment", a.name, "--force",
                       f"--CourseDirectory.source_directory={source_dir}"], folder)
        stamp.write_text(digest)
    return backup


def _nbg(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def _verdict_output(test: TestResult | None, status: str):
    if test is None:
        return nbformat.v4.new_output("error", ename="NotGraded", evalue=status,
                                      traceback=[f"not graded: {status}"])
    if test.passed:
        return nbformat.v4.new_output(
            "stream", name="stdout", text=f"passed: {test.score:g} / {test.max_score:g}\n")
    msg = test.message or "failed"
    return nbformat.v4.new_output("error", ename="TestFailed", evalue=msg.splitlines()[0],
                                  traceback=msg.splitlines())


def autograded_notebook(released, student_nb, report: Report):
    """The student's notebook with the released locked/test cells and verdict outputs."""
    rel_by_id = {_nbg(c).get("grade_id"): c for c in released.cells if _nbg(c).get("grade_id")}
    verdicts = {t.grade_id: t for t in report.tests}
    out = copy.deepcopy(released)
    cells, used = [], set()
    for cell in (student_nb.cells if student_nb is not None else []):
        gid = _nbg(cell).get("grade_id")
        rel = rel_by_id.get(gid)
        if rel is None or gid in used:
            clean = copy.deepcopy(cell)
            clean.get("metadata", {}).pop("nbgrader", None)  # unknown or duplicated cell
            if clean.get("cell_type") == "code":
                clean["outputs"], clean["execution_count"] = [], None
            cells.append(clean)
            continue
        used.add(gid)
        if _nbg(rel).get("solution"):
            new = copy.deepcopy(rel)
            new["source"] = cell.get("source", "")  # the answer, under the released metadata
        else:
            new = copy.deepcopy(rel)  # locked and test cells exactly as released
        cells.append(new)
    for gid, rel in rel_by_id.items():
        if gid not in used:
            cells.append(copy.deepcopy(rel))  # deleted by the student: restored
    for cell in cells:
        gid = _nbg(cell).get("grade_id")
        if cell.get("cell_type") == "code" and _nbg(cell).get("grade") and \
                not _nbg(cell).get("solution"):
            cell["outputs"] = [_verdict_output(verdicts.get(gid), report.status)]
    if student_nb is None:
        note = nbformat.v4.new_markdown_cell(
            f"**The submitted file could not be graded** ({report.status}): "
            f"{report.message}")
        cells.insert(0, note)
    out.cells = cells
    return out


def sync_gradebook(folder: Path, assigns: list[Assignment], rows,
                   prepared: bool = False) -> Path | None:
    """Write every row into the nbgrader course in ``folder``; returns the backup path.

    ``prepared``: :func:`prepare_course` already ran (it backs up the gradebook first)."""
    from nbgrader.api import Gradebook, MissingEntry

    from .notebooks import InvalidNotebook, read_notebook

    _venv_on_path()
    backup = None if prepared else prepare_course(folder, assigns)
    db_url = "sqlite:///" + str(folder / "gradebook.db")
    with warnings.catch_warnings(), Gradebook(db_url) as gb:
        # nbgrader's own add_submission triggers SQLAlchemy autoflush warnings; harmless
        warnings.simplefilter("ignore", category=Warning)
        for row in rows:
            gb.update_or_create_student(row.student_id)
        for row in rows:
            if row.status == Status.MISSING or row.report is None:
                continue
            a = row.assignment
            released = nbformat.read(folder / "release" / a / f"{a}.ipynb", as_version=4)
            try:
                student_nb = read_notebook(Path(row.path)) if row.path else None
            except InvalidNotebook:
                student_nb = None
            sub_dir = folder / "submitted" / row.student_id / a
            sub_dir.mkdir(parents=True, exist_ok=True)
            kept = sub_dir / f"{a}.ipynb"
            # the very file the instructor may already have graded by hand
            same_file = bool(row.path) and kept.exists() and (
                kept.read_bytes() == Path(row.path).read_bytes())
            if row.path:
                shutil.copyfile(row.path, sub_dir / f"{a}.ipynb")
            timestamp = _timestamp(row.path)
            # formgrader counts a submission as autograded when these timestamps agree
            (sub_dir / "timestamp.txt").write_text(timestamp)
            graded = autograded_notebook(released, student_nb, row.report)
            auto_dir = folder / "autograded" / row.student_id / a
            auto_dir.mkdir(parents=True, exist_ok=True)
            nbformat.write(graded, auto_dir / f"{a}.ipynb")
            (auto_dir / "timestamp.txt").write_text(timestamp)
            gb.update_or_create_submission(a, row.student_id, timestamp=timestamp)
            rel_src = {_nbg(c).get("grade_id"): c.source for c in released.cells}
            stu_src = {}
            for c in (student_nb.cells if student_nb is not None else []):
                stu_src.setdefault(_nbg(c).get("grade_id"), c.get("source", ""))
            verdicts = {t.grade_id: t for t in row.report.tests}
            notebook = gb.find_notebook(a, a)
            for gc in notebook.grade_cells:
                grade = gb.find_grade(gc.name, a, a, row.student_id)
                if gc.name in verdicts:
                    grade.auto_score = float(verdicts[gc.name].score)
                elif gc.cell_type == "code" and not _is_solution(released, gc.name):
                    grade.auto_score = 0.0  # a test the grader could not run (invalid file)
                else:  # written answer: nothing to grade when it was left as released
                    unchanged = stu_src.get(gc.name, rel_src.get(gc.name)) == rel_src.get(gc.name)
                    grade.auto_score = 0.0 if unchanged else None
                if same_file and grade.manual_score is not None:
                    continue  # graded by hand for this file: the instructor's state stays
                grade.needs_manual_grade = (grade.manual_score is not None
                                            or grade.auto_score is None)
            for sc in notebook.solution_cells:
                try:
                    comment = gb.find_comment(sc.name, a, a, row.student_id)
                except MissingEntry:
                    continue
                unchanged = stu_src.get(sc.name, rel_src.get(sc.name)) == rel_src.get(sc.name)
                comment.auto_comment = "No response." if unchanged else None
            gb.db.commit()
    return backup


def _is_solution(released, gid: str) -> bool:
    return any(_nbg(c).get("grade_id") == gid and _nbg(c).get("solution") for c in released.cells)


def _timestamp(path: str | None) -> str:
    if path:
        stamp = Path(path).parent / "timestamp.txt"
        if stamp.exists():
            text = stamp.read_text().strip()
            if text:
                return text
        when = dt.datetime.fromtimestamp(Path(path).stat().st_mtime, dt.UTC)
    else:
        when = dt.datetime.now(dt.UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S.%f %Z")
