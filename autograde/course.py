"""Where things are: the course root, its assignments, their source and release notebooks."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

ASSIGNMENT_RE = re.compile(r"^\d\d_[a-z0-9_]+$")


class CourseError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""


def course_root() -> Path:
    """The repository root (``TUG_COURSE_ROOT`` overrides it, for tests and other layouts)."""
    env = os.environ.get("TUG_COURSE_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Assignment:
    name: str
    root: Path

    @property
    def source(self) -> Path:
        return self.root / "solutions" / self.name / f"{self.name}.ipynb"

    @property
    def release(self) -> Path:
        return self.root / "notebooks" / self.name / f"{self.name}.ipynb"


def assignments(root: Path | None = None) -> list[Assignment]:
    root = root or course_root()
    src = root / "solutions"
    if not src.is_dir():
        raise CourseError(f"no solutions/ folder under {root}: run this from the course repository")
    found = []
    for d in sorted(src.iterdir()):
        if d.is_dir() and ASSIGNMENT_RE.match(d.name) and (d / f"{d.name}.ipynb").is_file():
            found.append(Assignment(d.name, root))
    return found
