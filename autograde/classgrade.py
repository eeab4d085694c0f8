"""Grade a whole class: ``python -m autograde grade SUBMISSIONS --out DIR``.

Same engine as ``check`` (:func:`autograde.grader.check_notebook`): every submission runs in its
own fresh sandboxed kernel (with local workers, a child forked from the worker's warm fork
server, see :mod:`autograde.forkserver`); verdicts are computed in this trusted process.
On top of it:

* discovery of nbgrader's ``submitted/<student>/<assignment>/<notebook>.ipynb`` layout, of LMS
  zip downloads (Canvas and Moodle naming) and of a roster, so that every student gets a row;
* parallel grading (``--workers``, local processes, or a Dask cluster with
  ``--executor dask://HOST:PORT``) with one writer for every output;
* nothing lost: each result is written atomically to ``DIR/results/`` the moment it is known,
  a re-run reuses every result whose notebook and grading inputs are unchanged (so a killed
  run resumes, and new or changed submissions are the only ones graded again);
* outputs: ``grades.csv``, ``scores.csv``, ``feedback/<student>/<assignment>/*.html`` and an
  nbgrader course in ``DIR/nbgrader`` (gradebook backed up before each write) on which
  nbgrader's own ``formgrader``, ``generate_feedback`` and ``export`` work.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import re
import shutil
import sys
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .course import Assignment, CourseError, assignments
from .report import Options, Report, Status

RESULT_VERSION = "2"
MAX_UNZIPPED_BYTES = 200 * 2**20  # per archive: a guard against zip bombs
SKIP_PARTS = {"__MACOSX", ".ipynb_checkpoints"}
MOODLE = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assignsubmission_(?:file|onlinetext)_?$")
CANVAS = re.compile(
    r"^(?P<login>[A-Za-z0-9.\-]+?)_(?:late_)?(?P<uid>\d+)_(?P<sid>\d+)_(?P<rest>.+)$",
    re.IGNORECASE)


# ============================================================================ discovery
@dataclass
class Submission:
    student: str
    assignment: str
    path: str | None  # None: nothing was submitted
    notes: list[str] = field(default_factory=list)


def safe_id(text: str) -> str:
    """A student id that is safe as a folder name and as an nbgrader id."""
    cleaned = re.sub(r"[^A-Za-z0-9._@-]+", "_", text.strip()).strip("._")
    return cleaned or "unknown"


def _unpack(archive: Path, dest: Path, notes: list[str]) -> Path | None:
    """Extract ``archive`` into ``dest`` (once), refusing unsafe paths and zip bombs."""
    stamp = dest / ".unpacked-from"
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            total = sum(i.file_size for i in zf.infolist())
            if total > MAX_UNZIPPED_BYTES:
                notes.append(f"{archive.name}: skipped, it would unpack to {total >> 20} MB")
                return None
            for info in zf.infolist():
                parts = Path(info.filename).parts
                if info.is_dir() or not parts or info.filename.startswith("/") or ".." in parts:
                    continue
                target = dest.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(info))
    except (zipfile.BadZipFile, OSError) as exc:
        notes.append(f"{archive.name}: not a readable zip file ({exc}); skipped")
        return None
    dest.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest)
    return dest


def _assignment_from_name(stem: str, known: dict[str, Assignment]) -> str | None:
    hits = [name for name in known if name in stem]
    return max(hits, key=len) if hits else None


def _assignment_from_content(path: Path) -> str | None:
    from .grader import identify
    from .notebooks import InvalidNotebook, read_notebook

    try:
        nb = read_notebook(path)
    except InvalidNotebook:
        return None
    a = identify(nb, Path("unnamed.ipynb"))
    return a.name if a else None


def _classify(rel: tuple[str, ...], default_student: str | None, known: dict[str, Assignment],
              path: Path) -> tuple[str | None, str | None]:
    """(student, assignment) for one notebook, from its path relative to a submissions root."""
    stem = Path(rel[-1]).stem
    if len(rel) >= 3 and rel[-2] in known:  # nbgrader: <student>/<assignment>/<notebook>
        return rel[-3], rel[-2]
    for part in rel[:-1]:  # Moodle: "<Full Name>_<id>_assignsubmission_file_/<notebook>"
        m = MOODLE.match(part)
        if m:
            return f"{m['name']}_{m['id']}", (_assignment_from_name(stem, known)
                                             or _assignment_from_content(path))
    m = CANVAS.match(stem)  # Canvas: "<login>_[late_]<user id>_<submission id>_<file name>"
    if m and len(rel) == 1:
        return m["login"], (_assignment_from_name(m["rest"], known)
                            or _assignment_from_content(path))
    if len(rel) == 2 and rel[0] in known and default_student:
        return default_student, rel[0]
    if len(rel) == 2 and rel[0] not in known:  # <student>/<notebook>
        return rel[0], _assignment_from_name(stem, known) or _assignment_from_content(path)
    if len(rel) == 1 and default_student:  # one zip per student, notebooks at its top
        return default_student, (_assignment_from_name(stem, known)
                                 or _assignment_from_content(path))
    return None, None


def _notebooks_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.ipynb")
                  if not (SKIP_PARTS & set(p.relative_to(root).parts))
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def discover(submissions: Path, out: Path, roster: list[str],
             only: list[str] | None) -> tuple[list[Submission], list[str]]:
    """Every (student, assignment) pair to report on, and notes about what was skipped."""
    known = {a.name: a for a in assignments()}
    notes: list[str] = []
    roots: list[tuple[Path, str | None]] = []
    unpack_dir = out / "unpacked"
    if submissions.is_file():
        if submissions.suffix.lower() != ".zip":
            raise CourseError(f"{submissions} is a file but not a .zip; give a folder of "
                              "submissions or an LMS zip download")
        got = _unpack(submissions, unpack_dir / safe_id(submissions.stem), notes)
        if got is None:
            raise CourseError(notes[-1])
        roots.append((got, None))
    else:
        roots.append((submissions, None))
        for archive in sorted(submissions.glob("*.zip")):
            got = _unpack(archive, unpack_dir / safe_id(archive.stem), notes)
            if got is not None:
                roots.append((got, safe_id(archive.stem)))
    found: dict[tuple[str, str], list[Path]] = {}
    students: set[str] = {safe_id(s) for s in roster if s.strip()}
    for root, default_student in roots:
        for nested in sorted(root.rglob("*.zip")) if root != submissions else []:
            got = _unpack(nested, nested.with_suffix(".unzipped"), notes)
            if got is not None:
                notes.append(f"{nested.name}: unpacked (a zip inside a zip)")
        for path in _notebooks_under(root):
            rel = path.relative_to(root).parts
            student, assignment = _classify(rel, default_student, known, path)
            shown = path.relative_to(root)
            if student is None:
                notes.append(f"{shown}: cannot tell whose notebook this is; expected "
                             "<student>/<assignment>/<notebook>.ipynb; skipped")
                continue
            student = safe_id(student)
            students.add(student)
            if assignment is None:
                notes.append(f"{shown}: does not match any assignment "
                             f"({', '.join(known)}); skipped")
                continue
            found.setdefault((student, assignment), []).append(path)
        if root == submissions:  # student folders without any notebook still count
            for child in submissions.iterdir():
                if child.is_dir() and not child.name.startswith(".") \
                        and child.name not in SKIP_PARTS and child.name not in known \
                        and not child.name.endswith(".unzipped"):
                    students.add(safe_id(child.name))
    wanted = list(only) if only else sorted({a for _, a in found} or known)
    unknown = [a for a in wanted if a not in known]
    if unknown:
        raise CourseError(f"unknown assignment(s) {', '.join(unknown)}; the course has "
                          f"{', '.join(known)}")
    subs = []
    for student in sorted(students):
        for name in wanted:
            paths = found.get((student, name), [])
            if not paths:
                subs.append(Submission(student, name, None))
                continue
            exact = [p for p in paths if p.name == f"{name}.ipynb"]
            chosen = max(exact or paths, key=lambda p: p.stat().st_mtime)
            sub = Submission(student, name, str(chosen))
            if len(paths) > 1:
                sub.notes.append(f"{len(paths)} notebooks submitted for {name}; graded "
                                 f"{chosen.name}")
            subs.append(sub)
    return subs, notes


def _known_students(out: Path) -> list[str]:
    """Students of earlier runs into the same folder (kept in its gradebook): a re-run without
    the roster still reports every one of them."""
    import sqlite3

    db = out / "nbgrader" / "gradebook.db"
    if not db.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return [row[0] for row in con.execute("select id from student")]
        finally:
            con.close()
    except sqlite3.Error:
        return []


@dataclass
class Roster:
    """The students of a roster CSV, and its other columns (a name, an e-mail...), which
    ``grades.csv`` carries after its own columns."""
    ids: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    extra: dict[str, list[str]] = field(default_factory=dict)  # safe_id -> column values


def read_roster(path: Path | None) -> Roster:
    if path is None:
        return Roster()
    if not path.exists():
        raise CourseError(f"roster {path} does not exist")
    text = path.read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return Roster()
    header = [h.strip() for h in rows[0]]
    lower = [h.lower() for h in header]
    for key in ("student_id", "id", "username", "login"):
        if key in lower:
            col = lower.index(key)
            body = [r for r in rows[1:] if len(r) > col and r[col].strip()]
            others = [i for i, h in enumerate(header)
                      if i != col and h and h.lower() not in GRADE_COLUMNS]
            return Roster(ids=[r[col] for r in body], columns=[header[i] for i in others],
                          extra={safe_id(r[col]): [r[i] if i < len(r) else "" for i in others]
                                 for r in body})
    return Roster(ids=[r[0] for r in rows if r and r[0].strip()])


# ============================================================================ grading jobs
def grade_job(job: dict) -> dict:
    """Grade one submission (runs in a worker process or on a Dask worker)."""
    from .grader import check_notebook

    t0 = time.monotonic()
    opts = Options(timeout=job["timeout"], total_timeout=job["total_timeout"],
                   memory_mb=job["memory_mb"], hide=tuple(Path(p) for p in job["hide"]))
    try:
        pool = _worker_pool(opts) if job.get("warm") else None
        report = check_notebook(job["path"], opts, assignment=job["assignment"], pool=pool)
    except Exception as exc:  # an infrastructure failure must not stop the batch
        report = Report.failed(job["assignment"], job["path"], Status.GRADER_ERROR,
                               f"{type(exc).__name__}: {exc}")
    report.seconds = round(time.monotonic() - t0, 3)
    return report.to_dict()


_POOL: dict = {}  # this worker's warm fork server, kept for the whole class


def _worker_pool(opts: Options):
    """The worker's :class:`autograde.forkserver.ForkServer` for these limits (started on
    the first job, replaced when it died or the limits changed, closed when the worker
    exits); None where forking is impossible (then check_notebook grades cold)."""
    from multiprocessing import util

    from .forkserver import ForkServer, ForkUnavailable
    from .sandbox import SandboxConfig

    key = (opts.memory_mb, tuple(str(p) for p in opts.hide))
    pool = _POOL.get("server")
    if pool is not None and (_POOL.get("key") != key or not pool.alive()):
        pool.close()
        pool = _POOL["server"] = None
    if pool is None:
        try:
            pool = ForkServer(SandboxConfig(memory_mb=opts.memory_mb, hide=list(opts.hide)))
        except ForkUnavailable:
            return None
        _POOL.update(server=pool, key=key)
        if not _POOL.get("finalizer"):  # multiprocessing workers skip atexit handlers
            _POOL["finalizer"] = util.Finalize(None, _close_pool, exitpriority=10)
    return pool


def _close_pool() -> None:
    pool = _POOL.pop("server", None)
    if pool is not None:
        pool.close()


def _warm_worker() -> None:
    """Pre-import the grader (numpy, jupyter_client) once per worker process. Not torch: the
    grading process never runs it (kernels do; the warm fork server has imported it)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from .__main__ import skip_unused_grammar

    skip_unused_grammar()
    import autograde.grader  # noqa: F401


