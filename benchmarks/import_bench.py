"""Import time of course_utils and its modules, each in a fresh interpreter."""

from __future__ import annotations

import pkgutil
import statistics
import subprocess
import sys

import course_utils


def _seconds(stmt: str, repeat: int = 3) -> float:
    code = f"import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        runs.append(float(out.stdout.strip().splitlines()[-1]))
    return round(statistics.median(runs), 3)


def run(verbose: bool = True) -> dict:
    figures = {"course_utils": _seconds("import course_utils")}
    for mod in sorted(m.name for m in pkgutil.iter_modules(course_utils.__path__)):
        figures[f"course_utils.{mod}"] = _seconds(f"import course_utils.{mod}")
    return {"import_seconds": figures}
