"""Attacks on the grader by a student who wants marks without work, and fair notebooks that
must keep full marks (issue 10). Every attack targets ``sigmoid`` of the mini course, left
as a stub or wrong; ``square`` (3 points) and ``predict_depth`` (1 point) are answered
correctly, so an attack that works anywhere would show as extra points, and an isolation
that is too coarse would show as lost points on the other exercises.
"""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest
from conftest import by_exercise, check_json, run_autograde

from autograde.grader import judge_cell, plan
from autograde.runner import CellResult
from autograde.slicing import Slicer, student_units, trusted_units

STUB = "def sigmoid(x):\n    return np.zeros_like(np.asarray(x, dtype=float))"
GOOD = ("def sigmoid(x):\n    x = np.asarray(x, dtype=float)\n    e = np.exp(-np.abs(x))\n"
        "    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))")
TORCH_SIGMOID = ("import torch\n"
                 "sigmoid = lambda x: torch.sigmoid(torch.as_tensor(x, dtype=torch.float64))"
                 ".numpy()")


def _nbg(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _cell(source: str) -> dict:
    return {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
            "source": source}


def build(base: Path, dest: Path, answers: dict[str, str] | None = None,
          after: dict[str, str] | None = None, edit=None) -> Path:
    """The solution with answer cells replaced, new cells inserted after the cell with the
    given grade id, and ``edit(cells)`` applied to the list of cells."""
    nb = json.loads(base.read_text())
    cells = []
    for cell in nb["cells"]:
        gid = _nbg(cell).get("grade_id")
        if answers and gid in answers:
            cell["source"] = answers[gid]
        cells.append(cell)
        if after and gid in after:
            cells.append(_cell(after[gid]))
    for n, cell in enumerate(cells):
        cell.setdefault("id", f"c{n}")
    if edit:
        edit(cells)
    nb["cells"] = cells
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(nb))
    return dest


@pytest.fixture
def make(mini_course, tmp_path):
    base = mini_course / "solutions" / "01_mini" / "01_mini.ipynb"

    def _make(name, **kw):
        return build(base, tmp_path / name / "01_mini.ipynb", **kw)

    return _make


# ============================================================================ no kernel
def _units(*cells):
    """Units of a notebook given as ("trusted"|"test"|"student", source) pairs."""
    units = []
    for i, (kind, src) in enumerate(cells):
        if kind == "student":
            units += student_units(src, i, f"your cell {i + 1}", len(units))
        else:
            units += trusted_units(src, i, "test" if kind == "test" else "setup", None,
                                   f"cell {i + 1}", len(units))
    return units


def test_slices_follow_statements_not_cells():
    units = _units(
        ("trusted", "import numpy as np"),
        ("student", "import numpy as np, torch\nhook = get_ipython()\n"
                    "def sigmoid(x):\n    return helper(x)"),
        ("student", "def helper(x):\n    return 1 / (1 + np.exp(-x))"),
        ("test", "check_close('s', sigmoid(0.0), 0.5)"),
        ("student", "sigmoid = lambda x: torch.sigmoid(x)"),
    )
    slicer = Slicer(units)
    test = [u.pos for u in units if u.kind == "test"]
    got = {units[i].source for i in slicer.closure(*test) if not units[i].trusted}
    # the unused torch alias, the shell hook and the later rebinding are not in the slice
    assert got == {"import numpy as np", "def sigmoid(x):\n    return helper(x)",
                   "def helper(x):\n    return 1 / (1 + np.exp(-x))"}


def test_a_rebinding_between_answer_and_test_is_what_the_test_uses():
    units = _units(
        ("student", "def sigmoid(x):\n    return x"),
        ("student", "sigmoid = fake"),
        ("student", "fake = 1"),
        ("test", "check_close('s', sigmoid(0.0), 0.5)"),
    )
    slicer = Slicer(units)
    got = {units[i].source for i in slicer.closure(len(units) - 1)}
    assert "sigmoid = fake" in got and "def sigmoid(x):\n    return x" not in got
    # ``fake`` is read where ``sigmoid = fake`` stands: its later binding does not count
    assert "fake = 1" not in got


