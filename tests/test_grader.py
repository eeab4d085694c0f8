"""The grader on a tiny course: correct, stubbed, wrong, broken and hostile submissions.

Every hostile notebook here is one line of student code that would fool plain nbgrader,
which runs tests in the student's own kernel. Our verdicts are computed outside it.
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest
from conftest import by_exercise, check_json, copy_with, run_autograde

pytestmark = pytest.mark.slow

GOOD_SQUARE = '''def square(x):
    """Return x**2 elementwise as a float array."""
    return np.asarray(x, dtype=float) * np.asarray(x, dtype=float)'''
GOOD_SIGMOID = '''def sigmoid(x):
    x = np.asarray(x, dtype=float)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))'''


def scores(report):
    return {t["grade_id"]: t["score"] for t in report["tests"]}


@pytest.fixture
def variant(mini_course, tmp_path):
    """Write a copy of the solution notebook with some answer cells replaced."""
    src = mini_course / "solutions" / "01_mini" / "01_mini.ipynb"

    def make(name: str, **cells: str) -> Path:
        return copy_with(src, tmp_path / name / "01_mini.ipynb", cells)

    return make


def test_solution_full_marks_and_stub_zero(mini_course, env):
    rep = check_json(mini_course / "solutions/01_mini/01_mini.ipynb", env)
    assert rep["status"] == "graded"
    assert rep["score"] == rep["max_score"] == 7
    assert set(rep) >= {"assignment", "notebook", "status", "score", "max_score", "tests",
                        "flags"}
    assert rep["manual"] == [{"grade_id": "why_relu", "max_score": 2.0}]
    rel = check_json(mini_course / "notebooks/01_mini/01_mini.ipynb", env)
    assert rel["score"] == 0 and rel["max_score"] == 7
    assert "NotImplementedError" in rel["tests"][0]["message"]


def test_wrong_answer_loses_points_only_on_its_exercise(variant, env):
    rep = check_json(variant("wrong", square=GOOD_SQUARE.replace("*", "+")), env)
    ex = by_exercise(rep)
    assert ex["square"] == 0
    assert ex["sigmoid"] == 3 and ex["predict_depth"] == 1
    msg = [t for t in rep["tests"] if t["grade_id"] == "test_square"][0]["message"]
    assert "square(3)" in msg and "expected 9, got 6" in msg


def test_hidden_checks_keep_their_inputs_and_expected_values_private(variant, env):
    positive_only = GOOD_SQUARE.replace("np.asarray(x, dtype=float) * np.asarray(x, dtype=float)",
                                        "np.abs(x) * np.asarray(x, dtype=float)")
    rep = check_json(variant("hidden", square=positive_only), env)
    tests = {t["grade_id"]: t for t in rep["tests"]}
    assert tests["test_square"]["passed"] and not tests["test_square_hidden"]["passed"]
    msg = tests["test_square_hidden"]["message"]
    assert "hidden check 1: values differ" in msg and "private" in msg  # the kind of mistake
    for secret in ("linspace", "square(linspace)", "-3", "9.0", "expected 9", ", got"):
        assert secret not in msg, (secret, msg)
    proc = run_autograde(["check", str(variant("hidden2", square=positive_only))], env=env)
    assert "linspace" not in proc.stdout and "hidden check 1" in proc.stdout


def test_printing_and_warning_answers_keep_full_marks(variant, env):
    noisy = GOOD_SQUARE + '''
    import warnings
    print("debugging output", x)
    warnings.warn("a warning from the student")
    return np.asarray(x, dtype=float) ** 2'''
    rep = check_json(variant("noisy", square=noisy), env)
    assert rep["score"] == 7, rep


@pytest.mark.parametrize(
    "name,cheat",
    [
        ("patch_helpers", "import course_utils.testing as t\n"
         "t.check_close = t.check_equal = lambda *a, **k: None\nt._check = t.check_close\n"),
        ("eq_always_true", "class Anything:\n    def __eq__(self, other): return True\n"
         "    __hash__ = object.__hash__\n    def __array__(self, *a, **k): raise TypeError\n"
         "def square(x): return Anything()\n"),
        ("input_transformer", "get_ipython().input_transformers_post.append("
         "lambda lines: ['pass\\n'])\n"),
        ("ast_transformer", "import ast\nclass Nop(ast.NodeTransformer):\n"
         "    def visit_Module(self, node): return ast.parse('pass')\n"
         "get_ipython().ast_transformers.append(Nop())\n"),
        ("hijack_run_cell", "ip = get_ipython()\n"
         "async def nothing(*a, **k):\n    return ip.run_cell('pass')\n"
         "ip.run_cell_async = nothing\n"),
        ("set_mode_assert", "import course_utils.testing as t\nt.set_mode('assert')\n"
         "t.judge = lambda *a, **k: None\n"),
        ("patch_judging", "import course_utils.judging as j\n"
         "j.judge = lambda *a, **k: None\nj.Opaque.__eq__ = lambda self, other: True\n"),
        ("fake_records", "from IPython.display import publish_display_data\n"
         "from course_utils.testing import RECORD_MIME\n"
         "import builtins\n"
         "_p = get_ipython().events\n"
         "def fake(*a, **k):\n"
         "    for lab in ['square(3)', 'square(linspace)', 'square(int)']:\n"
         "        publish_display_data({RECORD_MIME: {'label': lab, 'got': True}})\n"
         "_p.register('pre_run_cell', fake)\n"),
    ],
)
def test_hostile_code_cannot_pass_tests(variant, env, name, cheat):
    stub = '''def square(x):\n    raise NotImplementedError()\n'''
    if "def square" in cheat:
        stub = ""
    rep = check_json(variant(name, square=cheat + stub), env)
    assert by_exercise(rep)["square"] == 0, rep
    assert rep["status"] in ("graded", "kernel_died", "timeout")


def test_sandbox_hides_solutions_and_blocks_network(variant, env, mini_course):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    port = server.getsockname()[1]
    threading.Thread(target=lambda: server.accept(), daemon=True).start()
    secret = mini_course / "solutions" / "01_mini" / "01_mini.ipynb"
    # Correct answers only if the file system or network leaks.
    spy_square = f'''def square(x):
    text = open({str(secret)!r}).read()
    assert "BEGIN SOLUTION" in text
    return np.asarray(x, dtype=float) ** 2'''
    spy_sigmoid = GOOD_SIGMOID.replace(
        "x = np.asarray(x, dtype=float)",
        f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "    x = np.asarray(x, dtype=float)",
    )
    rep = check_json(variant("spy", square=spy_square, sigmoid=spy_sigmoid), env)
    server.close()
    ex = by_exercise(rep)
    assert ex["square"] == 0 and ex["sigmoid"] == 0, rep
    assert ex["predict_depth"] == 1


def test_endless_loop_times_out_and_keeps_other_credit(variant, env):
    loop = "def sigmoid(x):\n    while True:\n        pass\n"
    rep = check_json(variant("loop", sigmoid=loop), env, extra=["--timeout", "5"])
    assert rep["status"] == "timeout"
    ex = by_exercise(rep)
    assert ex["square"] == 3 and ex["sigmoid"] == 0 and ex["predict_depth"] == 1, rep
    msg = [t for t in rep["tests"] if t["grade_id"] == "test_sigmoid"][0]["message"]
    assert "time limit" in msg


def test_kernel_crash_keeps_other_credit(variant, env):
    crash = "import os\ndef sigmoid(x):\n    os.kill(os.getpid(), 9)\n"
    rep = check_json(variant("crash", sigmoid=crash), env)
    assert rep["status"] == "kernel_died"
    ex = by_exercise(rep)
    assert ex["square"] == 3 and ex["sigmoid"] == 0 and ex["predict_depth"] == 1, rep
    assert any("kernel_restarted" in f for f in rep["flags"])


def test_memory_hog_is_stopped_and_keeps_other_credit(variant, env):
    hog = "def sigmoid(x):\n    blocks = [np.ones(10**8) for _ in range(200)]\n    return blocks\n"
    rep = check_json(variant("hog", sigmoid=hog), env, extra=["--memory-limit", "1500"])
    assert rep["status"] == "memory_exceeded", rep
    ex = by_exercise(rep)
    assert ex["square"] == 3 and ex["sigmoid"] == 0


@pytest.mark.parametrize(
    "code",
    [
        "import torch\ndef sigmoid(x):\n    return torch.sigmoid(torch.as_tensor(x)).numpy()\n",
        "from scipy.special import expit as sigmoid\n",
        "from course_utils.activations import sigmoid\n",
        "import torch\ndef sigmoid(x):\n    f = getattr(torch, 'sig' + 'moid')\n"
        "    return f(torch.as_tensor(x)).numpy()\n",
    ],
)
def test_delegating_to_a_reference_scores_zero(variant, env, code):
    rep = check_json(variant("delegate", sigmoid=code), env)
    ex = by_exercise(rep)
    assert ex["sigmoid"] == 0 and ex["square"] == 3, rep
    assert any(f.startswith("delegation: sigmoid") for f in rep["flags"])


def test_delegation_through_a_helper_in_another_cell(mini_course, env, tmp_path):
    src = mini_course / "solutions" / "01_mini" / "01_mini.ipynb"
    nb = json.loads(src.read_text())
    helper = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
              "id": "extra1", "source": "import torch\ndef _h(x):\n    return torch.sigmoid(x)"}
    nb["cells"].insert(2, helper)
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "sigmoid":
            cell["source"] = "def sigmoid(x):\n    return _h(torch.as_tensor(x)).numpy()"
    path = tmp_path / "helper" / "01_mini.ipynb"
    path.parent.mkdir()
    path.write_text(json.dumps(nb))
    rep = check_json(path, env)
    assert by_exercise(rep)["sigmoid"] == 0 and by_exercise(rep)["square"] == 3


def test_edited_and_deleted_test_cells_come_from_solutions(mini_course, env, tmp_path):
    src = mini_course / "notebooks" / "01_mini" / "01_mini.ipynb"
    nb = json.loads(src.read_text())
    kept = []
    for cell in nb["cells"]:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid == "test_square":
            cell["source"] = "pass  # edited away"
        if gid == "test_sigmoid_hidden":
            continue  # deleted
        if gid == "square":
            cell["source"] = GOOD_SQUARE
        if gid == "sigmoid":
            cell["source"] = GOOD_SIGMOID
        kept.append(cell)
    nb["cells"] = kept
    path = tmp_path / "edited" / "01_mini.ipynb"
    path.parent.mkdir()
    path.write_text(json.dumps(nb))
    rep = check_json(path, env)
    assert scores(rep)["test_square"] == 1 and scores(rep)["test_sigmoid_hidden"] == 2
    assert any("restored_test_cells" in f for f in rep["flags"])


def test_invalid_and_unknown_notebooks_get_clear_statuses(mini_course, env, tmp_path):
    broken = tmp_path / "01_mini.ipynb"
    broken.write_text('{"cells": [')
    rep = check_json(broken, env)
    assert rep["status"] == "invalid_notebook" and "not valid JSON" in rep["message"]
    other = tmp_path / "homework.ipynb"
    other.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4,
                                 "nbformat_minor": 5}))
    rep = check_json(other, env)
    assert rep["status"] == "unknown_assignment" and "01_mini" in rep["message"]


def test_folder_check_prints_a_progress_table(mini_course, env, variant):
    variant("a", square=GOOD_SQUARE)
    folder = variant("b", sigmoid=GOOD_SIGMOID).parent.parent
    proc = run_autograde(["check", str(folder)], env=env)
    assert proc.returncode == 0, proc.stderr
    assert "a/01_mini.ipynb" in proc.stdout and "b/01_mini.ipynb" in proc.stdout
    assert "7/7" in proc.stdout


def test_bad_options_say_what_is_wrong(env):
    proc = run_autograde(["check", "nowhere.ipynb"], env=env)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    proc = run_autograde(["check", "x.ipynb", "--timeout", "-3"], env=env)
    assert proc.returncode == 2 and "must be positive" in proc.stderr
    proc = run_autograde(["release", "99_nothing"], env=env)
    assert proc.returncode == 2 and "unknown assignment" in proc.stderr
