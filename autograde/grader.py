"""Grade one notebook against the full tests (hidden ones included), judged in this process.

How a verdict is reached:

1. The instructor's solution notebook runs once in a trusted kernel with the test helpers in
   "expect" mode; every check publishes its expected value and tolerances (cached on disk,
   keyed by the solution's content and the library versions).
2. The submission is cut into trusted cells (locked and test cells, taken from the solution
   by grade id, hidden tests included) and student statements; each test cell's slice (the
   student statements it depends on) is vetted statically (:func:`plan`, see
   ``autograde/ISOLATION.md``). One sandboxed kernel (see :mod:`autograde.sandbox`) runs the
   trusted cells and the union of the slices that passed, in notebook order; nothing else
   the student wrote runs. Each check publishes only the student's value, as plain data.
3. This process decodes that data (numbers, strings, arrays; nothing executable) and calls
   :func:`course_utils.judging.judge` on it. A test cell earns its points only when its checks
   reported in the solution's order, every one ran and passed, and its exercise's slice
   passed vetting.
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

from course_utils import judging, testing

from . import delegation
from .analysis_cache import AnalysisCache, analysis_cache
from .course import Assignment, CourseError, assignments
from .forkserver import short_lived_pool
from .notebooks import (
    InvalidNotebook,
    grade_id,
    is_answer,
    is_locked,
    is_manual,
    is_test,
    nbgrader_meta,
    points,
    read_notebook,
    visible_source,
)
from .pruning import prunable
from .report import Options, Report, Status, TestResult
from .runner import CellJob, run_cells
from .sandbox import SandboxConfig, notebook_sandbox
from .slicing import Slicer, Unit, interference, student_units

CACHE_VERSION = "2"


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
    from importlib.metadata import version  # not ``import torch``: seconds per check

    h.update(f"{np.__version__} {version('torch')} {sys.version_info[:2]}".encode())
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
        results, _, _ = run_cells(jobs, Path(tmp), SandboxConfig(isolate=False), "expect",
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


# ----------------------------------------------------------------------------- planning
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


@dataclass
class Plan:
    """What one grading run executes, and which exercises were stopped before it ran."""

    jobs: list[CellJob]
    vetoed: dict[str, list[str]]  # exercise -> why its slice may not run
    flags: list[str]


def _metadata_flags(student, solution) -> list[str]:
    """Differences between the submission's nbgrader metadata and the solution's structure.
    Grading never uses the submission's metadata; these only tell the instructor."""
    sol = {grade_id(c): c for c in solution.cells if grade_id(c)}
    out, seen = [], set()
    for i, cell in enumerate(student.cells):
        gid = grade_id(cell)
        meta = nbgrader_meta(cell)
        if gid is None:
            if meta:
                out.append(f"cell {i + 1} carries nbgrader metadata without a grade id")
            continue
        if gid not in sol:
            out.append(f"cell {i + 1} claims grade id {gid!r}, which the assignment does "
                       "not have")
            continue
        if gid in seen:
            out.append(f"grade id {gid!r} appears more than once")
        seen.add(gid)
        want = nbgrader_meta(sol[gid])
        changed = [k for k in ("grade", "solution", "locked", "points")
                   if bool(want.get(k)) != bool(meta.get(k))
                   or (k == "points" and points(sol[gid]) != points(cell))]
        if changed or cell.get("cell_type") != sol[gid].get("cell_type"):
            out.append(f"cell {gid!r}: its nbgrader metadata was edited "
                       f"({', '.join(changed) or 'cell type'})")
    return [f"edited_metadata: {m}; graded against the solution's structure" for m in out]