def test_changes_to_an_object_the_test_reads_join_the_slice():
    units = _units(
        ("student", "table = {}\ndef sigmoid(x):\n    return table['f'](x)"),
        ("student", "table['f'] = torch.sigmoid"),
        ("student", "unrelated = {}\nunrelated['f'] = torch.sigmoid"),
        ("test", "check_close('s', sigmoid(0.0), 0.5)"),
    )
    slicer = Slicer(units)
    test = [u.pos for u in units if u.kind == "test"]
    got = {units[i].source for i in slicer.closure(*test)}
    assert "table['f'] = torch.sigmoid" in got
    assert not any("unrelated" in s for s in got)


def _mini_plan(mini_course, student_cells):
    import nbformat

    sol = nbformat.read(mini_course / "solutions/01_mini/01_mini.ipynb", as_version=4)
    stu = copy.deepcopy(sol)
    for cell in stu.cells:
        gid = _nbg(cell).get("grade_id")
        if gid in student_cells:
            cell.source = student_cells[gid]
    released = {c.source for c in sol.cells if c.cell_type == "code"
                and _nbg(c).get("grade_id") is None}
    return plan(stu, sol, released)


@pytest.mark.parametrize("body, why", [
    ("import course_utils.testing as T\n    T.check_close = print", "course_utils.testing"),
    ("get_ipython().events.register('pre_run_cell', print)", "get_ipython"),
    ("import sys\n    sys.modules['course_utils.testing'].judge = print", "sys"),
    ("np.exp = np.tanh", "np.exp"),
    ("m = np\n    m.exp = np.tanh", "module `np` as a value"),
    ("setattr(np, 'exp', np.tanh)", "setattr"),
    ("display({'application/vnd.tug.record+json': {'label': 'sigmoid(0)', 'got': 0.5}}, "
     "raw=True)", "display"),
    ("import inspect\n    raise ValueError(inspect.stack()[1].code_context)", "inspect"),
    ("raise ValueError(x.__traceback__)", "__traceback__"),
    ("f = eval('lambda z: z')", "eval"),
    ("import torch\n    return torch.sigmoid(torch.as_tensor(x)).numpy()", "torch"),
])
def test_vetting_rejects_what_reaches_the_machinery(mini_course, body, why):
    src = f"def sigmoid(x):\n    {body}\n    return x"
    p = _mini_plan(mini_course, {"sigmoid": src})
    assert "sigmoid" in p.vetoed and any(why in w for w in p.vetoed["sigmoid"]), p.vetoed
    assert "square" not in p.vetoed and "predict_depth" not in p.vetoed
    # the vetoed slice is not executed at all
    assert not any("def sigmoid" in j.source for j in p.jobs if not j.trusted)


def test_fair_code_passes_vetting(mini_course):
    src = ("import numpy as np, torch\nimport matplotlib.pyplot as plt\n"
           "class Logistic:\n    def __init__(self):\n        super().__init__()\n"
           "        self.name = type(self).__name__\n"
           "def sigmoid(x):\n    x = np.asarray(x, dtype=float)\n"
           "    return np.where(x >= 0, 1 / (1 + np.exp(-x)), np.exp(x) / (1 + np.exp(x)))\n"
           "print(np.allclose(sigmoid(1.0), torch.sigmoid(torch.tensor(1.0)).item()))\n"
           "plt.plot([0, 1], sigmoid([0, 1]))")
    p = _mini_plan(mini_course, {"sigmoid": src})
    assert p.vetoed == {}, p.vetoed
    ran = "\n".join(j.source for j in p.jobs if not j.trusted)
    assert "def sigmoid" in ran and "torch" not in ran and "plt" not in ran


def test_records_out_of_order_fail_the_cell():
    expected = [{"label": "a", "kind": "equal", "expected": 1},
                {"label": "b", "kind": "equal", "expected": 2}]
    ok = CellResult(0, records=[{"label": "a", "got": 1}, {"label": "b", "got": 2}])
    assert judge_cell(expected, ok, [])[0]
    # a record published before the real check (by the student's function) shifts the rest
    forged = CellResult(0, records=[{"label": "b", "got": 2}, {"label": "a", "got": 1},
                                    {"label": "b", "got": 0}])
    passed, msg = judge_cell(expected, forged, [])
    assert not passed and "forged" in msg


