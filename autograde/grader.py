"""Grade one notebook against the full tests (hidden ones included), judged in this process.

How a verdict is reached:

1. The instructor's solution notebook runs once in a trusted kernel with the test helpers in
   "expect" mode; every check publishes its expected value and tolerances (cached on disk,
   keyed by the solution's content and the library versions).
2. The student's notebook runs in a sandboxed kernel (see :mod:`autograde.sandbox`) with its
   test cells replaced by the solution's (hidden tests included), as ``nbgrader autograde``
   does; each check publishes only the student's value, as plain data.
3. This process decodes that data (numbers, strings, arrays; nothing executable) and calls
   :func:`course_utils.testing.judge` on it. A test cell earns its points only when every one
   of its checks ran and passed and the exercise is not delegated to a reference.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np

from course_utils import testing

from . import delegation
from .course import Assignment, CourseError, assignments, course_root
from .notebooks import (
    InvalidNotebook,
    grade_id,
    is_answer,
    is_locked,
    is_manual,
    is_test,
    points,
    read_notebook,
    visible_source,
)
from .pruning import prunable
from .runner import CellJob, run_cells
from .sandbox import DEFAULT_MEMORY_MB, SandboxConfig

DEFAULT_CELL_TIMEOUT = 120.0
DEFAULT_TOTAL_TIMEOUT = 1200.0
CACHE_VERSION = "2"


@dataclass
class Options:
    timeout: float = DEFAULT_CELL_TIMEOUT
    total_timeout: float = DEFAULT_TOTAL_TIMEOUT
    memory_mb: int = DEFAULT_MEMORY_MB
    hide: tuple[Path, ...] = ()
    # skip instructor cells that no test or student cell needs (see autograde.pruning)
    run_all_cells: bool = bool(os.environ.get("TUG_RUN_ALL_CELLS"))


# ----------------------------------------------------------------------------- assignment
def identify(nb, path: Path, root: Path | None = None) -> Assignment | None:
    """By file name (``NN_name.ipynb``, also ``NN_name-Copy1.ipynb``), else by grade ids."""
    known = assignments(root)
    stem = path.stem
    for a in known:
        if stem == a.name or stem.startswith(a.name + "-") or stem.startswith(a.name + " "):
            return a
    ids = {grade_id(c) for c in nb.cells if grade_id(c)}
    best, best_overlap = None, 0.0
    for a in known:
        sol_ids = {grade_id(c) for c in nbformat.read(a.source, as_version=4).cells if grade_id(c)}
        overlap = len(ids & sol_ids) / max(1, len(sol_ids))
        if overlap > best_overlap:
            best, best_overlap = a, overlap
    return best if best_overlap >= 0.5 else None


# ----------------------------------------------------------------------------- expectations
def _fingerprint(a: Assignment) -> str:
    h = hashlib.sha256(CACHE_VERSION.encode())
    h.update(a.source.read_bytes())
    cu = Path(testing.__file__).resolve().parent
    for p in sorted(cu.rglob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    import torch

    h.update(f"{np.__version__} {torch.__version__} {sys.version_info[:2]}".encode())
    return h.hexdigest()[:20]


def expectations(a: Assignment, refresh: bool = False) -> dict:
    """Expected records per test cell, from a trusted run of the solution (cached)."""
    key = _fingerprint(a)
    cache_dir = a.root / ".autograde-cache"
    cache = cache_dir / f"{a.name}-{key}.json"
    if not refresh:
        hit = _read_cache(cache)
        if hit is not None:
            return hit
    try:  # one trusted run at a time per assignment; the others wait and reuse its result
        cache_dir.mkdir(exist_ok=True)
        lock = open(cache_dir / f"{a.name}.lock", "w")  # noqa: SIM115 - closed below
        fcntl.flock(lock, fcntl.LOCK_EX)
    except OSError:
        lock = None
    try:
        hit = None if refresh else _read_cache(cache)
        return hit if hit is not None else _compute_expectations(a, key, cache, cache_dir)
    finally:
        if lock is not None:
            lock.close()


def _read_cache(cache: Path) -> dict | None:
    try:
        return json.loads(cache.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _compute_expectations(a: Assignment, key: str, cache: Path, cache_dir: Path) -> dict:
    sol = read_notebook(a.source)
    jobs, tests = [], {}
    probes = {}  # job index -> test cell index, for the visible part of a test cell
    for i, cell in enumerate(sol.cells):
        if cell.cell_type != "code":
            continue
        kind = "test" if is_test(cell) else "setup"
        if kind == "test" and visible_source(cell.source) != cell.source:
            # run the part students see first, to learn which checks are visible
            probe = -1 - i
            probes[probe] = i
            jobs.append(CellJob(probe, visible_source(cell.source), "test", grade_id(cell)))
        jobs.append(CellJob(i, cell.source, kind, grade_id(cell)))
        if kind == "test":
            tests[i] = grade_id(cell)
    with tempfile.TemporaryDirectory(prefix="tug-expect-") as tmp:
        results, _ = run_cells(jobs, Path(tmp), SandboxConfig(isolate=False), "expect",
                               cell_timeout=600, total_timeout=1800)
    out: dict[str, dict] = {}
    visible: dict[int, set[str]] = {}
    for res in results:
        if res.index in probes:
            visible[probes[res.index]] = {r.get("label") for r in res.records
                                         if isinstance(r, dict)}
            continue
        if res.status != "ok":
            where = f"test cell {tests[res.index]}" if res.index in tests else f"cell {res.index}"
            raise CourseError(
                f"the solution notebook {a.source} fails in {where}: {res.short_error()}\n"
                f"{res.traceback or ''}\nFix the solution before grading."
            )
        if res.index in tests:
            seen = visible.get(res.index)
            for rec in res.records:
                if isinstance(rec, dict):
                    rec["hidden"] = seen is not None and rec.get("label") not in seen
            out[tests[res.index]] = {"records": res.records}
    data = {"assignment": a.name, "fingerprint": key, "tests": out}
    try:
        cache_dir.mkdir(exist_ok=True)
        tmp_path = cache.with_suffix(f".tmp{os.getpid()}")
        tmp_path.write_text(json.dumps(data))
        os.replace(tmp_path, cache)
        for old in cache_dir.glob(f"{a.name}-*.json"):
            if old != cache:
                old.unlink(missing_ok=True)
    except OSError:
        pass
    return data


# ----------------------------------------------------------------------------- merging
def _exercise_of(test_gid: str, exercises: set[str], sol_cell) -> str | None:
    tug = sol_cell.get("metadata", {}).get("tug", {})
    if isinstance(tug, dict) and tug.get("exercise"):
        return tug["exercise"]
    for suffix in ("_hidden", ""):
        if test_gid.startswith("test_") and test_gid.endswith(suffix):
            name = test_gid[5:len(test_gid) - len(suffix)] if suffix else test_gid[5:]
            if name in exercises:
                return name
    return None


def build_jobs(student, solution, released_sources: set[str]):
    """Student cells in their order, locked and test cells taken from the solution."""
    sol_by_id = {grade_id(c): c for c in solution.cells if grade_id(c)}
    test_ids = [grade_id(c) for c in solution.cells if is_test(c)]
    answer_ids = {grade_id(c) for c in solution.cells if is_answer(c)}
    jobs, student_code, flags = [], {}, []
    seen: set[str] = set()
    for i, cell in enumerate(student.cells):
        if cell.get("cell_type") != "code":
            continue
        gid = grade_id(cell)
        sol = sol_by_id.get(gid) if gid else None
        if sol is not None and (is_test(sol) or (is_locked(sol) and not is_answer(sol))):
            if gid in seen:
                flags.append(f"duplicate_cell: a second copy of locked cell {gid} was ignored")
                continue
            seen.add(gid)
            jobs.append(CellJob(i, sol.source, "test" if is_test(sol) else "setup", gid,
                                trusted=True))
            continue
        source = cell.get("source", "")
        # a cell left exactly as released is the instructor's code
        jobs.append(CellJob(i, source, "setup", gid,
                            trusted=source in released_sources and gid not in answer_ids))
        if gid in answer_ids and gid not in student_code:
            student_code[gid] = source
        elif source.strip() and source not in released_sources:
            student_code[f"your cell {i + 1}"] = source
    missing = [t for t in test_ids if t not in seen]
    for n, gid in enumerate(missing):
        jobs.append(CellJob(10_000 + n, sol_by_id[gid].source, "test", gid, trusted=True))
    if missing:
        flags.append("restored_test_cells: the notebook had lost test cell(s) "
                     + ", ".join(missing) + "; they were run at the end")
    return jobs, student_code, flags


# ----------------------------------------------------------------------------- judging
def _judge_cell(expected: list[dict], result, delegated: list[str]) -> tuple[bool, str]:
    if delegated:
        return False, "0 points: this exercise " + "; ".join(delegated[:2])
    got_by_label: dict[str, object] = {}
    for rec in result.records if result is not None else []:
        if isinstance(rec, dict) and isinstance(rec.get("label"), str):
            got_by_label.setdefault(rec["label"], rec.get("got"))
    problems = []
    error = result.short_error() if result is not None else "the test cell did not run"
    if result is not None and "NotImplementedError" in (result.ename or ""):
        return False, "not implemented yet: the stub still raises NotImplementedError"
    n_hidden = 0
    for exp in expected:
        label = exp["label"]
        shown = label
        if exp.get("hidden"):
            n_hidden += 1
            shown = f"hidden check {n_hidden}"
        if label not in got_by_label:
            problems.append(f"{shown}: did not run ({error or 'no result was recorded'})")
            break
        got = testing.decode(got_by_label[label])
        want = testing.decode(exp.get("expected"))
        problem = testing.judge(exp.get("kind", "equal"), got, want, exp.get("opts") or {})
        if problem and exp.get("hidden"):
            # hidden tests keep their inputs and expected values private
            problems.append(testing.failure_message(
                shown, "wrong result (hidden test: its inputs and expected values stay "
                "private)", None, exp.get("hint")))
        elif problem:
            problems.append(testing.failure_message(label, problem, exp.get("inputs"),
                                                    exp.get("hint")))
    if result is not None and result.status != "ok" and not problems:
        problems.append(error)
    if problems:
        more = f"\n(+{len(problems) - 2} more failing checks)" if len(problems) > 2 else ""
        return False, "\n".join(problems[:2]) + more
    return True, ""


def _blank(a: Assignment | None, path: Path, status: str, message: str) -> dict:
    return {"assignment": a.name if a else None, "notebook": str(path), "status": status,
            "score": 0.0, "max_score": 0.0, "tests": [], "flags": [], "message": message}


def check_notebook(path: str | Path, opts: Options | None = None,
                   assignment: str | None = None) -> dict:
    """Grade one notebook; returns the JSON-able report described in the README.

    ``assignment`` names the assignment when the caller knows it (class grading); otherwise
    it is found from the file name or the notebook's cells.
    """
    opts = opts or Options()
    path = Path(path).resolve()
    known = {a.name: a for a in assignments()}
    try:
        nb = read_notebook(path)
    except InvalidNotebook as exc:
        return _blank(known.get(assignment or ""), path, "invalid_notebook", str(exc))
    a = known.get(assignment) if assignment else identify(nb, path)
    if a is None:
        names = ", ".join(x.name for x in assignments())
        return _blank(None, path, "unknown_assignment",
                      f"{path.name} does not match any assignment ({names}); keep the "
                      "released file name (for example 01_activations.ipynb)")
    solution = read_notebook(a.source)
    exp = expectations(a)
    released = _released_sources(a)
    jobs, student_code, flags = build_jobs(nb, solution, released)
    if not opts.run_all_cells:
        skip = prunable(jobs, [j.trusted for j in jobs])
        jobs = [j for pos, j in enumerate(jobs) if pos not in skip]

    workdir = Path(tempfile.mkdtemp(prefix="tug-check-"))
    try:
        hide = list(opts.hide)
        if _safe_to_hide(path.parent):
            hide.append(path.parent)  # other files beside the submission (other students')
        sandbox = SandboxConfig(memory_mb=opts.memory_mb, hide=hide)
        results, run_flags = run_cells(jobs, workdir, sandbox, "record", opts.timeout,
                                       opts.total_timeout)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    flags += run_flags
    by_gid = {j.grade_id: r for j, r in zip(jobs, results, strict=True)
              if j.kind == "test" and j.grade_id}

    # delegation
    exercises = {grade_id(c) for c in solution.cells if is_answer(c)}
    forbid = {grade_id(c): c.metadata.get("tug", {}).get("forbid", [])
              for c in solution.cells if is_answer(c)}
    cells = {k: delegation.analyse(k, s) for k, s in student_code.items()}
    delegated = {ex: delegation.violations(ex, forbid.get(ex) or [], cells) for ex in exercises}
    for ex, why in delegated.items():
        if why:
            flags.append(f"delegation: {ex} " + "; ".join(why[:2]))

    tests, score, max_score = [], 0.0, 0.0
    for cell in solution.cells:
        if not is_test(cell):
            continue
        gid = grade_id(cell)
        pts = points(cell)
        ex = _exercise_of(gid, exercises, cell)
        passed, message = _judge_cell(exp["tests"].get(gid, {}).get("records", []),
                                      by_gid.get(gid), delegated.get(ex, []) if ex else [])
        got = pts if passed else 0.0
        score += got
        max_score += pts
        tests.append({"grade_id": gid, "exercise": ex, "score": got, "max_score": pts,
                      "passed": passed, "message": message})
    statuses = {r.status for r in results}
    status = "graded"
    for s in ("timeout", "memory_exceeded", "kernel_died"):
        if s in statuses:
            status = s
            break
    if "skipped" in statuses and status == "graded":
        status = "timeout"
    manual = [{"grade_id": grade_id(c), "max_score": points(c)}
              for c in solution.cells if is_manual(c)]
    return {"assignment": a.name, "notebook": str(path), "status": status,
            "score": round(score, 6), "max_score": round(max_score, 6), "tests": tests,
            "flags": flags, "manual": manual}


def _released_sources(a: Assignment) -> set[str]:
    if a.release.exists():
        rel = nbformat.read(a.release, as_version=4)
    else:
        from .release import released_text

        rel = nbformat.reads(released_text(a), as_version=4)
    return {c.source for c in rel.cells if c.cell_type == "code" and not is_answer(c)}


def _safe_to_hide(folder: Path) -> bool:
    needed = [Path(sys.prefix).resolve(), Path(testing.__file__).resolve().parent,
              Path(np.__file__).resolve().parent]
    return not any(n == folder or folder in n.parents for n in needed)


def find_notebooks(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in p.parts)


def root_default() -> Path:
    return course_root()