class LocalExecutor:
    def __init__(self, workers: int):
        import concurrent.futures as cf
        import multiprocessing as mp

        self._cf = cf
        self.pool = cf.ProcessPoolExecutor(max_workers=workers,
                                           mp_context=mp.get_context("forkserver"),
                                           initializer=_warm_worker)

    def run(self, jobs: list[dict]):
        # each worker keeps one warm fork server for all its jobs (autograde/forkserver.py)
        futures = {self.pool.submit(grade_job, dict(job, warm=True)): job for job in jobs}
        for fut in self._cf.as_completed(futures):
            job = futures[fut]
            try:
                yield job, fut.result()
            except Exception as exc:  # a worker process died (killed, out of memory)
                yield job, _error_report(job, exc)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    def __init__(self, address: str):
        try:
            from distributed import Client
        except ImportError:
            raise CourseError("--executor dask://... needs the 'distributed' package "
                              "(pip install 'dask[distributed]')") from None
        try:
            self.client = Client(address, timeout=30)
        except OSError as exc:
            raise CourseError(f"cannot reach the Dask scheduler at {address}: {exc}") from None

    def run(self, jobs: list[dict]):
        from distributed import as_completed

        futures = {self.client.submit(grade_job, job, pure=False, key=f"grade-{i}-{time.time()}"):
                   job for i, job in enumerate(jobs)}
        for fut in as_completed(list(futures)):
            job = futures[fut]
            try:
                yield job, fut.result()
            except Exception as exc:
                yield job, _error_report(job, exc)

    def close(self) -> None:
        self.client.close()


