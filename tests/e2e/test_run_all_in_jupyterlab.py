"""End to end: a student's first *Run All* on a fresh released notebook, in a real JupyterLab.

For each notebook in ``notebooks/``: a fresh copy is served by JupyterLab (our own process, a
free localhost port, a throwaway config), opened in headless Chromium, and run with JupyterLab's
own *Run All* command, exactly as a student does before writing anything. The test waits until
the kernel has executed the last code cell, then checks

* that the notebook ran to the end: the last code cell has an execution count (JupyterLab
  stops *Run All* at the first failing cell that is not tagged ``raises-exception``; the test
  names that cell and its error when it happens);
* that every visualiser the notebook shows was drawn: a ``.tug-visualiser`` widget with a
  loaded figure image in the output of each cell that builds one, and no
  "Error displaying widget".

Screenshots of each notebook's visualisers and of any failure go to ``$TUG_E2E_ARTIFACTS``
(default ``tests/e2e/artifacts``). Long: each notebook runs in full (make test-e2e).
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

NOTEBOOKS = sorted((e2e.ROOT / "notebooks").glob("*/*.ipynb"))
VISUALISER = re.compile(r"^\s*from\s+course_utils\.visualisers\s+import\s+\w+", re.M)
RUN_ALL_TIMEOUT_S = 1800  # a guard against a hung kernel on a busy 2-core machine, no more

# The notebook's state, read from JupyterLab's own models: each code cell's execution count,
# tags and error output, and the kernel's status.
STATE_JS = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    const cells = panel.content.widgets.map((w, i) => {
        const m = w.model;
        if (m.type !== 'code') return null;
        const outs = m.outputs.toJSON();
        const err = outs.find(o => o.output_type === 'error');
        return {index: i, count: m.executionCount,
                tags: m.getMetadata('tags') || [],
                error: err ? `${err.ename}: ${err.evalue}` : null};
    }).filter(c => c !== null);
    return {status: kernel ? kernel.status : 'none', cells: cells};
}"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    served = tmp_path_factory.mktemp("fresh-notebooks")
    for nb in NOTEBOOKS:  # fresh copies: nothing a developer ran in notebooks/ leaks in
        shutil.copytree(nb.parent, served / nb.parent.name,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    e2e.clear_screenshots("run-all-")
    home = tmp_path_factory.mktemp("lab-home")
    with e2e.JupyterLabServer(served, home, e2e.ARTIFACTS / "run-all-jupyterlab.log") as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    with e2e.chromium() as b:
        yield b


def _visualiser_cells(nb_path: Path) -> list[int]:
    cells = json.loads(nb_path.read_text())["cells"]
    return [i for i, c in enumerate(cells)
            if c["cell_type"] == "code" and VISUALISER.search("".join(c["source"]))]


def _wait_for_the_end(page, name: str) -> dict:
    """Poll the notebook until the last code cell has run, or Run All stopped at an error."""
    deadline = time.monotonic() + RUN_ALL_TIMEOUT_S
    idle_since = None
    while time.monotonic() < deadline:
        state = page.evaluate(STATE_JS)
        if state["cells"] and state["cells"][-1]["count"] is not None \
                and state["status"] == "idle":
            return state
        stopped = [c for c in state["cells"] if c["error"]
                   and "raises-exception" not in c["tags"]]
        if stopped and state["status"] == "idle":
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 5:  # idle, and nothing queued ran meanwhile
                return state
        else:
            idle_since = None
        time.sleep(1)
    page.screenshot(path=str(e2e.ARTIFACTS / f"run-all-{name}-TIMEOUT.png"))
    raise AssertionError(f"{name}: Run All did not reach the last cell within "
                         f"{RUN_ALL_TIMEOUT_S} s")


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_run_all_on_a_fresh_notebook(lab, browser, nb_path):
    name = nb_path.stem
    relpath = f"{nb_path.parent.name}/{nb_path.name}"
    with e2e.lab_page(browser, lab) as page:
        page.goto(lab.url(relpath))
        e2e.run_all_cells(page)
        state = _wait_for_the_end(page, name)
        last = state["cells"][-1]
        if last["count"] is None:
            page.screenshot(path=str(e2e.ARTIFACTS / f"run-all-{name}-STOPPED.png"))
            stopped = [f"cell {c['index']}: {c['error']}" for c in state["cells"]
                       if c["error"] and "raises-exception" not in c["tags"]]
            raise AssertionError(f"{name}: Run All stopped before the last cell at "
                                 + "; ".join(stopped))
        cells = page.locator(e2e.NOTEBOOK_CELLS)
        missing = []
        for index in _visualiser_cells(nb_path):
            cell = cells.nth(index)
            cell.scroll_into_view_if_needed()
            output = cell.locator(".jp-OutputArea")
            text = output.inner_text()
            assert "Error displaying widget" not in text, f"{name} cell {index}: {text[:2000]}"
            figure = output.locator(".tug-visualiser img.tug-figure")
            try:
                figure.first.wait_for(state="visible", timeout=60_000)
                page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                                       arg=figure.first.element_handle(), timeout=60_000)
            except sync_api.TimeoutError:
                missing.append(f"cell {index}: {text[:500]!r}")
                continue
            box = figure.first.bounding_box()
            assert box and box["width"] > 50 and box["height"] > 50, (name, index, box)
            output.screenshot(path=str(e2e.ARTIFACTS / f"run-all-{name}-cell{index}.png"))
        assert not missing, f"{name}: visualisers not drawn: {missing}"
        assert not page.problems, page.problems
