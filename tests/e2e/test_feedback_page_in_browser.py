"""End to end: a feedback page, opened from disk in headless Chromium as a student opens it
later (a file:// URL, nothing served), shows rendered headings and math.

The page is rendered by autograde.feedback from this course's released 06_architectures
notebook with one answer written. Chromium draws the MathML itself: a ``math`` element with
a non-zero size is math rendered, not TeX left as text. The page must load nothing from the
network: every request the page makes is recorded, and any that is not the file itself fails
the test. A screenshot goes to ``$TUG_E2E_ARTIFACTS`` (default ``tests/e2e/artifacts``).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from e2e_support import ARTIFACTS, ROOT, chromium, require_browser

from autograde.classgrade import Row
from autograde.course import Assignment
from autograde.feedback import render_feedback
from autograde.notebooks import grade_id, is_answer, is_test, points
from autograde.report import Report, Status
from autograde.report import TestResult as Verdict

require_browser()

pytestmark = pytest.mark.e2e

NAME = "06_architectures"


def _feedback_page(tmp_path: Path) -> Path:
    a = Assignment(NAME, ROOT)
    nb = nbformat.read(a.release, as_version=4)
    answer = next(c for c in nb.cells if is_answer(c) and c.cell_type == "code")
    answer.source = "answer_residual_depth = 'c'"
    submitted = tmp_path / f"{NAME}.ipynb"
    nbformat.write(nb, submitted)
    tests = [Verdict(grade_id(c), None, 0.0, points(c), False, "✗ values differ")
             for c in nbformat.read(a.source, as_version=4).cells if is_test(c)]
    rep = Report(NAME, str(submitted), Status.GRADED, 0.0, sum(t.max_score for t in tests),
                 tests)
    row = Row("amy", NAME, 0.0, rep.max_score, Status.GRADED, rep, str(submitted), [])
    page = tmp_path / "feedback" / "amy" / NAME / f"{NAME}.html"
    page.parent.mkdir(parents=True)
    page.write_text(render_feedback(row, a))
    return page


def test_feedback_page_renders_headings_and_math_offline(tmp_path):
    path = _feedback_page(tmp_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        requests: list[str] = []
        page.on("request", lambda req: requests.append(req.url))
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        h1 = page.locator("h1", has_text="06 Architectures that keep gradients alive")
        assert h1.count() == 1
        h1_box = h1.bounding_box()
        assert h1_box and h1_box["height"] > 20, h1_box
        h1_size = float(h1.evaluate("e => parseFloat(getComputedStyle(e).fontSize)"))
        body_size = float(page.evaluate(
            "() => parseFloat(getComputedStyle(document.querySelector('p')).fontSize)"))
        assert h1_size > 1.5 * body_size, (h1_size, body_size)
        h2 = page.locator("h2", has_text="Why does adding the input back")
        assert h2.count() == 1 and h2.is_visible()

        maths = page.locator("math")
        assert maths.count() > 50, maths.count()
        block = page.locator('math[display="block"]').first
        block.scroll_into_view_if_needed()
        box = block.bounding_box()
        assert box and box["width"] > 20 and box["height"] > 10, box
        # MathML is laid out as math (a fraction stacks), not as a line of raw text
        frac = page.locator("mfrac").first
        frac.scroll_into_view_if_needed()
        frac_box = frac.bounding_box()
        assert frac_box and frac_box["height"] > 1.3 * body_size, frac_box
        text = page.locator("main").inner_text()
        assert "$$" not in text and "<details" not in text and "\\frac" not in text

        student = page.locator("section.tug-student").first
        student.scroll_into_view_if_needed()
        colour = student.evaluate("e => getComputedStyle(e).borderLeftColor")
        assert colour not in ("rgba(0, 0, 0, 0)", "rgb(0, 0, 0)"), colour
        assert "your answer" in student.inner_text().lower()

        page.screenshot(path=str(ARTIFACTS / "feedback-page.png"))
        frac.screenshot(path=str(ARTIFACTS / "feedback-page-math.png"))
        assert requests == [path.as_uri()], requests
