"""End to end: the visualisers in a real JupyterLab, driven by Playwright in headless Chromium.

A session fixture starts JupyterLab (our own process, a free localhost port, a known token, a
temporary config, runtime, settings and workspace dir) serving a temporary folder with

* ``generated/<name>.ipynb``: one small notebook per visualiser, holding only the cell that the
  course notebooks use (``from course_utils.visualisers import <fn>`` then ``<fn>()``);
* ``notebooks/``: a copy of the released student notebooks, whatever has landed so far.

Each test opens a notebook, runs its visualiser cell (and only that cell), waits for the
widget's figure, moves a control, and checks that the figure image changed and that no error
appeared. Screenshots go to ``$TUG_E2E_ARTIFACTS`` (default ``tests/e2e/artifacts``), with the
JupyterLab log.

Run with ``make test-e2e``. Without Debian's Chromium at /usr/bin/chromium the module is
skipped with one line saying so.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import e2e_support as e2e
import pytest

sync_api = e2e.require_browser()

pytestmark = pytest.mark.e2e

VISUALISER_IMPORT = re.compile(r"^\s*from\s+course_utils\.visualisers\s+import\s+(\w+)", re.M)

# factory -> (widget CSS class, control to move, key presses on its slider handle)
VISUALISERS = {
    "gradient_flow_explorer": ("tug-gradient-flow", "depth", ["ArrowRight"]),
    "activation_explorer": ("tug-activation-explorer", "mu", ["ArrowRight"]),
    "initialization_lab": ("tug-initialization-lab", "gain_mult", ["ArrowRight"]),
    "batch_norm_explorer": ("tug-batch-norm-explorer", "momentum", ["ArrowRight"]),
    "clipping_geometry": ("tug-clipping-geometry", "clip", ["ArrowRight"]),
    "training_doctor": ("tug-training-doctor", "steps", ["End"]),  # a long run, then Stop
    "rnn_gradient_explorer": ("tug-rnn-gradient-explorer", "radius", ["ArrowRight"]),
    "float_format_explorer": ("tug-float-format-explorer", "scale_exp", ["ArrowRight"]),
}
CLASSES = {"GradientFlowExplorer": "gradient_flow_explorer",
           "ActivationExplorer": "activation_explorer",
           "InitializationLab": "initialization_lab", "BatchNormExplorer": "batch_norm_explorer",
           "ClippingGeometry": "clipping_geometry", "TrainingDoctor": "training_doctor",
           "RNNGradientExplorer": "rnn_gradient_explorer",
           "FloatFormatExplorer": "float_format_explorer"}

FIRST_FIGURE_TIMEOUT_MS = 120_000  # kernel start + importing torch on a busy 2-core machine
UPDATE_TIMEOUT_MS = 60_000
SHOT_PREFIXES = ("generated-", "course-")  # every screenshot of this module starts so


def _notebook(source: str) -> dict:
    return {
        "cells": [{"cell_type": "code", "execution_count": None, "id": "visualiser",
                   "metadata": {}, "outputs": [], "source": source}],
        "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)",
                                    "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    served = tmp_path_factory.mktemp("lab-root")
    generated = served / "generated"
    generated.mkdir()
    for name in VISUALISERS:
        source = f"from course_utils.visualisers import {name}\n\n{name}()"
        (generated / f"{name}.ipynb").write_text(json.dumps(_notebook(source), indent=1))
    if (e2e.ROOT / "notebooks").is_dir():
        shutil.copytree(e2e.ROOT / "notebooks", served / "notebooks",
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    e2e.clear_screenshots(*SHOT_PREFIXES)
    home = tmp_path_factory.mktemp("lab-home")
    with e2e.JupyterLabServer(served, home, e2e.ARTIFACTS / "jupyterlab.log",
                              env={"MPLBACKEND": "Agg"}) as server:
        yield server


@pytest.fixture(scope="session")
def browser():
    with e2e.chromium() as b:
        yield b


@pytest.fixture
def page(browser, lab):
    with e2e.lab_page(browser, lab) as pg:
        yield pg


def _visualiser_cell_index(nb_path: Path) -> tuple[int, str] | None:
    nb = json.loads(nb_path.read_text())
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        src = "".join(cell.get("source", ""))
        m = VISUALISER_IMPORT.search(src)
        name = CLASSES.get(m.group(1), m.group(1)) if m else None
        if name in VISUALISERS:
            return i, name
    return None


def _poll(check, timeout_ms: int, what: str):
    """Call ``check()`` until it returns a true value; locators re-resolve on every call, so
    an output that JupyterLab re-renders meanwhile does not break the wait."""
    deadline = time.monotonic() + timeout_ms / 1000
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except sync_api.Error as exc:  # detached while re-rendering: try again
            last_error = exc
        time.sleep(0.2)
    raise sync_api.TimeoutError(f"timed out waiting for {what} ({last_error})")


def _scroll_to(locator):
    _poll(lambda: locator.scroll_into_view_if_needed(timeout=10_000) is None, UPDATE_TIMEOUT_MS,
          "an element to scroll to")


def _screenshot(locator, path: Path):
    _poll(lambda: locator.screenshot(path=str(path)) is not None, UPDATE_TIMEOUT_MS,
          f"a screenshot {path.name}")


def _figure_src(image):
    """The image's src once it is loaded and drawn, else None."""
    if image.count() != 1:
        return None
    if not image.evaluate("img => img.complete && img.naturalWidth > 0"):
        return None
    return image.get_attribute("src")


