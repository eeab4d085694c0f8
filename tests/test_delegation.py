"""The anti-delegation scan (no kernels: pure AST analysis)."""

from __future__ import annotations

import pytest

from autograde.delegation import analyse, violations

FORBID = [".sigmoid", ".expit", "course_utils"]


@pytest.mark.parametrize("src", [
    "def f(x):\n    model.eval()\n    return re.compile('a')",
    "def f(x):\n    m = torch.compile(net)\n    return [p for p in net.modules()]",
    "def f(x):\n    return np.exp(-x)",
])
def test_ordinary_methods_are_not_dynamic_code(src):
    assert analyse("f", src).dynamic == []


@pytest.mark.parametrize("src, found", [
    ("y = eval('1')", "eval"),
    ("y = x.__dict__", "x.__dict__"),
    ("y = f.__globals__", "f.__globals__"),
    ("import builtins", "builtins"),
    ("y = getattr(np, name)", "getattr(..., <computed name>)"),
    ("from sys import modules", "sys.modules"),
    ("import sys\ny = sys.modules", "sys.modules"),
    ("import importlib", "importlib"),
])
def test_ways_around_a_name_are_flagged(src, found):
    # each finding is now a sentence that names the construct
    assert any(f"`{found}`" in d or f"`{found}(" in d for d in analyse("f", src).dynamic)


def test_forbidden_call_through_a_helper_cell_is_found():
    cells = {
        "sigmoid": analyse("sigmoid", "def sigmoid(x):\n    return helper(x)"),
        "your cell 3": analyse("your cell 3", "import torch\ndef helper(x):\n"
                                              "    return torch.sigmoid(x)"),
    }
    why = violations("sigmoid", FORBID, cells)
    assert why and "torch.sigmoid" in why[0]


def test_own_implementation_is_not_a_violation():
    cells = {"sigmoid": analyse("sigmoid", "def sigmoid(x):\n    e = np.exp(-np.abs(x))\n"
                                           "    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))")}
    assert violations("sigmoid", FORBID, cells) == []


def test_a_dtype_named_by_a_string_is_found_by_a_dtype_entry():
    forbid = ["np.float16", "dtype:float16", "dtype:e"]
    for cast in ("def cast(x):\n    return np.asarray(x, dtype='float16')",
                 "def cast(x):\n    return np.asarray(x).astype('e')",
                 "def cast(x):\n    return x.view(dtype='float16')"):
        why = violations("cast", forbid, {"cast": analyse("cast", cast)})
        assert why and "dtype:" in why[0], cast
    fair = ("def cast(x, dtype):\n    big = 65504 if dtype == 'float16' else 3.39e38\n"
            "    return np.where(np.abs(x) > big, 'overflow', 'ok')")
    assert violations("cast", forbid, {"cast": analyse("cast", fair)}) == []
    cast = "def cast(x):\n    return np.asarray(x, dtype='float16')"
    assert violations("cast", [".float16"], {"cast": analyse("cast", cast)}) == []  # names only