def _error_report(job: dict, exc: BaseException) -> dict:
    return Report.failed(job["assignment"], job["path"], Status.GRADER_ERROR,
                         f"the grading worker failed: {type(exc).__name__}: {exc}").to_dict()


def make_executor(spec: str, workers: int):
    if spec == "local":
        return LocalExecutor(workers)
    if spec.startswith("dask://"):
        rest = spec[len("dask://"):]
        if not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+:\d+", rest):
            raise CourseError(f"--executor {spec}: expected dask://HOST:PORT")
        return DaskExecutor("tcp://" + rest)
    raise CourseError(f"unknown --executor {spec!r}; use 'local' or 'dask://HOST:PORT'")


# ============================================================================ results
def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _job_key(sub: Submission, fingerprint: str, job: dict) -> str:
    """Same key, same result: the notebook's bytes, the expected values, the limits."""
    h = hashlib.sha256(RESULT_VERSION.encode())
    h.update(Path(sub.path).read_bytes() if sub.path else b"<missing>")
    h.update(f"{fingerprint} {job['timeout']} {job['total_timeout']} {job['memory_mb']}".encode())
    return h.hexdigest()


def _result_path(out: Path, student: str, assignment: str) -> Path:
    return out / "results" / student / f"{assignment}.json"


def _load_result(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


# ============================================================================ command
@dataclass
class Row:
    student_id: str
    assignment: str
    score: float
    max_score: float
    status: Status
    report: Report | None = None
    path: str | None = None
    notes: list[str] = field(default_factory=list)


def _max_score(a: Assignment) -> float:
    from .notebooks import is_test, points, read_notebook

    return float(sum(points(c) for c in read_notebook(a.source).cells if is_test(c)))


def _bar(done: int, total: int, width: int = 24) -> str:
    filled = int(width * done / max(total, 1))
    return "[" + "#" * filled + "." * (width - filled) + f"] {done:>{len(str(total))}}/{total}"


def protections() -> str:
    from .sandbox import bwrap_works

    base = ("fresh kernel per submission (forked from a warm sandboxed parent, or cold) in "
            "its own process group and session; SIGKILL on "
            "time-outs; address-space limit; scrubbed environment; verdicts computed outside "
            "the student's process")
    if bwrap_works():
        return (base + "; bubblewrap: no network, read-only file system, private /tmp, own "
                "PID namespace, solutions/, gradebook, outputs and other submissions hidden")
    return (base + ". WARNING: bubblewrap is not available (apt install bubblewrap), so there "
            "is NO network or file-system isolation")


def grade_main(args) -> int:
    from .grader import expectations

    submissions: Path = args.submissions.resolve()
    out: Path = args.out.resolve()
    if not submissions.exists():
        raise CourseError(f"{submissions} does not exist; give the folder that holds "
                          "<student_id>/<assignment>/<notebook>.ipynb (or LMS zip downloads)")
    if out == submissions or submissions in out.parents and not submissions.is_file():
        raise CourseError("--out must not be inside the submissions folder")
    out.mkdir(parents=True, exist_ok=True)
    workers = args.workers or os.cpu_count() or 1
    executor_spec = args.executor or "local"
    t_start = time.monotonic()

    roster = read_roster(getattr(args, "roster", None))
    subs, notes = discover(submissions, out, roster.ids + _known_students(out),
                           getattr(args, "assignment", None))
    if not subs:
        raise CourseError(f"no students found in {submissions}")
    known = {a.name: a for a in assignments()}
    names = sorted({s.assignment for s in subs})
    students = sorted({s.student for s in subs})
    print(f"Grading {len(students)} student(s) x {len(names)} assignment(s) "
          f"({', '.join(names)}) from {submissions}")
    print(f"Protections: {protections()}")
    for note in notes:
        print(f"  note: {note}")

    fingerprints, max_scores = {}, {}
    for name in names:
        t0 = time.monotonic()
        expected = expectations(known[name])  # trusted run of the solution, cached
        # results stay valid while the expected values and the test helpers stay the same
        fingerprints[name] = hashlib.sha256(
            json.dumps(expected["tests"], sort_keys=True).encode()
            + Path(testing_file()).read_bytes()).hexdigest()
        max_scores[name] = _max_score(known[name])
        print(f"  expected results for {name} ready ({time.monotonic() - t0:.1f} s)")

    # nbgrader's own set-up of the gradebook course runs while the class is graded
    from .gradebook import prepare_course, sync_gradebook

    prep: dict = {}

    def _prepare() -> None:
        try:
            prep["backup"] = prepare_course(out / "nbgrader", [known[n] for n in names])
        except Exception as exc:  # reported after grading; results are safe on disk
            prep["error"] = exc

    prep_thread = threading.Thread(target=_prepare, daemon=True)
    prep_thread.start()

    defaults = Options()
    base_job = {"timeout": getattr(args, "timeout", None) or defaults.timeout,
                "total_timeout": defaults.total_timeout,
                "memory_mb": getattr(args, "memory_mb", None) or defaults.memory_mb,
                "hide": [str(submissions), str(out)]}
    rows: dict[tuple[str, str], Row] = {}
    todo: list[dict] = []
    reused = 0
    for sub in subs:
        key = (sub.student, sub.assignment)
        if sub.path is None:
            rows[key] = Row(sub.student, sub.assignment, 0.0, max_scores[sub.assignment],
                            Status.MISSING, notes=["no notebook was submitted"])
            continue
        job = dict(base_job, path=sub.path, assignment=sub.assignment, student=sub.student)
        job["key"] = _job_key(sub, fingerprints[sub.assignment], job)
        job["notes"] = sub.notes
        saved = _load_result(_result_path(out, *key))
        if saved and saved.get("key") == job["key"] and saved.get("report", {}).get(
                "status") in {s.value for s in Status if s.ran} | {
                Status.INVALID_NOTEBOOK.value, Status.UNKNOWN_ASSIGNMENT.value}:
            rows[key] = _row_from(saved["report"], sub, max_scores)
            reused += 1
            continue
        todo.append(job)
    print(f"{len(todo)} submission(s) to grade, {reused} unchanged since the last run, "
          f"{sum(1 for r in rows.values() if r.status == Status.MISSING)} missing; "
          f"{workers} worker(s), executor {executor_spec}")

    done = 0
    if todo:
        executor = make_executor(executor_spec, workers)
        try:
            for job, report in executor.run(todo):
                done += 1
                sub = Submission(job["student"], job["assignment"], job["path"], job["notes"])
                if report.get("status") != Status.GRADER_ERROR:
                    _atomic_write(_result_path(out, sub.student, sub.assignment),
                                  json.dumps({"key": job["key"], "student": sub.student,
                                              "submission": job["path"], "report": report,
                                              "graded_at": _now()}, indent=1))
                row = _row_from(report, sub, max_scores)
                rows[(sub.student, sub.assignment)] = row
                _write_grades(out, rows, roster)  # the CSV is current after every result
                print(f"{_bar(done, len(todo))}  {sub.student:<20} {sub.assignment:<24} "
                      f"{row.status:<17} {row.score:g}/{row.max_score:g}  "
                      f"({report.get('seconds', 0):.1f} s)", flush=True)
        finally:
            executor.close()

    ordered = [rows[(s.student, s.assignment)] for s in subs]
    _write_grades(out, rows, roster)
    _write_scores(out, ordered)
    for row in ordered:
        _write_feedback(out, row, known[row.assignment])
    prep_thread.join()
    if "error" in prep:
        raise CourseError(f"grades and feedback are written, but the nbgrader gradebook could "
                          f"not be prepared: {prep['error']}")
    backup = prep.get("backup")
    sync_gradebook(out / "nbgrader", [known[n] for n in names], ordered, prepared=True)
    kernels: dict[str, int] = {}  # which execution path graded each result (reused ones too)
    for row in ordered:
        if row.report is not None and row.report.execution:
            kernels[row.report.execution] = kernels.get(row.report.execution, 0) + 1
    _atomic_write(out / "summary.json", json.dumps(
        {"graded_at": _now(), "students": len(students), "assignments": names,
         "counts": _counts(ordered), "seconds": round(time.monotonic() - t_start, 1),
         "protections": protections(), "kernels": kernels, "notes": notes}, indent=1))
    if kernels:
        print("Kernels: " + ", ".join(f"{n} {kind}" for kind, n in sorted(kernels.items())))
    _print_summary(out, ordered, time.monotonic() - t_start, backup)
    return 1 if any(r.status == Status.GRADER_ERROR for r in ordered) else 0


def testing_file() -> str:
    from course_utils import testing

    return testing.__file__


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _row_from(data: dict, sub: Submission, max_scores: dict) -> Row:
    rep = Report.from_dict(data)
    max_score = rep.max_score or max_scores.get(sub.assignment, 0.0)
    notes = list(sub.notes)
    if rep.message:
        notes.append(rep.message)
    return Row(sub.student, sub.assignment, float(rep.score or 0.0), float(max_score),
               rep.status, rep, sub.path, notes)


def _counts(rows: list[Row]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    return counts


GRADE_COLUMNS = ("student_id", "assignment", "score", "max_score", "status")


def _write_grades(out: Path, rows: dict[tuple[str, str], Row], roster: Roster) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*GRADE_COLUMNS, *roster.columns])
    blank = [""] * len(roster.columns)
    for key in sorted(rows):
        r = rows[key]
        w.writerow([r.student_id, r.assignment, f"{r.score:g}", f"{r.max_score:g}", r.status,
                    *roster.extra.get(r.student_id, blank)])
    _atomic_write(out / "grades.csv", buf.getvalue())