def plan(student, solution, released_sources: set[str], cache=None) -> Plan:
    """Units of the submission, the slice of every test cell, vetting, and the jobs to run.

    Trusted cells (locked and test cells from the solution, matched by grade id; cells left
    exactly as released) run as the instructor wrote them. Of the student's code only the
    statements some test cell depends on run, after their slice passed :func:`delegation.vet`.
    ``cache`` (:class:`autograde.analysis_cache.AnalysisCache`) keeps the analysis of the
    trusted cells between submissions and processes.
    """
    cache = cache or AnalysisCache(None)
    sol_by_id = {grade_id(c): c for c in solution.cells if grade_id(c)}
    test_ids = [grade_id(c) for c in solution.cells if is_test(c)]
    answer_ids = {grade_id(c) for c in solution.cells if is_answer(c)}
    exercises = answer_ids
    forbid = {grade_id(c): list(c.metadata.get("tug", {}).get("forbid", []) or [])
              for c in solution.cells if is_answer(c)}
    units: list[Unit] = []
    flags: list[str] = []
    seen: set[str] = set()
    whole: dict[int, str] = {}  # cell -> source of the instructor's cells (they run whole)
    released_statements = {s for src in released_sources
                           for s in cache.released_statements(src)}
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
            kind = "test" if is_test(sol) else "setup"
            units.extend(cache.trusted_units(sol.source, i, kind, gid, gid, len(units)))
            whole[i] = sol.source
            continue
        source = cell.get("source", "")
        if source in released_sources and gid not in answer_ids:
            units.extend(cache.trusted_units(source, i, "setup", gid, f"cell {i + 1}", len(units)))
            whole[i] = source
            continue
        where = gid if gid in answer_ids else f"your cell {i + 1}"
        for u in student_units(source, i, where, len(units)):
            # an instructor's statement copied verbatim (an edited setup cell) stays trusted
            u.trusted = u.source in released_statements
            units.append(u)
    missing = [t for t in test_ids if t not in seen]
    for n, gid in enumerate(missing):
        units.extend(cache.trusted_units(sol_by_id[gid].source, 10_000 + n, "test", gid, gid,
                                   len(units)))
        whole[10_000 + n] = sol_by_id[gid].source
    if missing:
        flags.append("restored_test_cells: the notebook had lost test cell(s) "
                     + ", ".join(missing) + "; they were run at the end")
    flags += _metadata_flags(student, solution)

    slicer = Slicer(units)
    test_cells: dict[int, list[int]] = {}
    for u in units:
        if u.kind == "test":
            test_cells.setdefault(u.cell, []).append(u.pos)
    tests = [cells[0] for cells in test_cells.values()]  # a test cell by its first unit
    slices = {t: slicer.closure(*test_cells[units[t].cell]) for t in tests}
    union = {i for s in slices.values() for i in s if not units[i].trusted}
    running = union | {u.pos for u in units if u.trusted}
    vetoed: dict[str, list[str]] = {}
    vetoed_tests: set[int] = set()
    for t in tests:
        gid = units[t].grade_id
        ex = _exercise_of(gid, exercises, sol_by_id[gid])
        scope = slices[t] | interference(slicer, t, slices[t], running)
        findings = delegation.vet([units[i] for i in sorted(scope)], slicer,
                                  forbid.get(ex, []) if ex else [])
        broken = [units[i] for i in slices[t] if units[i].parse_error]
        findings += [delegation.Finding(f"has a syntax error ({u.parse_error}) in {u.where}")
                     for u in broken]
        if findings:
            vetoed_tests.add(t)
            key = ex or gid
            for f in findings:
                if f.text not in vetoed.setdefault(key, []):
                    vetoed[key].append(f.text)
    # a test whose exercise is vetoed scores 0 whatever its own slice holds
    vetoed_tests |= {t for t in tests
                     if _exercise_of(units[t].grade_id, exercises,
                                     sol_by_id[units[t].grade_id]) in vetoed}
    run = {u.pos for u in units if u.trusted}
    for t in tests:
        if t not in vetoed_tests:
            run |= {i for i in slices[t] if not units[i].parse_error}
    for ex, why in vetoed.items():
        flags.append(f"delegation: {ex} " + "; ".join(why[:2]))

    jobs: list[CellJob] = []
    for u in units:
        if u.pos not in run:
            continue
        if u.trusted and u.cell in whole:
            if not (jobs and jobs[-1].trusted and jobs[-1].index == u.cell):
                jobs.append(CellJob(u.cell, whole[u.cell], u.kind, u.grade_id, trusted=True))
        elif u.trusted:  # an instructor's statement inside a student's cell
            jobs.append(CellJob(u.cell, u.source, "setup", None, trusted=True))
        elif jobs and not jobs[-1].trusted and jobs[-1].index == u.cell:
            jobs[-1].source += "\n" + u.source
        else:
            jobs.append(CellJob(u.cell, u.source, "setup", None, trusted=False))
    return Plan(jobs, vetoed, flags)


