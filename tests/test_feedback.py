"""The feedback page (autograde/feedback.py): the student's notebook rendered by nbconvert,
math as MathML, the student's cells marked, hidden tests absent, nothing loaded from the web.

The pages are rendered from this course's real 06_architectures notebooks with a report
written here (the grading itself is tested in test_classgrade.py, which renders the same page
from a real grading run)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import nbformat
import pytest
from conftest import ROOT

from autograde.classgrade import Row
from autograde.course import Assignment
from autograde.feedback import render_feedback
from autograde.notebooks import (
    HIDDEN_BEGIN,
    HIDDEN_END,
    grade_id,
    is_answer,
    is_test,
    points,
    visible_source,
)
from autograde.report import Report, Status
from autograde.report import TestResult as Verdict

NAME = "06_architectures"
A = Assignment(NAME, ROOT)


class _Page(HTMLParser):
    """Text of the page (without <style>), the tags met, and each section's text by class."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.headings: list[tuple[str, str]] = []
        self._stack: list[str] = []
        self._heading: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._stack.append(tag)
        if tag in ("h1", "h2", "h3"):
            self._heading = [tag]

    def handle_endtag(self, tag):
        if self._stack and self._stack[-1] == tag:
            self._stack.pop()
        if self._heading and tag == self._heading[0]:
            self.headings.append((tag, "".join(self._heading[1:]).strip()))
            self._heading = None

    def handle_data(self, data):
        if "style" in self._stack:
            return
        self.text.append(data)
        if self._heading is not None:
            self._heading.append(data)

    @property
    def all_text(self) -> str:
        return "".join(self.text)


def _report(solution, passed: bool = False) -> Report:
    tests = [Verdict(grade_id(c), None, points(c) if passed else 0.0, points(c), passed,
                        "" if passed else "✗ values differ\n  hint: look again",
                        hidden=HIDDEN_BEGIN in c.source)
             for c in solution.cells if is_test(c)]
    return Report(NAME, "x.ipynb", Status.GRADED, 0.0, sum(t.max_score for t in tests), tests)


def _sections(html: str, kind: str) -> list[str]:
    """The text of each framed cell of one kind ("student" or "test")."""
    return [_Page(s.split("</section>")[0]).all_text
            for s in html.split(f'class="tug-cell tug-{kind}"')[1:]]


def _render(nb, tmp_path, passed=False) -> str:
    path = tmp_path / f"{NAME}.ipynb"
    nbformat.write(nb, path)
    rep = _report(nbformat.read(A.source, as_version=4), passed)
    row = Row("amy", NAME, rep.score, rep.max_score, Status.GRADED, rep, str(path),
              ["a note from the grader"])
    return render_feedback(row, A)


@pytest.fixture(scope="module")
def released():
    return nbformat.read(A.release, as_version=4)


@pytest.fixture(scope="module")
def page(released, tmp_path_factory):
    """The released notebook with one answer written, one cell added, outputs everywhere."""
    nb = nbformat.from_dict(released)
    answer = next(c for c in nb.cells if is_answer(c) and c.cell_type == "code")
    answer.source = "answer_residual_depth = 'b'  # amy's answer"
    nb.cells.insert(3, nbformat.v4.new_code_cell("print('a cell amy added')"))
    for c in nb.cells:
        if is_test(c):
            c.outputs = [nbformat.v4.new_output("stream", text="OUTPUT-OF-A-TEST-CELL")]
    nb.cells[3].outputs = [
        nbformat.v4.new_output("stream", text="a cell amy added\n"),
        nbformat.v4.new_output("display_data", data={
            "text/html": "<script src='https://cdn.example.org/x.js'></script>",
            "text/plain": "<a plain fallback>"}),
    ]
    html = _render(nb, tmp_path_factory.mktemp("fb"))
    return html, _Page(html)


def test_headings_and_math_are_rendered(page):
    html, parsed = page
    levels = dict((text, tag) for tag, text in parsed.headings)
    assert levels.get("06 Architectures that keep gradients alive") == "h1", parsed.headings[:5]
    assert any(tag == "h2" and text.startswith("1. Why does adding") for tag, text in
               parsed.headings)
    maths = [attrs for tag, attrs in parsed.tags if tag == "math"]
    assert len(maths) > 50, len(maths)
    assert any(m.get("display") == "block" for m in maths)
    text = parsed.all_text
    assert "$$" not in text and not re.search(r"\$[^$\s][^$]*\\[a-z]+[^$]*\$", text), \
        "TeX left as text"
    assert "<details" not in text and "<summary" not in text, "HTML shown as text"
    assert [t for t, _ in parsed.tags].count("details") >= 8
    assert "<pre class=md" not in html and "pre class=\"md\"" not in html


