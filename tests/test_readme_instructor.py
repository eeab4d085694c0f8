"""README.md's "For instructors" section, run as written.

The commands are read from the section itself (its ```bash blocks and the inline `make ...`,
`.venv/bin/...` and `nbgrader ...` commands, in the order they appear; the subsection "Why you
can trust the grades" has none), then run one after the other on a temporary course (the
Makefile and one assignment's solution and release, made the course root with
``TUG_COURSE_ROOT``; the grader's code stays where it is installed, as it is bound read-only
into the grading sandbox from there) with a small class:
one student handing in the solution, one the untouched release, one only on the roster. Only the
two commands that open a JupyterLab (`make formgrader`, `python -m autograde.lab`) are skipped:
the browser tests cover them. Every command must succeed, and what the section says the grade
command writes must be there. Edit the section and this test runs the new commands.

`.venv/bin/` means this test's own environment (a bare `python` is whatever the PATH gives,
as for a reader: outside an activated environment it lacks the course's packages and fails);
`make` runs with that environment and a fresh install stamp, so it never reinstalls anything.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow

NAME = "00_unstable_gradients"  # the quickest assignment to grade
BIN = Path(sys.executable).parent
VENV = BIN.parent
LAB_COMMANDS = ("make formgrader", "make lab", "-m autograde.lab")
COMMAND_START = ("make ", ".venv/bin/", "nbgrader ", "python ", "python3 ")


def instructor_section(readme: str) -> str:
    start = readme.index("\n## For instructors\n")
    end = readme.find("\n## ", start + 1)
    section = readme[start:end if end > 0 else None]
    trust = section.find("\n### Why you can trust the grades")
    if trust >= 0:
        after = section.find("\n### ", trust + 1)
        section = section[:trust] + (section[after:] if after >= 0 else "")
    return section


def section_commands(section: str) -> list[str]:
    """Shell commands in order of appearance: lines of ```bash blocks, inline code spans that
    start like a command. A span that only names the start of a command given in full
    earlier (`nbgrader generate_feedback` in later prose) refers back to it: not run twice."""
    found: list[tuple[int, str]] = []
    for block in re.finditer(r"^[ \t]*```bash\n(.*?)^[ \t]*```", section, re.M | re.S):
        for line in block.group(1).splitlines():
            cmd = line.split(" #")[0].strip()
            if cmd and not cmd.startswith("#"):
                found.append((block.start(), cmd))
    for span in re.finditer(r"`([^`\n]+)`", section):
        text = span.group(1).strip()
        if text.startswith(COMMAND_START) and not _inside_block(section, span.start()):
            found.append((span.start(), text))
    found.sort(key=lambda p: p[0])
    everything = [c for _, c in found]
    commands: list[str] = []
    for i, cmd in enumerate(everything):
        is_mention = any(other.startswith(cmd + " ") for other in everything[:i])
        if cmd not in commands and not is_mention:
            commands.append(cmd)
    return commands


def _inside_block(section: str, pos: int) -> bool:
    return section[:pos].count("```") % 2 == 1


def _make_course(tmp: Path) -> Path:
    course = tmp / "course"
    course.mkdir()
    for f in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy2(ROOT / f, course / f)
    for d in ("solutions", "notebooks"):
        shutil.copytree(ROOT / d / NAME, course / d / NAME)
    submitted = course / "submitted"
    for student, source in (("ada", "solutions"), ("ben", "notebooks")):
        (submitted / student / NAME).mkdir(parents=True)
        shutil.copy2(ROOT / source / NAME / f"{NAME}.ipynb", submitted / student / NAME)
    (course / "roster.csv").write_text("student_id,name,email\nada,Ada L,ada@example.org\n"
                                       "ben,Ben K,ben@example.org\ncal,Cal M,cal@example.org\n")
    return course


def _argv(cmd: str, stamp: Path) -> list[str]:
    argv = shlex.split(cmd.replace("ASSIGNMENT", NAME))
    if argv[0] == "make":
        return [*argv, f"VENV={VENV}", f"STAMP={stamp}"]
    if argv[0].startswith(".venv/bin/"):
        return [str(BIN / argv[0].removeprefix(".venv/bin/")), *argv[1:]]
    if argv[0] == "nbgrader":
        return [str(BIN / "nbgrader"), *argv[1:]]
    if argv[0] in ("python", "python3"):
        return argv  # whatever `python` is on the PATH, as for a reader who copies the line
    raise AssertionError(f"the instructor section has a command this test cannot run: {cmd}")


def test_section_commands_are_found():
    commands = section_commands(instructor_section((ROOT / "README.md").read_text()))
    assert any("autograde release --check" in c for c in commands), commands
    assert any(re.search(r"autograde grade .*--out", c) for c in commands), commands
    assert any(c.startswith("nbgrader generate_feedback") for c in commands), commands
    assert not any("BEGIN" in c or "trust" in c for c in commands)


def test_instructor_section_runs_as_written(tmp_path):
    commands = section_commands(instructor_section((ROOT / "README.md").read_text()))
    course = _make_course(tmp_path)
    stamp = tmp_path / "install-stamp"
    stamp.touch()  # newer than the copied pyproject.toml: make installs nothing
    env = {k: v for k, v in os.environ.items()
           if k not in ("TUG_COURSE_ROOT", "JUPYTER_CONFIG_PATH", "MAKEFLAGS", "MFLAGS")}
    env["TUG_COURSE_ROOT"] = str(course)
    ran, grade_runs = [], []
    for cmd in commands:
        if any(lab in cmd for lab in LAB_COMMANDS):
            continue  # opens a JupyterLab: tests/e2e/test_student_lab.py
        # nbgrader's commands are typed into the formgrader lab's terminal, which opens there
        cwd = course / "grading-out" / "nbgrader" if cmd.startswith("nbgrader ") else course
        proc = subprocess.run(_argv(cmd, stamp), cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=1800, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, (f"`{cmd}` failed ({proc.returncode}):\n"
                                      f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        assert "Installing the course" not in proc.stdout, "make tried to reinstall"
        ran.append(cmd)
        if re.search(r"autograde grade ", cmd):
            grade_runs.append(proc.stdout)
            if len(grade_runs) == 1:
                _check_grading_output(course / "grading-out", proc.stdout)
                # "Run the same command again ...: only those are graded again"
                again = subprocess.run(_argv(cmd, stamp), cwd=course, env=env, text=True,
                                       capture_output=True, timeout=1800)
                assert again.returncode == 0, again.stdout + again.stderr
                assert "0 submission(s) to grade, 2 unchanged" in again.stdout, again.stdout
    assert grade_runs and any(c.startswith("nbgrader export") for c in ran), ran
    nbg = course / "grading-out" / "nbgrader"
    for student in ("ada", "ben"):
        assert (nbg / "feedback" / student / NAME / f"{NAME}.html").is_file()
    with open(nbg / "grades.csv") as fh:
        exported = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert set(exported) == {"ada", "ben", "cal"}
    assert float(exported["ada"]["raw_score"]) > 0 == float(exported["ben"]["raw_score"])
    assert not (course / "notebooks" / NAME / ".ipynb_checkpoints").exists()


def _check_grading_output(out: Path, stdout: str) -> None:
    """What the section says `grade` prints and writes."""
    assert "Protections:" in stdout and "Done in" in stdout, stdout
    assert re.search(r"\] 1/2 +\w+ +" + NAME, stdout), stdout  # a progress line
    with open(out / "grades.csv") as fh:
        reader = csv.DictReader(fh)
        rows = {r["student_id"]: r for r in reader}
        header = reader.fieldnames
    assert header == ["student_id", "assignment", "score", "max_score", "status", "name",
                      "email"], header
    assert rows["ada"]["status"] == "graded" and rows["ada"]["score"] == rows["ada"]["max_score"]
    assert rows["ben"]["status"] == "graded" and float(rows["ben"]["score"]) == 0
    assert rows["cal"]["status"] == "missing" and rows["cal"]["name"] == "Cal M"
    assert (out / "scores.csv").is_file() and (out / "summary.json").is_file()
    for student in ("ada", "ben", "cal"):
        assert (out / "feedback" / student / NAME / f"{NAME}.html").is_file(), student
    for student in ("ada", "ben"):
        assert (out / "results" / student / f"{NAME}.json").is_file(), student
    for part in ("gradebook.db", "submitted", "autograded"):
        assert (out / "nbgrader" / part).exists(), part