# ----------------------------------------------------------------------------- judging
HIDDEN_ERROR = ("the code raised an exception during a hidden test (its message stays "
                "private; run the visible tests and your own examples to find it)")


def _cell_error(result, hidden: bool) -> str:
    if result is None:
        return "the test cell did not run"
    if hidden and result.status == "error":
        return HIDDEN_ERROR
    return result.short_error()


def judge_cell(expected: list[dict], result, vetoed: list[str],
                hidden: bool = False) -> tuple[bool, str]:
    """Verdict of one test cell from the trusted expectations and the recorded values.

    The records must arrive exactly in the order of the solution's checks (a prefix of it
    when the cell stopped early): anything else means something besides the checks published
    a record, and the cell fails. For a hidden cell the message says nothing that the
    student's code produced (no exception text, no value)."""
    if vetoed:
        return False, "0 points: this exercise " + "; ".join(vetoed[:2])
    if result is not None and "NotImplementedError" in (result.ename or ""):
        return False, "not implemented yet: the stub still raises NotImplementedError"
    records = [r for r in (result.records if result is not None else [])
               if isinstance(r, dict)]
    labels = [exp["label"] for exp in expected]
    got_labels = [r.get("label") for r in records]
    if got_labels != labels[:len(got_labels)]:
        return False, ("0 points: the test cell published results that its checks did not "
                       "make (records out of order or forged)")
    error = _cell_error(result, hidden)
    problems = []
    n_hidden = 0
    for pos, exp in enumerate(expected):
        label = exp["label"]
        shown = label
        if exp.get("hidden"):
            n_hidden += 1
            shown = f"hidden check {n_hidden}"
        if pos >= len(records):
            problems.append(f"{shown}: did not run ({error or 'no result was recorded'})")
            break
        got = testing.decode(records[pos].get("got"))
        want = testing.decode(exp.get("expected"))
        problem = judging.judge(exp.get("kind", "equal"), got, want, exp.get("opts") or {})
        if problem and exp.get("hidden"):
            # hidden tests keep their inputs, expected values and the student's value private:
            # only the kind of mistake is named
            category = judging.problem_category(exp.get("kind", "equal"), got, want,
                                                exp.get("opts") or {})
            problems.append(judging.failure_message(
                shown, f"{category} (hidden test: its inputs and expected values stay "
                "private)", None, exp.get("hint")))
        elif problem:
            problems.append(judging.failure_message(label, problem, exp.get("inputs"),
                                                    exp.get("hint")))
    if result is not None and result.status != "ok" and not problems:
        problems.append(error)
    if problems:
        more = f"\n(+{len(problems) - 2} more failing checks)" if len(problems) > 2 else ""
        return False, "\n".join(problems[:2]) + more
    return True, ""


