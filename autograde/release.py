"""Generate the student notebooks in ``notebooks/`` from ``solutions/`` with nbgrader."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from .course import Assignment, CourseError, assignments, course_root

CONFIG = Path(__file__).resolve().parent / "nbgrader_config.py"


def clean_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """No outputs, no execution counts, no widget state, stable metadata."""
    keep_nb_meta = {"kernelspec", "language_info"}
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in keep_nb_meta}
    if "language_info" in nb.metadata:
        nb.metadata["language_info"] = {"name": nb.metadata["language_info"].get("name", "python")}
    for cell in nb.cells:
        for key in ("collapsed", "scrolled", "execution", "ExecuteTime", "jupyter", "tags"):
            if key == "tags" and cell.metadata.get("tags"):
                continue
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


RUN_ALL_TAG = "raises-exception"


def tag_test_cells(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Tag every autograded test cell, and every answer cell whose stub raises at the top
    level, ``raises-exception``: in JupyterLab a failing test or an unanswered prediction then
    shows its message without stopping "Run All" (nbgrader still records the error)."""
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        test = meta.get("grade") and not meta.get("solution")
        # an answer whose stub raises where it stands (a prediction: `answer = ...`)
        stub_raises = meta.get("solution") and any(
            line.startswith("raise NotImplementedError") for line in cell.source.splitlines())
        if cell.cell_type == "code" and (test or stub_raises):
            tags = list(cell.metadata.get("tags", []))
            if RUN_ALL_TAG not in tags:
                cell.metadata["tags"] = tags + [RUN_ALL_TAG]
    return nb


def notebook_text(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + ("" if nbformat.writes(nb).endswith("\n") else "\n")


def _generate(assignment: Assignment, out_dir: Path) -> Path:
    cmd = [
        sys.executable, "-m", "nbgrader", "generate_assignment", assignment.name,
        "--no-db", "--force",
        f"--CourseDirectory.root={assignment.root}",
        f"--CourseDirectory.release_directory={out_dir}",
        "--log-level=WARN",
    ]
    env = dict(os.environ)
    # nbgrader finds autograde/nbgrader_config.py through the Jupyter config path
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
        [str(CONFIG.parent)]
        + ([env["JUPYTER_CONFIG_PATH"]] if env.get("JUPYTER_CONFIG_PATH") else [])
    )
    proc = subprocess.run(cmd, cwd=assignment.root, capture_output=True, text=True, env=env)
    produced = out_dir / assignment.name / f"{assignment.name}.ipynb"
    if proc.returncode != 0 or not produced.exists():
        raise CourseError(
            f"nbgrader could not release {assignment.name} (exit {proc.returncode}):\n"
            f"{proc.stderr.strip() or proc.stdout.strip()}\n"
            f"Fix the nbgrader markup in {assignment.source} and run again."
        )
    return produced


def released_text(assignment: Assignment) -> str:
    with tempfile.TemporaryDirectory(prefix="tug-release-") as tmp:
        produced = _generate(assignment, Path(tmp))
        nb = nbformat.read(produced, as_version=4)
    return notebook_text(tag_test_cells(clean_notebook(nb)))


def release(names: list[str] | None = None, check: bool = False, root: Path | None = None) -> int:
    """Write (or, with ``check``, compare) every released notebook. Returns an exit code."""
    root = root or course_root()
    todo = assignments(root)
    if names:
        known = {a.name for a in todo}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise CourseError(
                f"unknown assignment(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        todo = [a for a in todo if a.name in names]
    stale = []
    for a in todo:
        text = released_text(a)
        target = a.release
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            print(f"  up to date  {target.relative_to(root)}")
            continue
        if check:
            stale.append(str(target.relative_to(root)))
            why = "missing" if current is None else "differs from solutions/"
            print(f"  STALE       {target.relative_to(root)} ({why})")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(f"  released    {target.relative_to(root)}")
    if not check:
        # notebooks/ holds exactly the released assignments
        wanted = {a.name for a in assignments(root)}
        rel = root / "notebooks"
        if rel.is_dir() and not names:
            for d in rel.iterdir():
                if d.is_dir() and d.name not in wanted:
                    shutil.rmtree(d)
                    print(f"  removed     notebooks/{d.name} (no source in solutions/)")
    if stale:
        print(
            "notebooks/ is out of sync with solutions/: "
            + ", ".join(stale)
            + ".\nRun `python -m autograde release` (or `make release`) and commit the result."
        )
        return 1
    return 0

