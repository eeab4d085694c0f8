"""The feedback page a student receives for one graded notebook (HTML, self-contained).

The page is the score table followed by the student's notebook rendered with nbconvert's
``HTMLExporter`` (as nbgrader renders its own feedback): markdown as formatted text, math as
MathML (converted here by ``latex2mathml``, drawn by the browser itself: no MathJax, no CDN,
the page works offline), the student's own cells framed and labelled, each test cell as it was
released with its verdict beside it. Nothing on the page loads from the network.

What never reaches the page: hidden tests (test cells are shown from the solution's
``visible_source``; any ``### BEGIN HIDDEN TESTS`` block found in a submitted cell is cut as
well), the outputs of test cells (a stale run in the student's kernel could disagree with the
verdict, and a resubmitted graded notebook could carry a hidden test's output), scripts, HTML
and widget outputs, and remote images or scripts in markdown the student wrote.
"""

from __future__ import annotations

import copy
import functools
import html
from dataclasses import dataclass
from pathlib import Path

import jinja2
from latex2mathml.converter import convert as tex_to_mathml
from nbconvert.exporters import HTMLExporter, TemplateExporter
from nbconvert.filters.highlight import Highlight2HTML
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbconvert.filters.strings import clean_html
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
from pygments.formatters import HtmlFormatter

from .course import Assignment
from .report import Report, Status, TestResult

STATUS_TEXT = {
    Status.GRADED: "graded",
    Status.TIMEOUT: "a cell ran past its time limit and was stopped; the rest was graded",
    Status.KERNEL_DIED: "the kernel crashed; it was restarted and the rest was graded",
    Status.MEMORY_EXCEEDED: "a cell used more memory than allowed; the rest was graded",
    Status.INVALID_NOTEBOOK: "the file is not a readable notebook",
    Status.UNKNOWN_ASSIGNMENT: "the notebook does not match this assignment",
    Status.MISSING: "no notebook was submitted",
    Status.GRADER_ERROR: "the grader failed on this notebook; the instructor will look at it",
}

# Outputs shown from a student's run: text and raster images. HTML, SVG, JavaScript and widget
# views are dropped (they can load from the network or run code when the page is opened).
KEPT_MIME = ("image/png", "image/jpeg", "text/plain")
MAX_OUTPUT_CHARS = 5_000
META = "tug_feedback"  # cell metadata key read by the template below

TEMPLATE = r"""{%- extends 'lab/base.html.j2' -%}
{%- block header -%}
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{{ resources.tug.title }}</title>
<style>{{ resources.tug.css }}</style>
</head>
{%- endblock header -%}
{%- block body_header -%}
<body>
<main>
{{ resources.tug.summary }}
<h2 class="tug-notebook-title">Your notebook</h2>
{%- endblock body_header -%}
{%- block any_cell -%}
{%- set fb = cell.metadata.get('tug_feedback') -%}
{%- if fb -%}
<section class="tug-cell tug-{{ fb.kind }}">
<div class="tug-label">{{ fb.label }}</div>
{{ super() }}
{{ fb.verdict }}
</section>
{%- else -%}
{{ super() }}
{%- endif -%}
{%- endblock any_cell -%}
{%- block body_footer -%}
</main>
</body>
{%- endblock body_footer -%}
{%- block footer -%}
</html>
{%- endblock footer -%}
"""

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;line-height:1.5;
 color:#1a1a1a;margin:0}