def _write_scores(out: Path, rows: list[Row]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["student_id", "assignment", "grade_id", "exercise", "score", "max_score",
                "passed", "message"])
    for r in rows:
        for t in (r.report.tests if r.report else []):
            first = t.message.splitlines()
            w.writerow([r.student_id, r.assignment, t.grade_id, t.exercise or "",
                        f"{t.score:g}", f"{t.max_score:g}", int(bool(t.passed)),
                        first[0] if first else ""])
    _atomic_write(out / "scores.csv", buf.getvalue())


def _write_feedback(out: Path, row: Row, a: Assignment) -> None:
    from .feedback import render_feedback

    _atomic_write(out / "feedback" / row.student_id / a.name / f"{a.name}.html",
                  render_feedback(row, a))


def _print_summary(out: Path, rows: list[Row], seconds: float, backup: Path | None) -> None:
    counts = _counts(rows)
    print(f"\nDone in {seconds:.0f} s: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    by_assignment: dict[str, list[Row]] = {}
    for r in rows:
        by_assignment.setdefault(r.assignment, []).append(r)
    for name, rs in sorted(by_assignment.items()):
        graded = [r for r in rs if r.status != Status.MISSING]
        mean = sum(r.score for r in graded) / len(graded) if graded else 0.0
        top = max((r.max_score for r in rs), default=0)
        print(f"  {name}: {len(graded)}/{len(rs)} submitted, mean {mean:.1f} / {top:g}")
    attention = [r for r in rows if r.status not in (Status.GRADED, Status.MISSING)]
    for r in attention:
        print(f"  check: {r.student_id}/{r.assignment}: {r.status}"
              + (f" ({r.notes[-1].splitlines()[0]})" if r.notes else ""))
    print(f"Wrote {out / 'grades.csv'}, {out / 'scores.csv'}, {out / 'feedback'}/")
    print(f"nbgrader course with the gradebook: {out / 'nbgrader'}"
          + (f" (previous gradebook backed up to {backup.name})" if backup else ""))
    print(f"  manual grading: {sys.executable} -m autograde.lab --formgrader {out}"
          f"  (or make formgrader OUT={out}), then Nbgrader > Formgrader")
    print("  then Generate Feedback and Export Grades there (or, in that lab's terminal: "
          "nbgrader generate_feedback ASSIGNMENT; nbgrader export)")

