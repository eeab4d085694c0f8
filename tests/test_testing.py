"""What a student sees when a visible test cell runs in a real kernel (assert mode)."""

from __future__ import annotations

import re

import nbformat
from nbclient import NotebookClient

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _run(*sources: str):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    NotebookClient(nb, timeout=120, allow_errors=True, kernel_name="python3").execute()
    return nb.cells


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_passing_cell_says_so_in_one_line_and_a_failing_one_shows_only_the_message():
    setup = "from course_utils.testing import check_close, check_equal"
    passing = ('check_close("sum of [1, 2]", 1 + 2, 3.0)\n'
               'check_equal("a name", "relu", "relu")')
    failing = ('check_close("first", 1.0, 1.0)\n'
               'check_close("sigmoid(0.5)", 0.6, 0.6224593312, inputs="x = 0.5", '
               'hint="use the stable form")')
    no_checks = "x = 1"
    cells = _run(setup, passing, failing, no_checks, passing)
    assert _text(cells[1]).strip() == "✓ 2 checks passed"
    errors = [o for o in cells[2].outputs if o.output_type == "error"]
    assert len(errors) == 1 and errors[0].ename == "CheckFailed"  # nbgrader sees a failure
    shown = ANSI.sub("", "\n".join(errors[0].traceback))
    assert shown.startswith("✗ sigmoid(0.5):") and "input: x = 0.5" in shown
    assert "hint: use the stable form" in shown
    assert "testing.py" not in shown and "Traceback" not in shown  # no helper frames
    assert _text(cells[2]) == ""  # a failed cell does not also claim its passes
    assert cells[3].outputs == []
    assert _text(cells[4]).strip() == "✓ 2 checks passed"  # counted per cell


def test_hidden_failures_are_named_by_kind_without_values():
    import numpy as np

    from course_utils.judging import judge, problem_category

    cases = [  # (kind, got, expected, opts, category)
        ("close", np.arange(3), np.arange(3.0), {"dtype_kind": "f"}, "wrong dtype"),
        ("close", np.zeros(4), np.zeros(3), {}, "wrong shape"),
        ("close", np.array([np.inf, 1.0]), np.array([7.25, 1.0]), {}, "NaN or infinity"),
        ("close", np.array([0.5, 1.0]), np.array([7.25, 1.0]), {}, "values differ"),
        ("close", "oops", 7.25, {}, "wrong type"),
        ("equal", (1, 2), (1, 3), {}, "values differ"),
        ("between", 9.75, (0.25, 0.5), {}, "outside the range"),
        ("between", float("nan"), (0.25, 0.5), {}, "NaN or infinity"),
    ]
    for kind, got, expected, opts, category in cases:
        assert judge(kind, got, expected, opts) is not None  # each case is a failure
        said = problem_category(kind, got, expected, opts)
        assert said.startswith(category), (kind, got, said)
        assert not any(v in said for v in ("7.25", "9.75", "0.25", "0.5")), said
