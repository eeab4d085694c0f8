"""The release pipeline on the tiny course: deterministic, clean, and drift is reported."""

from __future__ import annotations

import json

from conftest import run_autograde


def test_release_is_deterministic_and_clean(mini_course):
    env = {"TUG_COURSE_ROOT": str(mini_course)}
    target = mini_course / "notebooks" / "01_mini" / "01_mini.ipynb"
    first = target.read_text()
    run_autograde(["release"], env=env, check=True)
    assert target.read_text() == first
    nb = json.loads(first)
    text = json.dumps(nb)
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    assert "np.asarray(x, dtype=float) ** 2" not in text
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


def test_release_check_names_stale_notebooks(mini_course):
    env = {"TUG_COURSE_ROOT": str(mini_course)}
    target = mini_course / "notebooks" / "01_mini" / "01_mini.ipynb"
    good = target.read_text()
    try:
        target.write_text(good.replace("Mini course", "Mini course, edited by hand"))
        proc = run_autograde(["release", "--check"], env=env)
        assert proc.returncode == 1
        assert "STALE" in proc.stdout and "notebooks/01_mini/01_mini.ipynb" in proc.stdout
        assert "python -m autograde release" in proc.stdout
    finally:
        target.write_text(good)
    assert run_autograde(["release", "--check"], env=env).returncode == 0
