"""Class grading: ``python -m autograde grade`` against plain ``nbgrader autograde``.

A class of N generated submissions of one assignment (every other student hands in the
solution's answers, the others the untouched released notebook) is graded twice in the same
run: by our command (sandboxed kernels, every protection on, ``--workers`` = CPU count, the
trusted expectations already cached, as after the instructor's first ``check``) and by plain
``nbgrader autograde`` on an nbgrader course holding the same files. Both kernels get the same
environment (Agg backend, static widgets). We also time our command with
``TUG_RUN_ALL_CELLS=1`` (every instructor cell executed, no pruning), to show what pruning
adds beyond parallelism, and check that both graders agree on every student's total.
Which execution path graded (warm forked kernels or cold kernels, see
``autograde/forkserver.py``) is read from the saved reports. The figures are given for each
class size in ``TUG_BENCH_CLASS_SIZES`` (default 8 and 16; the first size is the headline).

    TUG_BENCH_CLASS_SIZES=8,16 TUG_BENCH_ASSIGNMENT=01_activations \
        python -m benchmarks --only grading
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from autograde.course import assignments
from autograde.gradebook import CONFIG
from autograde.grader import expectations
from autograde.notebooks import grade_id, is_answer


def _make_class(a, folder: Path, n: int) -> list[str]:
    released = nbformat.read(a.release, as_version=4)
    solution = {grade_id(c): c.source for c in nbformat.read(a.source, as_version=4).cells
                if is_answer(c)}
    students = [f"s{i:03d}" for i in range(n)]
    for i, student in enumerate(students):
        nb = nbformat.from_dict(json.loads(json.dumps(released)))
        if i % 2 == 0:
            for cell in nb.cells:
                if grade_id(cell) in solution:
                    cell.source = solution[grade_id(cell)]
        target = folder / student / a.name / f"{a.name}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
    return students


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_CONFIG_PATH"}
    bindir = str(Path(sys.executable).parent)
    env.update(MPLBACKEND="Agg", TUG_STATIC_WIDGETS="1",
               PATH=bindir + os.pathsep + env.get("PATH", ""))
    return env


def _ours(submitted: Path, out: Path, workers: int, all_cells: bool,
          ) -> tuple[float, dict, list[str]]:
    env = _env()
    if all_cells:
        env["TUG_RUN_ALL_CELLS"] = "1"
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "autograde", "grade", str(submitted), "--out",
                           str(out), "--workers", str(workers)], capture_output=True,
                          text=True, env=env)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"autograde grade failed:\n{proc.stdout}\n{proc.stderr}")
    with open(out / "grades.csv") as fh:
        scores = {r["student_id"]: float(r["score"]) for r in csv.DictReader(fh)}
    paths = sorted({json.loads(p.read_text())["report"].get("execution") or "?"
                    for p in (out / "results").rglob("*.json")})
    return seconds, scores, paths


def _nbgrader(a, submitted: Path, course: Path) -> tuple[float, dict]:
    env = _env()
    env["JUPYTER_CONFIG_DIR"] = str(course / ".jupyter")
    course.mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(CONFIG)
    (course / "source" / a.name).mkdir(parents=True)
    shutil.copyfile(a.source, course / "source" / a.name / f"{a.name}.ipynb")
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", a.name, "--force"],
                   cwd=course, env=env, capture_output=True, check=True)
    shutil.copytree(submitted, course / "submitted")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", a.name, "--create",
                           "--force"], cwd=course, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"nbgrader autograde failed:\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-3000:]}")
    subprocess.run([sys.executable, "-m", "nbgrader", "export"], cwd=course, env=env,
                   capture_output=True, check=True)
    with open(course / "grades.csv") as fh:
        scores = {r["student_id"]: float(r["raw_score"]) for r in csv.DictReader(fh)}
    return seconds, scores


def _sizes() -> list[int]:
    text = os.environ.get("TUG_BENCH_CLASS_SIZES") or os.environ.get("TUG_BENCH_CLASS_SIZE")
    try:
        sizes = [int(x) for x in (text or "8,16").split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"TUG_BENCH_CLASS_SIZES={text!r}: expected sizes like 8,16") from None
    if not sizes or min(sizes) < 1:
        raise SystemExit(f"TUG_BENCH_CLASS_SIZES={text!r}: expected positive sizes like 8,16")
    return sizes


def _one(a, n: int, workers: int, all_cells: bool, verbose: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="tug-bench-grading-") as tmp:
        tmp = Path(tmp)
        submitted = tmp / "submitted"
        _make_class(a, submitted, n)
        ours_s, ours, paths = _ours(submitted, tmp / "ours", workers, all_cells=False)
        if verbose:
            print(f"  {n} submissions: ours ({workers} workers, {', '.join(paths)}): "
                  f"{ours_s:.1f} s", flush=True)
        all_s = None
        if all_cells:
            all_s, _, _ = _ours(submitted, tmp / "ours-all", workers, all_cells=True)
            if verbose:
                print(f"  {n} submissions: ours, every cell executed: {all_s:.1f} s",
                      flush=True)
        nbg_s, nbg = _nbgrader(a, submitted, tmp / "nbgrader-course")
        if verbose:
            print(f"  {n} submissions: plain nbgrader autograde: {nbg_s:.1f} s "
                  f"(speedup {nbg_s / ours_s:.2f})", flush=True)
    out = {"class_size": n, "execution": paths, "ours_seconds": round(ours_s, 1),
           "nbgrader_seconds": round(nbg_s, 1), "speedup": round(nbg_s / ours_s, 2),
           "totals_agree_with_nbgrader": ours == nbg}
    if all_s is not None:
        out.update(ours_all_cells_seconds=round(all_s, 1),
                   speedup_all_cells=round(nbg_s / all_s, 2))
    return out


def run(verbose: bool = True) -> dict:
    sizes = _sizes()
    name = os.environ.get("TUG_BENCH_ASSIGNMENT", "01_activations")
    known = {a.name: a for a in assignments()}
    if name not in known:
        raise SystemExit(f"TUG_BENCH_ASSIGNMENT={name} is not one of {', '.join(known)}")
    a = known[name]
    workers = os.cpu_count() or 1
    t0 = time.monotonic()
    expectations(a)
    expect_s = time.monotonic() - t0
    first = _one(a, sizes[0], workers, all_cells=True, verbose=verbose)
    more = {str(n): _one(a, n, workers, all_cells=False, verbose=verbose) for n in sizes[1:]}
    return {"grading": {
        "assignment": name, "workers": workers, **first,
        "expectations_seconds_if_cold": round(expect_s, 1),
        **({"other_class_sizes": more} if more else {}),
    }}
