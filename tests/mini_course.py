"""A two-exercise course built on the fly, for fast tests of the grader itself."""

from __future__ import annotations

from pathlib import Path

from autograde.authoring import answer, code, free_text, hidden_tests, hint, mcq, md, tests, write

NAME = "01_mini"

SQUARE = '''def square(x):
    """Return x**2 elementwise as a float array."""
    ### BEGIN SOLUTION
    return np.asarray(x, dtype=float) ** 2
    ### END SOLUTION'''

SIGMOID = '''def sigmoid(x):
    """Logistic function."""
    ### BEGIN SOLUTION
    x = np.asarray(x, dtype=float)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
    ### END SOLUTION'''


def build(root: Path) -> Path:
    cells = [
        md("# Mini course\nA notebook for testing the grader."),
        code("import numpy as np\nfrom course_utils.testing import check_close, check_equal"),
        answer("square", SQUARE, forbid=[".square", ".power"]),
        hint("Multiply x by itself."),
        tests("test_square", "check_close('square(3)', square(3.0), 9.0)", points=1),
        hidden_tests("test_square_hidden",
                     "x = np.linspace(-3, 3, 7)\n"
                     "check_close('square(linspace)', square(x), x * x, float_dtype=True)\n"
                     "check_close('square(int)', square(np.arange(3)), np.array([0., 1., 4.]),"
                     " float_dtype=True)",
                     points=2),
        answer("sigmoid", SIGMOID, forbid=[".sigmoid", ".expit", "course_utils"]),
        tests("test_sigmoid", "check_close('sigmoid(0)', sigmoid(0.0), 0.5)", points=1),
        hidden_tests("test_sigmoid_hidden",
                     "import torch\n"
                     "x = np.array([-1e4, -5.0, 0.0, 5.0, 1e4])\n"
                     "check_close('sigmoid(extremes)', sigmoid(x), "
                     "torch.sigmoid(torch.tensor(x)).numpy(), rtol=1e-9)",
                     points=2),
        *mcq("depth", "What happens to gradients in a deep sigmoid net?",
             {"a": "they grow", "b": "they shrink"}, "b"),
        *free_text("why_relu", "Why is ReLU popular?", "It is cheap and does not saturate."),
    ]
    path = root / "solutions" / NAME / f"{NAME}.ipynb"
    write(path, cells)
    return path
