from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests' own helpers (mini_course)


@pytest.fixture(scope="session")
def mini_course(tmp_path_factory):
    """A throwaway course root with one released two-exercise assignment."""
    import mini_course as mc

    root = tmp_path_factory.mktemp("course")
    mc.build(root)
    (root / "autograde").mkdir()
    env = {"TUG_COURSE_ROOT": str(root)}
    run_autograde(["release"], env=env, check=True)
    return root


def run_autograde(args, env=None, check=False, timeout=900):
    import os

    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "autograde", *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"autograde {args} failed ({proc.returncode}):\n{proc.stdout}\n"
                             f"{proc.stderr}")
    return proc


@pytest.fixture
def env(mini_course):
    """The environment that makes the mini course the course root."""
    return {"TUG_COURSE_ROOT": str(mini_course)}


def by_exercise(report) -> dict[str, float]:
    """Points per exercise (a test without an exercise counts under its grade id)."""
    out: dict[str, float] = {}
    for t in report["tests"]:
        key = t["exercise"] or t["grade_id"]
        out[key] = out.get(key, 0.0) + t["score"]
    return out


def check_json(path, env=None, extra=()):
    proc = run_autograde(["check", str(path), "--json", *extra], env=env)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"check printed no JSON:\n{proc.stdout}\n{proc.stderr}") from None


def copy_with(src: Path, dst: Path, replacements: dict[str, str]) -> Path:
    """Copy a notebook, replacing the source of answer cells by grade_id."""
    nb = json.loads(Path(src).read_text())
    for cell in nb["cells"]:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in replacements:
            cell["source"] = replacements[gid]
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(nb))
    return dst


__all__ = ["ROOT", "run_autograde", "check_json", "copy_with", "by_exercise", "shutil"]
