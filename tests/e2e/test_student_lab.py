"""End to end: the lab ``make lab`` opens for students, against the formgrader lab for instructors.

Both are started exactly as the Makefile starts them (``python -m autograde.lab``), each with
a throwaway user config, runtime and settings folder, on a free localhost port, and looked at
in headless Chromium: the students' lab has no Nbgrader menu and no formgrader behind it; the
instructors' lab, on a grading folder, has both (which shows that the first check can fail).
"""

from __future__ import annotations

import contextlib
import itertools
import sys

import pytest
from e2e_support import ROOT, JupyterLabServer, chromium, lab_page, require_browser, run_all_cells

require_browser()

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def _page(lab: JupyterLabServer, relpath: str = ""):
    """A headless Chromium page on the lab (``relpath`` '') or on a notebook in it."""
    with chromium() as browser, lab_page(browser, lab) as page:
        page.goto(lab.url(relpath))
        yield page


def _menu_titles(lab: JupyterLabServer) -> list[str]:
    with _page(lab) as page:
        bar = page.locator("#jp-MainMenu .lm-MenuBar-itemLabel")
        bar.filter(has_text="File").first.wait_for(timeout=120_000)
        page.wait_for_timeout(1500)  # extensions add their menus after the first paint
        return [t.strip() for t in bar.all_inner_texts()]


@pytest.fixture
def run_lab(tmp_path):
    """Start ``python -m autograde.lab [lab_args] -- [server options] [extra]`` as the Makefile
    does, with nothing of the test's own added to its lab configuration."""
    homes = (tmp_path / f"home{i}" for i in itertools.count())
    with contextlib.ExitStack() as labs:

        def start(lab_args: list[str], extra: tuple[str, ...] = ()) -> JupyterLabServer:
            home = next(homes)
            command = [sys.executable, "-m", "autograde.lab", *lab_args, "--"]
            return labs.enter_context(JupyterLabServer(
                None, home, home / "lab.log", command=command, plain=False, extra_args=extra,
                cwd=ROOT))

        yield start


def test_student_lab_has_no_instructor_tools(run_lab):
    lab = run_lab([])
    assert lab.status("/formgrader") == 404
    assert lab.status("/courses") == 404
    titles = _menu_titles(lab)
    assert "File" in titles and "Kernel" in titles, titles
    assert "Nbgrader" not in titles, titles


def test_formgrader_lab_has_the_nbgrader_tools(run_lab, tmp_path):
    from autograde.gradebook import CONFIG

    course = tmp_path / "grading-out" / "nbgrader"
    course.mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(CONFIG)
    lab = run_lab(["--formgrader", str(tmp_path / "grading-out")])
    assert lab.status("/formgrader") == 200
    assert "Nbgrader" in _menu_titles(lab)


def test_visible_test_cells_show_a_clean_result(run_lab, tmp_path):
    """A passing test cell ends with one line; a failing one shows the course's message and
    none of the test helpers' frames, as a student sees it in the lab."""
    import nbformat

    served = tmp_path / "served"
    served.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (
        "from course_utils.testing import check_close\n"
        "check_close('sum of [1, 2]', 1 + 2, 3.0)\ncheck_close('one', 1.0, 1.0)",
        "check_close('sigmoid(0.5)', 0.6, 0.6224593312, inputs='x = 0.5', hint='look again')",
    )]
    nbformat.write(nb, served / "tests.ipynb")
    # the students' lab, serving this folder instead of notebooks/
    lab = run_lab([], extra=(f"--ServerApp.root_dir={served}",))
    with _page(lab, "tests.ipynb") as page:
        run_all_cells(page)
        outputs = page.locator(".jp-Notebook .jp-Cell .jp-OutputArea")
        outputs.nth(1).filter(has_text="sigmoid(0.5)").wait_for(timeout=120_000)
        passed, failed = outputs.nth(0).inner_text(), outputs.nth(1).inner_text()
    assert "✓ 2 checks passed" in passed
    assert "✗ sigmoid(0.5)" in failed and "input: x = 0.5" in failed and "look again" in failed
    assert "testing.py" not in failed and "Traceback" not in failed
