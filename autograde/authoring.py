"""Build nbgrader-marked cells from Python, for instructors adding or rewriting a notebook.

``solutions/<NN_name>/<NN_name>.ipynb`` stays the one source of truth: these helpers only make
it quick to write cells with the right nbgrader metadata, e.g.::

    from autograde.authoring import md, code, answer, tests, mcq, free_text, hint, write

    cells = [
        md("# 01 Activations"),
        answer("sigmoid", '''def sigmoid(x):
        ### BEGIN SOLUTION
        ...
        ### END SOLUTION'''),
        hint("Use two branches so that `np.exp` only ever sees non-positive numbers."),
        tests("test_sigmoid", "check_close(...)", points=1),
    ]
    write("solutions/01_activations/01_activations.ipynb", cells)

Conventions every notebook follows:

* an exercise's answer cell has ``grade_id`` equal to the function's name;
* its visible test cell is ``test_<name>`` (1 point, fast) and its hidden test cell is
  ``test_<name>_hidden`` (body wrapped in ``### BEGIN HIDDEN TESTS``/``### END HIDDEN TESTS``);
* a predict-then-run question is an answer cell ``predict_<topic>`` holding
  ``answer_<topic> = "?"`` and a test cell ``test_predict_<topic>`` whose visible part only
  checks the format and whose hidden part checks the choice;
* free-text answers are markdown cells graded by hand (``free_text``);
* answer cells may carry ``metadata["tug"]["forbid"]``: names the exercise must not call
  (the function it re-implements); the grader gives 0 for that exercise when they appear.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat

SCHEMA = 3


def _dedent(src: str) -> str:
    return textwrap.dedent(src).strip("\n")


def md(src: str):
    return nbformat.v4.new_markdown_cell(_dedent(src))


def code(src: str):
    return nbformat.v4.new_code_cell(_dedent(src))


def _nbg(cell, grade_id: str, *, grade: bool, solution: bool, locked: bool, points=None):
    meta = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": SCHEMA,
        "solution": solution,
    }
    if points is not None:
        meta["points"] = points
    cell.metadata["nbgrader"] = meta
    return cell


def answer(grade_id: str, src: str, forbid: list[str] | None = None):
    """An autograded answer cell (code between the SOLUTION markers is removed on release)."""
    cell = _nbg(code(src), grade_id, grade=False, solution=True, locked=False)
    if forbid:
        cell.metadata["tug"] = {"forbid": sorted(forbid)}
    return cell


def tests(grade_id: str, src: str, points: float = 1):
    """A locked, autograded test cell."""
    return _nbg(code(src), grade_id, grade=True, solution=False, locked=True, points=points)


def hidden_tests(grade_id: str, src: str, points: float = 2, preamble: str = ""):
    """A locked test cell whose whole body is hidden from students."""
    body = _dedent(src)
    head = _dedent(preamble) + "\n" if preamble else ""
    text = (
        "# Hidden tests: they run when your notebook is graded.\n"
        + head
        + "### BEGIN HIDDEN TESTS\n"
        + body
        + "\n### END HIDDEN TESTS"
    )
    cell = nbformat.v4.new_code_cell(text)
    return _nbg(cell, grade_id, grade=True, solution=False, locked=True, points=points)


def hint(text: str):
    """A collapsed hint: students open it when they want it."""
    body = _dedent(text)
    return md(f"<details><summary><b>Hint</b> (click to open)</summary>\n\n{body}\n\n</details>")


def mcq(topic: str, question: str, choices: dict[str, str], correct: str, points: float = 1):
    """A predict-then-run multiple-choice question: markdown, answer cell, test cell."""
    if correct not in choices:
        raise ValueError(f"correct choice {correct!r} is not one of {sorted(choices)}")
    lines = "\n".join(f"- **{k}**: {v}" for k, v in choices.items())
    letters = ", ".join(repr(k) for k in choices)
    q = md(f"**Predict before you run.** {_dedent(question)}\n\n{lines}\n\n"
           f"Write your choice (one of {letters}) in the cell below, then run the next cells.")
    a = answer(
        f"predict_{topic}",
        f'answer_{topic} = "?"  # one of {letters}\n'
        f"### BEGIN SOLUTION\nanswer_{topic} = {correct!r}\n### END SOLUTION",
    )
    t = tests(
        f"test_predict_{topic}",
        "from course_utils.testing import check_equal\n"
        f"check_equal('answer_{topic} is one of the choices', "
        f"answer_{topic} in {sorted(choices)!r}, "
        f"True, hint='Write one letter as a string, for example \"a\".')\n"
        "### BEGIN HIDDEN TESTS\n"
        f"check_equal('answer_{topic}', answer_{topic}, {correct!r})\n"
        "### END HIDDEN TESTS",
        points=points,
    )
    return [q, a, t]


def free_text(grade_id: str, question: str, model_answer: str, points: float = 2):
    """A question answered in prose and graded by hand in formgrader."""
    q = md(f"**Question (answered in words, graded by hand).** {_dedent(question)}")
    a = nbformat.v4.new_markdown_cell(
        f"### BEGIN SOLUTION\n{_dedent(model_answer)}\n### END SOLUTION"
    )
    _nbg(a, grade_id, grade=True, solution=True, locked=False, points=points)
    return [q, a]


def write(path: str | Path, cells, title: str | None = None) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                       "name": "python3"},
        "language_info": {"name": "python"},
    }
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{i:03d}"
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return path
