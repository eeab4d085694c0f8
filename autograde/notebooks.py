"""Reading notebooks safely and telling nbgrader cell kinds apart."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat


class InvalidNotebook(Exception):
    """The file is not a notebook we can grade; the message says why and what to do."""


def read_notebook(path: Path) -> nbformat.NotebookNode:
    path = Path(path)
    if not path.exists():
        raise InvalidNotebook(f"{path}: no such file")
    if path.suffix != ".ipynb":
        raise InvalidNotebook(f"{path}: not a notebook (expected a .ipynb file)")
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidNotebook(f"{path}: not UTF-8 text; re-save it from JupyterLab") from None
    if not raw.strip():
        raise InvalidNotebook(f"{path}: the file is empty; re-download or re-save the notebook")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidNotebook(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "the file was probably truncated or edited by hand. Open the last good version "
            "(File > Revert or your checkpoint) and save it again."
        ) from None
    if not isinstance(data, dict) or "cells" not in data:
        raise InvalidNotebook(f"{path}: JSON without a 'cells' list is not a notebook")
    if data.get("nbformat") != 4:
        raise InvalidNotebook(
            f"{path}: notebook format {data.get('nbformat')!r} is not supported (need 4); "
            "open and save it in JupyterLab 4"
        )
    try:
        nb = nbformat.reads(raw, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # nbformat raises several kinds
        first = str(exc).splitlines()[0]
        raise InvalidNotebook(f"{path}: not a valid notebook ({first})") from None
    return nb


def nbgrader_meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def grade_id(cell) -> str | None:
    gid = nbgrader_meta(cell).get("grade_id")
    return gid if isinstance(gid, str) else None


def is_answer(cell) -> bool:
    m = nbgrader_meta(cell)
    return bool(m.get("solution")) and not m.get("grade") and cell.get("cell_type") == "code"


def is_test(cell) -> bool:
    m = nbgrader_meta(cell)
    return bool(m.get("grade")) and not m.get("solution") and cell.get("cell_type") == "code"


def is_manual(cell) -> bool:
    m = nbgrader_meta(cell)
    return bool(m.get("grade")) and bool(m.get("solution"))


def is_locked(cell) -> bool:
    m = nbgrader_meta(cell)
    return bool(m.get("locked")) or is_test(cell)


def points(cell) -> float:
    try:
        return float(nbgrader_meta(cell).get("points", 0))
    except (TypeError, ValueError):
        return 0.0


HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"


def visible_source(source: str) -> str:
    """A test cell's source as students see it: the hidden-tests region removed."""
    out, hidden = [], False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == HIDDEN_BEGIN:
            hidden = True
        elif stripped == HIDDEN_END:
            hidden = False
        elif not hidden:
            out.append(line)
    return "\n".join(out)
