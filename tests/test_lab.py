"""``python -m autograde.lab``: what it would run, and its messages on bad input."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT

from autograde.gradebook import CONFIG
from autograde.lab import STUDENT_CONFIG, formgrader_lab, main, student_lab


def test_student_lab_runs_on_notebooks_with_the_student_switches_first():
    cmd, env, cwd = student_lab(["--no-browser"])
    assert cwd == ROOT / "notebooks"
    assert cmd[:3] == [sys.executable, "-m", "jupyterlab"] and "--no-browser" in cmd
    assert env["JUPYTER_CONFIG_PATH"].split(os.pathsep)[0] == str(STUDENT_CONFIG)
    assert ("--allow-root" in cmd) == (os.geteuid() == 0)


def test_formgrader_lab_runs_in_the_grading_folder(tmp_path):
    course = tmp_path / "out" / "nbgrader"
    course.mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(CONFIG)
    for given in (tmp_path / "out", course):  # the --out folder or its nbgrader/ folder
        cmd, env, cwd = formgrader_lab(given, [])
        assert cwd == course and f"--notebook-dir={course}" in cmd
        assert "JUPYTER_CONFIG_PATH" not in env  # the folder's own nbgrader_config.py decides


def test_formgrader_on_a_folder_that_was_never_graded_says_what_to_do(tmp_path, capsys):
    assert main(["--formgrader", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no nbgrader course" in err and "python -m autograde grade" in err


def test_print_shows_the_command_without_starting_jupyter():
    proc = subprocess.run([sys.executable, "-m", "autograde.lab", "--print"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "jupyterlab" in proc.stdout and str(STUDENT_CONFIG) in proc.stdout