def check_notebook(path: str | Path, opts: Options | None = None,
                   assignment: str | None = None, pool=None) -> Report:
    """Grade one notebook (see :class:`autograde.report.Report`).

    ``assignment`` names the assignment when the caller knows it (class grading); otherwise
    it is found from the file name or the notebook's cells. ``pool`` is a warm
    :class:`autograde.forkserver.ForkServer` the caller keeps for many notebooks (class
    grading); without one, a short-lived server is started here (the cold path when forking
    is impossible, see :func:`autograde.forkserver.fork_disabled_reason`).
    """
    opts = opts or Options()
    path = Path(path).resolve()
    sandbox = notebook_sandbox(path, opts.memory_mb, opts.hide)
    own_pool = None
    if pool is None:
        own_pool = pool = short_lived_pool(sandbox)  # starts now, warms up while we plan
    if pool is not None:
        pool.prespawn("record", sandbox.memory_mb)  # the kernel starts while we plan
    try:
        return _check(path, opts, assignment, sandbox, pool)
    finally:
        if own_pool is not None:
            own_pool.close()


def _check(path: Path, opts: Options, assignment: str | None, sandbox: SandboxConfig,
           pool) -> Report:
    known = {a.name: a for a in assignments()}
    try:
        nb = read_notebook(path)
    except InvalidNotebook as exc:
        a = known.get(assignment or "")
        return Report.failed(a.name if a else None, path, Status.INVALID_NOTEBOOK, str(exc))
    a = known.get(assignment) if assignment else identify(nb, path)
    if a is None:
        names = ", ".join(x.name for x in assignments())
        return Report.failed(None, path, Status.UNKNOWN_ASSIGNMENT,
                             f"{path.name} does not match any assignment ({names}); keep the "
                             "released file name (for example 01_activations.ipynb)")
    solution = read_notebook(a.source)
    exp = expectations(a)
    cache = analysis_cache(a.root)
    p = plan(nb, solution, released_sources(a), cache)
    jobs, flags = p.jobs, list(p.flags)
    if not opts.run_all_cells:
        skip = prunable(jobs, [j.trusted for j in jobs], cache.analyse)
        jobs = [j for pos, j in enumerate(jobs) if pos not in skip]

    cache.save()
    workdir = Path(tempfile.mkdtemp(prefix="tug-check-"))
    try:
        results, run_flags, execution = run_cells(jobs, workdir, sandbox, "record",
                                                  opts.timeout, opts.total_timeout, pool=pool)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    flags += run_flags
    by_gid = {j.grade_id: r for j, r in zip(jobs, results, strict=True)
              if j.kind == "test" and j.grade_id}

    exercises = {grade_id(c) for c in solution.cells if is_answer(c)}
    tests, score, max_score = [], 0.0, 0.0
    for cell in solution.cells:
        if not is_test(cell):
            continue
        gid = grade_id(cell)
        pts = points(cell)
        ex = _exercise_of(gid, exercises, cell)
        hidden = visible_source(cell.source) != cell.source
        passed, message = judge_cell(exp["tests"].get(gid, {}).get("records", []),
                                      by_gid.get(gid), p.vetoed.get(ex or gid, []), hidden)
        if message.startswith("0 points: the test cell published"):
            flags.append(f"forged_records: {gid}")
        got = pts if passed else 0.0
        score += got
        max_score += pts
        tests.append(TestResult(gid, ex, got, pts, passed, message, hidden))
    statuses = {r.status for r in results}
    status = Status.GRADED
    for s in (Status.TIMEOUT, Status.KERNEL_DIED, Status.MEMORY_EXCEEDED):
        if s in statuses:
            status = s
            break
    if "skipped" in statuses and status == Status.GRADED:
        status = Status.TIMEOUT
    manual = [{"grade_id": grade_id(c), "max_score": points(c)}
              for c in solution.cells if is_manual(c)]
    return Report(a.name, str(path), status, round(score, 6), round(max_score, 6), tests,
                  flags, manual=manual, execution=execution)


def released_sources(a: Assignment) -> set[str]:
    if a.release.exists():
        rel = nbformat.read(a.release, as_version=4)
    else:
        from .release import released_text

        rel = nbformat.reads(released_text(a), as_version=4)
    return {c.source for c in rel.cells if c.cell_type == "code" and not is_answer(c)}


def find_notebooks(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in p.parts)