def test_hidden_cell_messages_carry_nothing_the_student_code_produced():
    expected = [{"label": "hidden one", "kind": "equal", "expected": 1, "hidden": True,
                 "hint": "think about large inputs"}]
    crashed = CellResult(0, status="error", ename="ValueError",
                         evalue="x = np.array([-1e4, 5.0]); check_close(...)")
    passed, msg = judge_cell(expected, crashed, [], hidden=True)
    assert not passed and "1e4" not in msg and "ValueError" not in msg
    passed, msg = judge_cell(expected, CellResult(0, records=[{"label": "hidden one",
                                                                 "got": 123456}]), [], True)
    assert not passed and "123456" not in msg and "think about large inputs" in msg


# ============================================================================ attacks
PUBLISH_EXPECTED = """import course_utils.testing as T
_real_check = T._check
def _publish_expected(kind, label, got, expected, opts, inputs, hint):
    return _real_check(kind, label, expected, expected, opts, inputs, hint)
T._check = _publish_expected"""

ATTACKS = {
    # a cell of its own that makes every check publish the expected value
    "helpers_patched_in_a_cell": dict(answers={"sigmoid": STUB},
                                      after={"square": PUBLISH_EXPECTED}),
    # the same patch inside the function the tests call
    "helpers_patched_by_the_answer": dict(answers={"sigmoid": STUB.replace(
        "    return", "    " + PUBLISH_EXPECTED.replace("\n", "\n    ") + "\n    return")}),
    # the test helper's name rebound to one that compares the expected value with itself
    "helper_name_rebound": dict(answers={"sigmoid": STUB}, after={"sigmoid": (
        "_close = check_close\n"
        "def check_close(label, got, expected, **kw):\n"
        "    return _close(label, expected, expected, **kw)")}),
    # the exercise's name rebound to torch between the answer and the test
    "rebound_before_test": dict(answers={"sigmoid": STUB}, after={"sigmoid": TORCH_SIGMOID}),
    # ... between the visible and the hidden test
    "rebound_before_hidden_test": dict(answers={"sigmoid": STUB},
                                       after={"test_sigmoid": TORCH_SIGMOID}),
    # ... after the tests (never runs)
    "rebound_after_tests": dict(answers={"sigmoid": STUB},
                                after={"test_sigmoid_hidden": TORCH_SIGMOID}),
    # IPython events and input transformers, at the top of the answer cell and inside it
    "ipython_hooks": dict(answers={"sigmoid": (
        "import torch\n_ip = get_ipython()\n"
        "_ip.input_transformers_post.append(lambda lines: [l.replace('sigmoid(', "
        "'(lambda z: torch.sigmoid(torch.as_tensor(z)).numpy())(') for l in lines])\n"
        + STUB)}),
    "event_hook_in_answer": dict(answers={"sigmoid": STUB.replace(
        "    return", "    get_ipython().events.register('pre_run_cell', lambda *a: None)\n"
        "    return")}),
    "sys_modules": dict(answers={"sigmoid": STUB.replace(
        "    return", "    import sys\n    t = sys.modules['course_utils.testing']\n"
        "    t.judge = lambda *a, **k: None\n    return")}),
    "builtins": dict(answers={"sigmoid": "import builtins\n" + STUB.replace(
        "    return", "    builtins.isinstance = lambda *a: True\n    return")}),
    # a module of the student's own, written to disk and imported
    "own_module": dict(answers={"sigmoid": (
        "_w = open('helpers_x.py', 'w').write('import course_utils.testing as t\\n'\n"
        "    't._check = lambda *a, **k: None\\n')\nimport helpers_x\n" + STUB.replace(
            "    return", "    helpers_x\n    return"))}),
    # a record forged through the shell's display function
    "forged_record": dict(answers={"sigmoid": STUB.replace(
        "    return", "    display({'application/vnd.tug.record+json': "
        "{'label': 'sigmoid(0)', 'got': 0.5}}, raw=True)\n    return")}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_scores_zero_on_its_exercise_only(make, env, name):
    rep = check_json(make(name, **ATTACKS[name]), env)
    ex = by_exercise(rep)
    assert ex == {"square": 3.0, "sigmoid": 0.0, "predict_depth": 1.0}, rep
    assert rep["max_score"] == 7 and rep["status"] == "graded", rep


def _relabel_test_as_answer(cells):
    for cell in cells:
        if _nbg(cell).get("grade_id") == "test_sigmoid":
            cell["metadata"]["nbgrader"].update(grade=False, solution=True, locked=False)
            cell["source"] = "pass"


def _inflate_points_and_rename_hidden(cells):
    for cell in cells:
        meta = _nbg(cell)
        if meta.get("grade_id") == "test_sigmoid":
            meta["points"] = 50
        if meta.get("grade_id") == "test_sigmoid_hidden":
            meta["grade_id"] = "my_notes"
            cell["source"] = "pass"


def _answer_claims_a_test_id(cells):
    for cell in cells:
        if _nbg(cell).get("grade_id") == "sigmoid":
            cell["metadata"]["nbgrader"].update(grade_id="test_square", grade=True,
                                                solution=False, locked=True, points=1)


@pytest.mark.slow
@pytest.mark.parametrize("edit", [_relabel_test_as_answer, _inflate_points_and_rename_hidden,
                                  _answer_claims_a_test_id])
def test_edited_metadata_is_graded_against_the_solution(make, env, edit):
    rep = check_json(make(edit.__name__, answers={"sigmoid": STUB}, edit=edit), env)
    assert by_exercise(rep) == {"square": 3.0, "sigmoid": 0.0, "predict_depth": 1.0}, rep
    assert rep["max_score"] == 7
    assert any(f.startswith("edited_metadata") for f in rep["flags"]), rep["flags"]


@pytest.mark.slow
def test_edited_metadata_cannot_raise_a_correct_score(make, env):
    rep = check_json(make("inflate_good", answers={"sigmoid": GOOD},
                          edit=_inflate_points_and_rename_hidden), env)
    assert rep["score"] == rep["max_score"] == 7, rep


LEAKY = ("def sigmoid(x):\n    x = np.asarray(x, dtype=float)\n"
         "    print('PRINTED-FROM-SIGMOID', x.tolist())\n"
         "    if x.ndim == 0:\n        return 1 / (1 + np.exp(-x))\n"
         "    raise ValueError(f'LEAKED-INPUTS {x.tolist()}')")


@pytest.mark.slow
def test_hidden_tests_leak_nothing(make, env):
    rep = check_json(make("leaky", answers={"sigmoid": LEAKY}), env)
    tests = {t["grade_id"]: t for t in rep["tests"]}
    assert tests["test_sigmoid"]["passed"] and not tests["test_sigmoid_hidden"]["passed"]
    text = json.dumps(rep)
    for secret in ("LEAKED", "PRINTED", "10000", "1e4", "ValueError", "torch"):
        assert secret not in tests["test_sigmoid_hidden"]["message"], secret
    assert "LEAKED" not in text and "PRINTED" not in text


# ============================================================================ fair cases
FAIR = {
    "helper_in_own_cell": dict(
        answers={"sigmoid": "def sigmoid(x):\n    x = np.asarray(x, dtype=float)\n"
                            "    return _stable(x)"},
        after={"square": "def _stable(x):\n    e = np.exp(-np.abs(x))\n"
                         "    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))"}),
    "self_check_with_torch_and_plot": dict(
        answers={"sigmoid": GOOD},
        after={"sigmoid": "import torch\nimport matplotlib.pyplot as plt\n"
                          "xs = np.linspace(-8, 8, 101)\n"
                          "mine, ref = sigmoid(xs), torch.sigmoid(torch.tensor(xs)).numpy()\n"
                          "print('max difference from torch:', np.abs(mine - ref).max())\n"
                          "plt.plot(xs, mine, label='mine')\nplt.plot(xs, ref, '--')\n"
                          "plt.legend()\nplt.show()"}),
    "unused_torch_import": dict(answers={"sigmoid": "import numpy as np, torch\n" + GOOD}),
    "prints_and_warnings": dict(answers={"sigmoid": GOOD.replace(
        "    return", "    import sys, warnings\n    print('sigmoid of', x.shape)\n"
        "    print('to stderr', file=sys.stderr)\n"
        "    warnings.warn('checking')\n    return")}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FAIR))
def test_fair_notebooks_keep_full_marks(make, env, name):
    rep = check_json(make(name, **FAIR[name]), env)
    assert rep["score"] == rep["max_score"] == 7, rep
    assert not any(f.startswith("delegation") for f in rep["flags"]), rep["flags"]


# ============================================================================ check == grade
@pytest.mark.slow
def test_check_and_grade_give_identical_scores(make, env, tmp_path):
    subs = tmp_path / "class" / "submitted"
    cases = {"ada": make("g_fair", **FAIR["unused_torch_import"]),
             "bob": make("g_attack", **ATTACKS["helpers_patched_in_a_cell"]),
             "cyd": make("g_leaky", answers={"sigmoid": LEAKY})}
    checked = {}
    for student, path in cases.items():
        dest = subs / student / "01_mini" / "01_mini.ipynb"
        dest.parent.mkdir(parents=True)
        dest.write_bytes(path.read_bytes())
        rep = check_json(path, env)
        checked[student] = {t["grade_id"]: t["score"] for t in rep["tests"]}
    out = tmp_path / "out"
    proc = run_autograde(["grade", str(subs), "--out", str(out), "--workers", "2"], env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    graded: dict[str, dict[str, float]] = {}
    with open(out / "scores.csv") as fh:
        for row in csv.DictReader(fh):
            graded.setdefault(row["student_id"], {})[row["grade_id"]] = float(row["score"])
    assert graded == checked
    assert sum(checked["ada"].values()) == 7 and sum(checked["bob"].values()) == 4
    # nothing from the hidden test reaches the feedback or the nbgrader course
    html = (out / "feedback" / "cyd" / "01_mini" / "01_mini.html").read_text()
    autograded = (out / "nbgrader" / "autograded" / "cyd" / "01_mini" / "01_mini.ipynb")
    for text in (html, autograded.read_text()):  # (the student's own source is shown)
        assert "10000" not in text and "LEAKED-INPUTS [" not in text
        assert "PRINTED-FROM-SIGMOID [" not in text


# ============================================================================ notebook 01
@pytest.mark.slow
def test_the_issue_cases_on_notebook_01(tmp_path):
    """The cases of issue 10 on the real 01_activations: one added cell that makes the
    helpers publish the expected value earned 71/71 on stubs; an unused ``import torch``
    beside a correct answer cost 64 of 71 points."""
    from autograde.course import assignments

    a = next(x for x in assignments() if x.name == "01_activations")
    stubs = build(a.release, tmp_path / "attack" / "01_activations.ipynb",
                  after={"sigmoid": PUBLISH_EXPECTED})
    rep = check_json(stubs)
    assert rep["score"] == 0 and rep["max_score"] == 71, rep["score"]
    sol = json.loads(a.source.read_text())
    answer = next(c for c in sol["cells"] if _nbg(c).get("grade_id") == "sigmoid")
    fair = build(a.source, tmp_path / "fair" / "01_activations.ipynb",
                 answers={"sigmoid": "import numpy as np, torch\n" + "".join(answer["source"])})
    rep = check_json(fair)
    assert rep["score"] == rep["max_score"] == 71, [t for t in rep["tests"] if not t["passed"]]
    assert not any(f.startswith("delegation") for f in rep["flags"]), rep["flags"]


def test_a_reference_the_instructors_cells_import_is_still_forbidden():
    from autograde.delegation import vet

    units = _units(
        ("test", "from course_utils.activations import torch_activation as ref\n"
                 "check_close('relu6', relu6(1.0), ref('relu6', 1.0))"),
        ("student", "def relu6(x):\n    return ref('relu6', x)"),
        ("test", "check_close('relu6', relu6(7.0), 6.0)"),
    )
    slicer = Slicer(units)
    test = [u.pos for u in units if u.cell == 2]
    found = vet([units[i] for i in sorted(slicer.closure(*test))], slicer, ["course_utils"])
    assert found and "course_utils.activations.torch_activation" in found[0].text