def test_student_cells_are_marked(page):
    html, parsed = page
    sections = [a.get("class", "") for t, a in parsed.tags if t == "section"]
    assert sections.count("tug-cell tug-student") >= 2, sections
    student = _sections(html, "student")
    assert any("Your answer" in s and "amy's answer" in s for s in student), \
        "the answer cell is not framed as the student's"
    assert any("A cell you added" in s and "a cell amy added" in s for s in student)
    # course text is not marked: the first heading sits outside any tug-cell section
    before_title = html.split("06 Architectures that keep gradients alive")[0]
    assert before_title.count("<section") == before_title.count("</section>")
    assert sections.count("tug-cell tug-test") == sum(1 for c in nbformat.read(
        A.source, as_version=4).cells if is_test(c))


def test_each_test_cell_has_its_verdict(page):
    html, _ = page
    tests = _sections(html, "test")
    assert tests and all("✗ failed" in s for s in tests)
    assert "✗ failed: 0 / 1 points" in html and "look again" in html


def _hidden_lines() -> list[str]:
    """Lines of the solution's hidden tests that appear nowhere in the released notebook."""
    solution = nbformat.read(A.source, as_version=4)
    released_text = nbformat.read(A.release, as_version=4)
    visible = "\n".join(c.source for c in released_text.cells)
    lines = []
    for c in solution.cells:
        if not is_test(c):
            continue
        kept = set(visible_source(c.source).splitlines())
        for line in c.source.splitlines():
            s = line.strip()
            if len(s) > 12 and line not in kept and s not in visible and s not in (
                    HIDDEN_BEGIN, HIDDEN_END):
                lines.append(s)
    assert len(lines) > 20
    return lines


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_hidden_tests_never_appear(page, tmp_path):
    _, parsed = page
    text = _squash(parsed.all_text)
    hidden = _hidden_lines()
    assert not [h for h in hidden if _squash(h) in text]
    assert "OUTPUT-OF-A-TEST-CELL" not in parsed.all_text
    # a submission that is the solution itself (hidden tests in its test cells, and pasted
    # into a cell of the student's own) shows none of them either
    sol = nbformat.read(A.source, as_version=4)
    hidden_cell = next(c for c in sol.cells if is_test(c) and HIDDEN_BEGIN in c.source)
    sol.cells.append(nbformat.v4.new_code_cell(hidden_cell.source))
    sol.cells[-1].outputs = [nbformat.v4.new_output("stream", text="PASTED-HIDDEN-OUTPUT")]
    solution_page = _Page(_render(sol, tmp_path, passed=True))
    text = _squash(solution_page.all_text)
    assert not [h for h in hidden if _squash(h) in text]
    assert "BEGIN HIDDEN" not in solution_page.all_text
    assert "PASTED-HIDDEN-OUTPUT" not in solution_page.all_text


def test_page_is_self_contained(page):
    html, parsed = page
    assert not [a for t, a in parsed.tags if t in ("script", "link", "iframe", "object")]
    for tag, attrs in parsed.tags:
        for key in ("src", "href", "data"):
            value = attrs.get(key) or ""
            if key == "href" and tag == "a":
                continue  # a link the reader may follow, nothing loads by itself
            assert not value.startswith(("http:", "https:", "//")), (tag, attrs)
    assert "@import" not in html and not re.search(r"url\(\s*['\"]?(https?:)?//", html)
    assert "cdn.example.org" not in html
    assert "a cell amy added" in parsed.all_text  # its text output is kept


def test_missing_notebook_still_gets_a_page():
    rep = Report.failed(NAME, "", Status.MISSING, "")
    row = Row("gus", NAME, 0.0, 10.0, Status.MISSING, rep, None, [])
    parsed = _Page(render_feedback(row, A))
    assert "no notebook was submitted" in parsed.all_text
    assert "Your notebook" not in parsed.all_text
