"""Open the course in JupyterLab: the students' lab, or nbgrader's formgrader for instructors.

``python -m autograde.lab`` (what ``make lab`` runs)
    JupyterLab on ``notebooks/`` without the instructor's tools: nbgrader's Formgrader,
    Create Assignment, Courses and Assignments panels and its menu are switched off (the
    Validate button stays). The switches live in ``autograde/labconfig/student/``.

``python -m autograde.lab --formgrader OUT`` (what ``make formgrader OUT=...`` runs)
    JupyterLab in ``OUT/nbgrader``, the nbgrader course that ``python -m autograde grade ...
    --out OUT`` wrote, with every nbgrader tool on: grade the free-text answers there with
    *Nbgrader > Formgrader*.

Both work as root (``--allow-root`` is added) and from a conda environment as well as from
``.venv``. Arguments after ``--`` go to ``jupyter lab`` unchanged (``-- --no-browser``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .course import CourseError, course_root

HERE = Path(__file__).resolve().parent
STUDENT_CONFIG = HERE / "labconfig" / "student"


def lab_command(extra: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "jupyterlab", *extra]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in extra:
        cmd.append("--allow-root")  # Jupyter refuses root unless told (containers, CI)
    return cmd


def _environment(config_path: list[Path] | None) -> dict[str, str]:
    env = dict(os.environ)
    # so that `nbgrader ...` typed into the lab's terminal is this environment's nbgrader
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    if config_path is None:
        env.pop("JUPYTER_CONFIG_PATH", None)
    else:
        env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(str(p) for p in config_path)
    return env


def student_lab(extra: list[str], root: Path | None = None) -> tuple[list[str], dict, Path]:
    """Command, environment and folder of the students' lab."""
    root = root or course_root()
    notebooks = root / "notebooks"
    if not notebooks.is_dir():
        raise CourseError(f"no notebooks/ folder under {root}: run `python -m autograde release` "
                          "(or `make lab`, which does it for you)")
    # the students' switches first (they win), then the course's nbgrader configuration
    env = _environment([STUDENT_CONFIG, HERE])
    chosen = any(a.startswith(("--notebook-dir", "--ServerApp.root_dir")) for a in extra)
    folder = [] if chosen else [f"--notebook-dir={notebooks}"]  # a folder given wins
    return lab_command([*folder, *extra]), env, notebooks


def formgrader_lab(out: Path, extra: list[str]) -> tuple[list[str], dict, Path]:
    """Command, environment and folder of the instructors' formgrader lab on ``out``."""
    course = Path(out).resolve()
    if (course / "nbgrader" / "nbgrader_config.py").is_file():
        course = course / "nbgrader"
    if not (course / "nbgrader_config.py").is_file():
        raise CourseError(f"no nbgrader course in {out}: grade the class first with "
                          f"`python -m autograde grade SUBMISSIONS --out {out}`, then open it "
                          "with `python -m autograde.lab --formgrader` and the same folder")
    # the grading folder's own nbgrader_config.py (read from the current folder) decides
    env = _environment(None)
    return lab_command([f"--notebook-dir={course}", *extra]), env, course


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    p = argparse.ArgumentParser(prog="python -m autograde.lab",
                                description="Open the course (or the formgrader) in JupyterLab.")
    p.add_argument("--formgrader", type=Path, metavar="OUT", default=None,
                   help="open nbgrader's formgrader on the folder `python -m autograde grade "
                        "--out OUT` wrote, to grade free-text answers by hand")
    p.add_argument("--print", action="store_true",
                   help="print the command and its JUPYTER_CONFIG_PATH instead of running it")
    args = p.parse_args(argv)
    try:
        if args.formgrader is not None:
            cmd, env, cwd = formgrader_lab(args.formgrader, extra)
        else:
            cmd, env, cwd = student_lab(extra)
    except CourseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.print:
        print(" ".join(cmd))
        print("JUPYTER_CONFIG_PATH=" + env.get("JUPYTER_CONFIG_PATH", ""))
        return 0
    # become JupyterLab (no parent left behind: stopping this process stops the lab)
    os.chdir(cwd)
    os.execve(cmd[0], cmd, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
