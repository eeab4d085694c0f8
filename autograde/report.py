"""The one shape of a grading result, shared by ``check``, ``grade``, feedback and gradebook.

``Report`` is what :func:`autograde.grader.check_notebook` returns; ``Report.to_dict()`` is the
JSON printed by ``check --json`` and kept in ``grade``'s ``results/`` folder, and
``Report.from_dict`` reads it back. ``Options`` holds every grading option with its default
and help text, written once: the command line is generated from it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path


class Status(StrEnum):
    """How grading a notebook ended (a ``str``, so it is its own JSON)."""

    GRADED = "graded"
    TIMEOUT = "timeout"
    KERNEL_DIED = "kernel_died"
    MEMORY_EXCEEDED = "memory_exceeded"
    INVALID_NOTEBOOK = "invalid_notebook"
    UNKNOWN_ASSIGNMENT = "unknown_assignment"
    MISSING = "missing"
    GRADER_ERROR = "grader_error"

    @property
    def ran(self) -> bool:
        """The notebook ran (possibly cut short): its verdicts are grades."""
        return self in (Status.GRADED, Status.TIMEOUT, Status.KERNEL_DIED,
                        Status.MEMORY_EXCEEDED)


@dataclass
class TestResult:
    grade_id: str
    exercise: str | None
    score: float
    max_score: float
    passed: bool
    message: str = ""
    hidden: bool = False  # a hidden test cell: the message carries nothing it produced


@dataclass
class Report:
    assignment: str | None
    notebook: str
    status: Status
    score: float = 0.0
    max_score: float = 0.0
    tests: list[TestResult] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    message: str = ""
    manual: list[dict] = field(default_factory=list)  # {"grade_id", "max_score"} graded by hand
    seconds: float | None = None
    execution: str | None = None  # "warm forked kernel" or "cold kernel" (autograde.runner)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["status"] = str(self.status)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> Report:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        kw["status"] = Status(kw.get("status", Status.GRADER_ERROR))
        tkeys = {f.name for f in fields(TestResult)}
        kw["tests"] = [TestResult(**{k: v for k, v in t.items() if k in tkeys})
                       for t in kw.get("tests", [])]
        return cls(**kw)

    @classmethod
    def failed(cls, assignment: str | None, notebook: str | Path, status: Status,
               message: str) -> Report:
        """A notebook that could not be graded at all."""
        return cls(assignment, str(notebook), status, message=message)


def _flag(name: str) -> bool:
    return bool(os.environ.get(name))


@dataclass
class Options:
    """Grading options: defaults and help written once (``--help`` is generated from here)."""

    timeout: float = field(default=120.0, metadata={
        "flag": "--timeout", "metavar": "S", "help": "seconds any one cell may run"})
    total_timeout: float = field(default=1200.0, metadata={
        "help": "seconds a whole notebook may run"})
    memory_mb: int = field(default=3072, metadata={
        "flag": "--memory-limit", "metavar": "MB",
        "help": "address-space limit of each student kernel"})
    hide: tuple[Path, ...] = ()
    # skip instructor cells that no test or student cell needs (see autograde.pruning)
    run_all_cells: bool = field(default_factory=lambda: _flag("TUG_RUN_ALL_CELLS"))

    @classmethod
    def cli_fields(cls):
        """(field, flag, metavar, help) for the options the command line offers."""
        for f in fields(cls):
            if "flag" in f.metadata:
                yield (f, f.metadata["flag"], f.metadata.get("metavar"),
                       f"{f.metadata['help']} (default {f.default:g})")