main{max-width:56em;margin:2em auto;padding:0 1em;overflow-wrap:break-word}
h1,h2,h3,h4{line-height:1.25}
.score{font-size:1.15em}
.note{color:#555}
table.tug-scores{border-collapse:collapse;margin:1em 0}
table.tug-scores td,table.tug-scores th{border:1px solid #ccc;padding:.3em .5em;
 vertical-align:top;text-align:left}
table.tug-scores pre{margin:0;white-space:pre-wrap}
.ok{color:#006d2c}.fail{color:#b30000}
.tug-notebook-title{border-top:2px solid #ddd;padding-top:1em;margin-top:2em}
.jp-Cell{margin:.6em 0;max-width:100%;overflow-x:auto}
.jp-InputPrompt,.jp-OutputPrompt,.jp-Collapser,a.anchor-link{display:none}
.jp-CodeCell .jp-InputArea{background:#f6f8fa;border:1px solid #dde2e7;border-radius:4px}
.jp-CodeCell pre,.jp-OutputArea pre{margin:0;padding:.5em .7em;white-space:pre-wrap;
 word-break:break-word;font-size:.88em;font-family:ui-monospace,Menlo,Consolas,monospace}
.jp-OutputArea{padding-left:.5em;border-left:3px solid #eee;margin-top:.3em}
.jp-OutputArea img{max-width:100%;height:auto}
.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]{background:#fff5f5}
.jp-RenderedMarkdown code{background:#f3f3f3;padding:0 .2em;border-radius:3px}
.jp-RenderedMarkdown pre code{background:none}
.jp-RenderedMarkdown table{border-collapse:collapse}
.jp-RenderedMarkdown td,.jp-RenderedMarkdown th{border:1px solid #ccc;padding:.2em .5em}
details{border:1px solid #ddd;border-radius:4px;padding:.3em .7em;margin:.5em 0}
math[display="block"]{margin:.6em 0;font-size:1.1em}
.tug-tex{color:#555}
.tug-cell{border-left:5px solid;padding:.2em .8em .4em;margin:1em 0;border-radius:3px}
.tug-student{border-color:#2b6cb0;background:#f2f7fd}
.tug-test{border-color:#999;background:#fafafa}
.tug-label{font-size:.8em;font-weight:600;text-transform:uppercase;letter-spacing:.04em;
 color:#2b6cb0}
.tug-test .tug-label{color:#555}
.tug-verdict{margin:.4em 0 .2em;font-weight:600}
.tug-verdict pre{font-weight:normal;white-space:pre-wrap;margin:.3em 0 0;font-size:.88em}
"""


class _Renderer(IPythonRenderer):
    """nbconvert's markdown renderer with math drawn as MathML, and, for markdown a student
    wrote, raw HTML shown as text and remote images as links (nothing loads on opening)."""

    def __init__(self, *args, trusted: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.trusted = trusted

    def _math(self, tex: str, display: str) -> str:
        try:  # latex2mathml keeps the backslash of \_ inside \text{...}
            return tex_to_mathml(tex, display=display).replace("\\_", "_")
        except Exception:  # noqa: BLE001 - any TeX latex2mathml cannot read stays readable
            return f'<code class="tug-tex">{self.escape_html(tex)}</code>'

    def block_math(self, body: str) -> str:
        return self._math(body, "block")

    def inline_math(self, body: str) -> str:
        return self._math(body, "inline")

    def latex_environment(self, name: str, body: str) -> str:
        return self._math(f"\\begin{{{name}}}{body}\\end{{{name}}}", "block")

    def block_html(self, html_text: str) -> str:
        if self.trusted:
            return super().block_html(html_text)
        return f"<p>{self.escape_html(html_text)}</p>"

    def inline_html(self, html_text: str) -> str:
        return super().inline_html(html_text) if self.trusted else self.escape_html(html_text)

    def image(self, text: str, url: str, title: str | None = None) -> str:
        if self.trusted or url.startswith(("attachment:", "data:")):
            return super().image(text, url, title)
        return f'<a href="{self.escape_html(url)}">[image: {self.escape_html(text)}]</a>'


class FeedbackExporter(HTMLExporter):
    """HTMLExporter on the template above; markdown through :class:`_Renderer`."""

    @jinja2.pass_context
    def markdown2html(self, context, source):
        cell = context.get("cell", {})
        trusted = not (cell.get("metadata", {}).get(META) or {}).get("student")
        if cell.get("attachments"):
            return self._markdown2html(cell, source, trusted)
        key = (source, trusted)  # the course's text is the same on every student's page
        if key not in _MARKDOWN_CACHE:
            _MARKDOWN_CACHE[key] = self._markdown2html(cell, source, trusted)
        return _MARKDOWN_CACHE[key]

    def from_notebook_node(self, nb, resources=None, **kw):
        """HTMLExporter's conversion without its BeautifulSoup pass over the finished page,
        which took two thirds of a page's time (a class of 8 on 01) only to add a generic alt
        text to images that have none and tab stops to cells; the page does without them."""
        langinfo = nb.metadata.get("language_info", {})
        lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
        self.register_filter("highlight_code", self.filters.get(
            "highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self)))
        resources = self._init_resources(resources)
        self.register_filter("filter_data_type", WidgetsDataTypeFilter(
            notebook_metadata=self._nb_metadata, parent=self, resources=resources))
        return TemplateExporter.from_notebook_node(self, nb, resources, **kw)

    def _markdown2html(self, cell, source, trusted: bool) -> str:
        renderer = _Renderer(
            escape=False, attachments=cell.get("attachments", {}), embed_images=False, path="",
            anchor_link_text=self.anchor_link_text, exclude_anchor_links=True,
            trusted=trusted,
        )
        return MarkdownWithMath(renderer=renderer).render(source)


# Rendering the same course text again for every student is most of a page's cost (a class of
# 8 on 01: 6 s a page before these caches); both functions are pure, so their results are kept.
_MARKDOWN_CACHE: dict[tuple[str, bool], str] = {}


@functools.lru_cache(maxsize=8192)
def _clean_html(element: str) -> str:
    return clean_html(str(element))


def _exporter() -> FeedbackExporter:
    return FeedbackExporter(
        filters={"clean_html": _clean_html},
        extra_loaders=[jinja2.DictLoader({"tug_feedback.html.j2": TEMPLATE})],
        template_name="lab", template_file="tug_feedback.html.j2",
        exclude_input_prompt=True, exclude_output_prompt=True,
    )


@dataclass
class _Marked:
    kind: str  # "student" or "test"
    label: str
    verdict: str = ""


def _verdict_html(t: TestResult) -> str:
    cls = "ok" if t.passed else "fail"
    mark = "✓ passed" if t.passed else "✗ failed"
    msg = "" if t.passed or not t.message else f"<pre>{html.escape(t.message)}</pre>"
    return (f'<div class="tug-verdict {cls}">{mark}: {t.score:g} / {t.max_score:g} points'
            f"{msg}</div>")


def _kept_outputs(outputs: list) -> list:
    """The outputs of a student's cell that are safe to show: text (cut to a readable length),
    PNG and JPEG images, errors; widgets become one line saying what they were."""
    kept = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            text = out.get("text", "")
            if len(text) > MAX_OUTPUT_CHARS:
                text = text[:MAX_OUTPUT_CHARS] + "\n[... output cut ...]"
            kept.append({**out, "text": text})
        elif kind == "error":
            kept.append(out)
        elif kind in ("display_data", "execute_result"):
            data = out.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                data = {"text/plain": "[an interactive widget: open the notebook in JupyterLab "
                                      "to use it]"}
            data = {k: v for k, v in data.items() if k in KEPT_MIME}
            if "text/plain" in data and len(data["text/plain"]) > MAX_OUTPUT_CHARS:
                data["text/plain"] = data["text/plain"][:MAX_OUTPUT_CHARS] + "\n[... cut ...]"
            if data:
                kept.append({**out, "data": data, "metadata": {}})
    return kept


def _feedback_notebook(nb, solution, released, verdicts: dict[str, TestResult]):
    """The student's notebook as the page shows it (a copy; ``nb`` is left alone)."""
    import nbformat

    from .notebooks import HIDDEN_BEGIN, grade_id, is_answer, is_test, visible_source

    sol = {grade_id(c): c for c in solution.cells if grade_id(c)}
    released_ids = {c.get("id"): c.source for c in released.cells if c.get("id")}
    released_sources = {c.source for c in released.cells}
    shown = copy.deepcopy(nb)
    shown.metadata = nbformat.from_dict({k: v for k, v in nb.metadata.items()
                                         if k in ("kernelspec", "language_info")})
    cells = []
    for cell in shown.cells:
        gid = grade_id(cell)
        cell.metadata = nbformat.from_dict({"tags": []})
        mark = None
        if gid in sol and is_test(sol[gid]):
            cell.cell_type = sol[gid].cell_type
            cell.source = visible_source(sol[gid].source)  # as released, never hidden tests
            hidden = visible_source(sol[gid].source) != sol[gid].source
            mark = _Marked("test", "Test cell (hidden tests not shown)" if hidden
                           else "Test cell",
                           _verdict_html(verdicts[gid]) if gid in verdicts else "")
            cell.outputs = []
        elif gid in sol and is_answer(sol[gid]):
            written_by_hand = sol[gid].cell_type == "markdown" or cell.cell_type == "markdown"
            mark = _Marked("student", "Your answer (graded by hand)" if written_by_hand
                           else "Your answer")
        elif cell.get("id") in released_ids:
            if cell.source != released_ids[cell["id"]]:
                mark = _Marked("student", "A course cell you changed")
        elif cell.source not in released_sources:
            mark = _Marked("student", "A cell you added")
        if cell.cell_type == "code":
            if HIDDEN_BEGIN in cell.source:  # a resubmitted solution or graded copy
                cell.source = visible_source(cell.source)
                cell.outputs = []
            cell.outputs = nbformat.from_dict(_kept_outputs(cell.get("outputs", [])))
        elif cell.cell_type == "raw":
            cell.metadata = nbformat.from_dict({})
        if cell.cell_type != "markdown":
            cell.pop("attachments", None)
        if mark is not None:
            cell.metadata[META] = {"kind": mark.kind, "label": html.escape(mark.label),
                                   "verdict": mark.verdict, "student": mark.kind == "student"}
        cells.append(cell)
    shown.cells = cells
    return shown


def _summary(row, a: Assignment, rep: Report) -> str:
    esc = html.escape
    parts = [f"<h1>{esc(a.name)}: feedback for {esc(row.student_id)}</h1>",
             f'<p class="score">Score: <b>{row.score:g} / {row.max_score:g}</b> (autograded)']
    manual = sum(m.get("max_score", 0) for m in rep.manual)
    if manual:
        parts.append(f" &middot; {manual:g} more points are graded by hand")
    parts.append(f"</p><p>Status: {esc(STATUS_TEXT.get(row.status, str(row.status)))}</p>")
    for note in row.notes:
        parts.append(f'<p class="note">{esc(note)}</p>')
    if rep.tests:
        parts.append('<table class="tug-scores"><tr><th>test</th><th>exercise</th>'
                     "<th>points</th><th>result</th></tr>")
        for t in rep.tests:
            parts.append(f'<tr class="{"ok" if t.passed else "fail"}"><td>{esc(t.grade_id)}'
                         f"</td><td>{esc(t.exercise or '')}</td><td>{t.score:g} / "
                         f"{t.max_score:g}</td><td><pre>{'passed' if t.passed else esc(t.message)}"
                         f"</pre></td></tr>")
        parts.append("</table>")
    for flag in rep.flags:
        parts.append(f'<p class="note">{esc(flag)}</p>')
    return "\n".join(parts)


def render_feedback(row, a: Assignment) -> str:
    """One self-contained HTML page per notebook: scores, messages, the student's notebook.

    Test cells appear as students saw them (hidden parts stripped), and failure messages of
    hidden checks carry no inputs or expected values (see :mod:`autograde.grader`).
    """
    import nbformat

    from .notebooks import InvalidNotebook, read_notebook

    rep = row.report or Report.failed(a.name, row.path or "", row.status, "")
    nb = None
    if row.path:
        try:
            nb = read_notebook(Path(row.path))
        except InvalidNotebook:
            nb = None
    solution = read_notebook(a.source)
    if nb is not None:
        released = read_notebook(a.release) if a.release.is_file() else solution
        shown = _feedback_notebook(nb, solution, released, {t.grade_id: t for t in rep.tests})
    else:
        shown = nbformat.v4.new_notebook()
    resources = {"tug": {
        "title": html.escape(f"{a.name} - {row.student_id}"),
        "css": CSS + HtmlFormatter(style="default").get_style_defs(".highlight"),
        "summary": _summary(row, a, rep),
    }}
    body, _ = _exporter().from_notebook_node(shown, resources=resources)
    if nb is None:
        body = body.replace('<h2 class="tug-notebook-title">Your notebook</h2>', "")
    return body if body.endswith("\n") else body + "\n"