def _drive(page, lab: e2e.JupyterLabServer, relpath: str, cell_index: int, factory: str,
           shot_name: str):
    """Open the notebook, run cell ``cell_index``, move a control, check the figure changed."""
    css, key, keys = VISUALISERS[factory]
    page.goto(lab.url(relpath))
    cells = page.locator(e2e.NOTEBOOK_CELLS)
    cells.first.wait_for(timeout=60_000)
    cell = cells.nth(cell_index)
    _scroll_to(cell)
    _run_cell(page, cell, cell_index, relpath, shot_name)

    widget = cell.locator(f".jp-OutputArea .tug-visualiser.{css}")
    image = widget.locator("img.tug-figure")
    try:
        before = _poll(lambda: _figure_src(image), FIRST_FIGURE_TIMEOUT_MS, "the first figure")
    except sync_api.TimeoutError:
        page.screenshot(path=str(e2e.ARTIFACTS / f"{shot_name}-FAILED.png"), full_page=True)
        raise AssertionError(f"{relpath}: no {css} figure appeared; output was:\n"
                             f"{cell.locator('.jp-OutputArea').inner_text()[:2000]}") from None
    _check_no_error(page, cell, relpath)
    _screenshot(widget, e2e.ARTIFACTS / f"{shot_name}-before.png")
    before = _figure_src(image) or before

    handle = widget.locator(f".tug-control-{key.replace('_', '-')} .noUi-handle")
    handle.focus()
    for k in keys:
        handle.press(k)
    try:
        _poll(lambda: (src := _figure_src(image)) is not None and src != before,
              UPDATE_TIMEOUT_MS, "a new figure")
    except sync_api.TimeoutError:
        page.screenshot(path=str(e2e.ARTIFACTS / f"{shot_name}-FAILED.png"), full_page=True)
        raise AssertionError(f"{relpath}: moving '{key}' did not change the figure") from None
    if factory == "training_doctor":
        _stop_the_run(widget)
    _check_no_error(page, cell, relpath)
    _screenshot(widget, e2e.ARTIFACTS / f"{shot_name}-after.png")
    assert not page.problems, page.problems


def _run_cell(page, cell, cell_index: int, relpath: str, shot_name: str):
    """Run that one cell, as the toolbar's Run button would: through JupyterLab's own command
    (the app is exposed in the page), once the notebook's kernel is ready. Clicking a prompt
    in a long notebook that is still laying itself out can select the wrong cell."""
    e2e.wait_for_notebook(page, FIRST_FIGURE_TIMEOUT_MS)
    page.evaluate(
        """async (index) => {
            const app = window.jupyterapp;
            const panel = app.shell.currentWidget;
            await panel.context.ready;
            await panel.sessionContext.ready;
            panel.content.activeCellIndex = index;
            panel.content.deselectAll();
            app.commands.execute('notebook:run-cell');  // not awaited: the run may be long
        }""", cell_index)
    prompt = cell.locator(".jp-InputPrompt")
    try:
        _poll(lambda: re.search(r"\[(\*|\d+)\]", prompt.text_content() or ""),
              FIRST_FIGURE_TIMEOUT_MS, "the cell to start running")
    except sync_api.TimeoutError:
        page.screenshot(path=str(e2e.ARTIFACTS / f"{shot_name}-FAILED.png"))
        raise AssertionError(f"{relpath}: the visualiser cell never started running") from None
    _scroll_to(cell)


def _stop_the_run(widget):
    """The change started a long live run (2000 steps): Stop must end it early."""
    status = widget.locator(".tug-status")
    status.filter(has_text=re.compile(r"running: step \d+/2000")).wait_for(
        timeout=UPDATE_TIMEOUT_MS)
    widget.locator("button.tug-stop").click()
    status.filter(has_text=re.compile(r"stopped: step \d+/2000")).wait_for(
        timeout=UPDATE_TIMEOUT_MS)


def _check_no_error(page, cell, relpath):
    outputs = cell.locator(".jp-OutputArea")
    errors = outputs.locator('[data-mime-type="application/vnd.jupyter.error"], '
                             '[data-mime-type="application/vnd.jupyter.stderr"], .tug-error')
    text = outputs.inner_text()
    assert errors.count() == 0, f"{relpath}: error output:\n{text[:3000]}"
    assert "Error displaying widget" not in text, f"{relpath}: {text[:3000]}"
    assert "Traceback" not in text, f"{relpath}: {text[:3000]}"


@pytest.mark.parametrize("factory", list(VISUALISERS))
def test_visualiser_in_jupyterlab(page, lab, factory):
    _drive(page, lab, f"generated/{factory}.ipynb", 0, factory, f"generated-{factory}")


def _course_notebooks() -> list[Path]:
    return sorted((e2e.ROOT / "notebooks").glob("*/*.ipynb"))


@pytest.mark.parametrize("nb_path", _course_notebooks(),
                         ids=[p.stem for p in _course_notebooks()])
def test_course_notebook_visualiser(page, lab, nb_path):
    relpath = nb_path.relative_to(e2e.ROOT).as_posix()
    served = lab.root / relpath  # the copy being served: the source may change meanwhile
    found = _visualiser_cell_index(served) if served.exists() else None
    if found is None:
        pytest.skip(f"{relpath} has no visualiser cell yet")
    index, factory = found
    _drive(page, lab, relpath, index, factory, f"course-{nb_path.stem}")
