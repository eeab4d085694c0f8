"""End to end: the lab ``make lab`` opens for students, against the formgrader lab for instructors.

Both are started exactly as the Makefile starts them (``python -m autograde.lab``), each with
a throwaway user config, runtime and settings folder, on a free localhost port, and looked at
in headless Chromium: the students' lab has no Nbgrader menu and no formgrader behind it; the
instructors' lab, on a grading folder, has both (which shows that the first check can fail).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from e2e_support import BROWSER_ARGS, CHROMIUM, free_port, require_browser

sync_api = require_browser()

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


class CourseLab:
    """``python -m autograde.lab [--formgrader OUT]`` as our own child process."""

    def __init__(self, home: Path, lab_args: list[str], extra: tuple[str, ...] = ()):
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        config, runtime = home / "config", home / "runtime"
        settings, workspaces = home / "settings", home / "workspaces"
        for d in (config, runtime, settings, workspaces):
            d.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items()
               if k not in ("JUPYTER_CONFIG_PATH", "JUPYTER_TOKEN")}
        env.update({"JUPYTER_CONFIG_DIR": str(config), "JUPYTER_RUNTIME_DIR": str(runtime),
                    "JUPYTER_PLATFORM_DIRS": "1"})
        jupyter_args = [
            "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
            f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={workspaces}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.expose_app_in_browser=True", *extra,
        ]
        self.log_path = home / "lab.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "autograde.lab", *lab_args, "--", *jupyter_args],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT)

    def status(self, path: str) -> int:
        req = urllib.request.Request(f"{self.base}{path}",
                                     headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as e:
            return e.code

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the lab exited with {self.proc.returncode}:\n"
                                   f"{self.log_path.read_text()[-3000:]}")
            try:
                if self.status("/api/status") == 200:
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"lab not ready after {timeout:.0f} s:\n"
                           f"{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


@contextlib.contextmanager
def _page(lab: CourseLab, path: str):
    """A headless Chromium page on ``path`` of the lab (e.g. ``lab`` or ``lab/tree/x.ipynb``)."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{lab.base}/{path}?token={lab.token}&reset")
            yield page
        finally:
            browser.close()


def _menu_titles(lab: CourseLab) -> list[str]:
    with _page(lab, "lab") as page:
        bar = page.locator("#jp-MainMenu .lm-MenuBar-itemLabel")
        bar.filter(has_text="File").first.wait_for(timeout=120_000)
        page.wait_for_timeout(1500)  # extensions add their menus after the first paint
        return [t.strip() for t in bar.all_inner_texts()]


@pytest.fixture
def run_lab(tmp_path):
    labs: list[CourseLab] = []

    def start(lab_args: list[str], extra: tuple[str, ...] = ()) -> CourseLab:
        lab = CourseLab(tmp_path / f"home{len(labs)}", lab_args, extra)
        labs.append(lab)
        lab.wait_ready()
        return lab

    yield start
    for lab in labs:
        lab.stop()


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
    with _page(lab, "lab/tree/tests.ipynb") as page:
        page.wait_for_function(
            "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
            " return !!(w && w.sessionContext); }", timeout=120_000)
        page.evaluate("""async () => {
            const app = window.jupyterapp, panel = app.shell.currentWidget;
            await panel.context.ready; await panel.sessionContext.ready;
            app.commands.execute('notebook:run-all-cells');
        }""")
        outputs = page.locator(".jp-Notebook .jp-Cell .jp-OutputArea")
        outputs.nth(1).filter(has_text="sigmoid(0.5)").wait_for(timeout=120_000)
        passed, failed = outputs.nth(0).inner_text(), outputs.nth(1).inner_text()
    assert "✓ 2 checks passed" in passed
    assert "✗ sigmoid(0.5)" in failed and "input: x = 0.5" in failed and "look again" in failed
    assert "testing.py" not in failed and "Traceback" not in failed
