"""Command line: ``python -m autograde {release,check,grade} ...`` (see ``--help``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .course import CourseError

KEEP_MINUTES = 10.0  # autograde.keepwarm.KEEP_MINUTES, without importing it for --help


def skip_unused_grammar() -> None:
    """jsonschema (imported by nbformat) imports ``rfc3987_syntax`` when it is installed, only
    for an "iri" format check that nbformat never asks for; building its grammar took 15 s of
    a 15.4 s ``import nbformat`` (loaded machine, one run; ``import numpy``: 0.9 s). Marked
    absent in the grading processes before nbformat loads."""
    sys.modules.setdefault("rfc3987_syntax", None)


skip_unused_grammar()


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


def _add_options(parser: argparse.ArgumentParser) -> None:
    """The grading options of :class:`autograde.report.Options`, help and defaults included."""
    from .report import Options

    for f, flag, metavar, text in Options.cli_fields():
        kind = int if f.type in (int, "int") else float
        parser.add_argument(flag, dest=f.name, type=_positive(kind), default=None,
                            metavar=metavar, help=text)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m autograde",
                                description="Release and grade the course's notebooks.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("release", help="regenerate notebooks/ from solutions/ with nbgrader")
    r.add_argument("assignments", nargs="*", help="only these (default: all)")
    r.add_argument("--check", action="store_true",
                   help="change nothing; exit 1 and name the stale notebooks if any")

    c = sub.add_parser("check", help="grade a notebook (or a folder) against the full tests")
    c.add_argument("path", type=Path, help="a .ipynb file or a folder of them")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.add_argument("--keep-warm", action="store_true",
                   help="keep the warm kernel parent for the next check, which then starts at "
                        "once; it ends after --warm-minutes idle minutes or with `stop-warm` "
                        "(see autograde/keepwarm.py)")
    c.add_argument("--warm-minutes", type=_positive(float), default=KEEP_MINUTES,
                   metavar="M", help=f"idle minutes a kept parent waits (default {KEEP_MINUTES:g})")
    _add_options(c)

    sub.add_parser("stop-warm", help="end the warm kernel parents kept by check --keep-warm")

    g = sub.add_parser("grade", help="grade a whole class of submissions")
    g.add_argument("submissions", type=Path,
                   help="folder of submissions (nbgrader's submitted/ layout or flat)")
    g.add_argument("--out", type=Path, required=True, help="folder for grades and feedback")
    g.add_argument("--workers", type=_positive(int), default=None,
                   help="submissions graded at once (default: the number of CPUs)")
    _add_options(g)
    g.add_argument("--executor", default="local",
                   help="'local' (worker processes on this machine) or dask://HOST:PORT "
                        "(a Dask distributed scheduler whose workers see the same files)")
    g.add_argument("--roster", type=Path, default=None,
                   help="CSV of student ids (column student_id or id): every student gets "
                        "a row, even without a submission")
    g.add_argument("--assignment", action="append", default=None, metavar="NAME",
                   help="grade only this assignment (repeatable; default: every assignment "
                        "found in the submissions)")
    return p


def _options(args):
    from dataclasses import fields

    from .report import Options

    given = {f.name: getattr(args, f.name) for f in fields(Options)
             if getattr(args, f.name, None) is not None}
    return Options(**given)


NOT_IMPLEMENTED = "not implemented yet"


def _print_report(rep) -> None:
    """One line per exercise with its points, then what failed (once per exercise when its
    stub is still there)."""
    name = Path(rep.notebook).name
    ran = f"  ({rep.execution})" if rep.execution else ""
    print(f"{name}  (assignment {rep.assignment or '?'})  status: {rep.status}{ran}")
    if rep.message:
        print(f"  {rep.message}")
    exercises: dict[str, list] = {}
    for t in rep.tests:
        exercises.setdefault(t.exercise or t.grade_id, []).append(t)
    width = max([len(e) for e in exercises] + [10])
    details = []
    for exercise, tests in exercises.items():
        score, top = sum(t.score for t in tests), sum(t.max_score for t in tests)
        failed = [t for t in tests if not t.passed]
        stub = failed and all(t.message.startswith(NOT_IMPLEMENTED) for t in failed)
        mark = "✓" if not failed else "✗"
        note = f"  {NOT_IMPLEMENTED}" if stub else ""
        print(f"  {mark} {exercise:<{width}} {score:g}/{top:g}{note}")
        if failed and not stub:
            details.append((exercise, failed))
    manual = sum(m["max_score"] for m in rep.manual)
    extra = f" (+{manual:g} points graded by hand)" if manual else ""
    print(f"  score: {rep.score:g} / {rep.max_score:g}{extra}")
    for f in rep.flags:
        print(f"  note: {f}")
    if details:
        print("\nWhat failed:")
    for exercise, failed in details:
        print(f"  {exercise}")
        for t in failed:
            print(f"    {t.grade_id} ({t.score:g}/{t.max_score:g}):")
            for line in t.message.splitlines():
                print(f"      {line}")


def _check(args) -> int:
    path = args.path
    if not path.exists():
        print(f"error: {path} does not exist", file=sys.stderr)
        return 2
    opts = _options(args)
    if path.is_file():
        # the warm kernel parent starts first: its imports overlap the grader's and the plan
        from .sandbox import notebook_sandbox

        pool = _pool(notebook_sandbox(path, opts.memory_mb, opts.hide), args)
        try:
            return _check_one(path, opts, args.json, pool)
        finally:
            if pool is not None:
                pool.close()
    from .grader import check_notebook, find_notebooks

    paths = find_notebooks(path)
    if not paths:
        print(f"error: no .ipynb files under {path}", file=sys.stderr)
        return 2
    from .sandbox import notebook_sandbox

    reports = []
    if not args.json:
        print(f"{'notebook':<48} {'status':<18} {'score':>12} {'time':>7}")
    pool, pool_for = None, None  # one warm parent for the notebooks of one folder
    try:
        for p in paths:
            t0 = time.monotonic()
            sandbox = notebook_sandbox(p, opts.memory_mb, opts.hide)
            if pool_for != sandbox.hide or (pool is not None and not pool.alive()):
                if pool is not None:
                    pool.close()
                pool, pool_for = _pool(sandbox, args), sandbox.hide
            rep = check_notebook(p, opts, pool=pool)
            reports.append(rep)
            if not args.json:
                score = f"{rep.score:g}/{rep.max_score:g}"
                print(f"{str(p.relative_to(path)):<48} {rep.status:<18} {score:>12} "
                      f"{time.monotonic() - t0:6.1f}s", flush=True)
    finally:
        if pool is not None:
            pool.close()
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=1))
    return 0


def _pool(sandbox, args):
    """The warm parent a check forks from: kept between checks (``--keep-warm``) or its
    own, or None (cold kernels)."""
    if args.keep_warm:
        from .keepwarm import kept_pool

        notes: list[str] = []
        pool = kept_pool(sandbox, args.warm_minutes, notes)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        return pool
    from .forkserver import short_lived_pool

    return short_lived_pool(sandbox)


def _stop_warm() -> int:
    from .keepwarm import stop_all

    pids = stop_all()
    print(f"stopped {len(pids)} warm kernel parent(s)" if pids else "no warm kernel parent runs")
    return 0


def _check_one(path: Path, opts, as_json: bool, pool) -> int:
    from .grader import check_notebook

    rep = check_notebook(path, opts, pool=pool)
    if as_json:
        print(json.dumps(rep.to_dict(), indent=1))
    else:
        _print_report(rep)
    return 0 if rep.status.ran else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "release":
            from .release import release

            return release(args.assignments, check=args.check)
        if args.command == "check":
            return _check(args)
        if args.command == "stop-warm":
            return _stop_warm()
        if args.command == "grade":
            from .classgrade import grade_main

            return grade_main(args)
    except CourseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
