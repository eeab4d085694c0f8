"""How a check's value is judged: pure functions of plain data, no state.

The trusted grading process calls :func:`judge` on the values a student's kernel recorded
(decoded by :func:`course_utils.testing.decode`) against the values the instructor's solution
expected; in ``"assert"`` mode :mod:`course_utils.testing` calls the same functions at once.
A failed check reads ``label: problem``, then the input and the hint
(:func:`failure_message`); for a hidden test :func:`problem_category` names the kind of
mistake without any value. Used by every notebook's test cells, through ``testing``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


class Opaque:
    """Stands for a value that is not plain data (after :func:`decode`)."""

    def __init__(self, type_name: str):
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<object of type {self.type_name}>"

    def __eq__(self, other: object) -> bool:  # an opaque value never equals anything
        return False

    __hash__ = None  # type: ignore[assignment]


def describe(value: Any, limit: int = 300) -> str:
    """A short text for ``value`` (arrays summarised, at most ``limit`` characters)."""
    if isinstance(value, np.ndarray):
        with np.printoptions(precision=6, threshold=12, edgeitems=3):
            text = f"array(shape={value.shape}, dtype={value.dtype}) {value}"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_float_array(value: Any) -> np.ndarray | None:
    if isinstance(value, Opaque):
        return None
    if isinstance(value, np.ndarray | np.generic):
        return np.asarray(value, dtype=float) if value.dtype.kind in "biuf" else None
    if type(value) in (int, float, bool):
        return np.asarray(float(value))
    if type(value) in (list, tuple):
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            return None
        return arr
    return None


def _judge_close(got: Any, expected: Any, opts: dict) -> str | None:
    rtol, atol = opts.get("rtol", 1e-6), opts.get("atol", 1e-9)
    g = _as_float_array(got)
    e = _as_float_array(expected)
    if g is None:
        return f"expected numbers, got {describe(got)}"
    if opts.get("check_shape", True) and g.shape != e.shape:
        return f"expected shape {e.shape}, got shape {g.shape}"
    want_kind = opts.get("dtype_kind")
    if want_kind and isinstance(got, np.ndarray | np.generic):
        if got.dtype.kind not in want_kind:
            return f"expected a float array, got dtype {got.dtype}"
    if want_kind and type(got) in (int, bool):
        return f"expected a float, got {type(got).__name__}"
    if g.shape != e.shape:
        try:
            g, e = np.broadcast_arrays(g, e)
        except ValueError:
            return f"expected shape {e.shape}, got shape {g.shape}"
    nan_g, nan_e = np.isnan(g), np.isnan(e)
    if (nan_g & ~nan_e).any():
        idx = np.argwhere(nan_g & ~nan_e)[0]
        return f"got NaN at index {tuple(int(i) for i in idx)} where {e[tuple(idx)]!r} was expected"
    ok = np.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
    if not ok.all():
        tol = f"(rtol={rtol:g}, atol={atol:g})"
        if ok.size == 1:
            return f"expected {float(e.reshape(())):.10g}, got {float(g.reshape(())):.10g} {tol}"
        idx = tuple(int(i) for i in np.argwhere(~ok)[0])
        return (
            f"{int((~ok).sum())} of {ok.size} values differ {tol}; first at index {idx}: "
            f"expected {float(e[idx]):.10g}, got {float(g[idx]):.10g}"
        )
    return None


def _judge_equal(got: Any, expected: Any, opts: dict) -> str | None:
    if isinstance(got, Opaque):
        return f"expected {describe(expected)}, got {got!r}"
    if isinstance(expected, np.ndarray) or isinstance(got, np.ndarray):
        g, e = _as_float_array(got), _as_float_array(expected)
        if g is None or g.shape != e.shape or not np.array_equal(g, e):
            return f"expected {describe(expected)}, got {describe(got)}"
        return None
    if type(expected) is float or type(got) is float:
        if type(got) not in (int, float) and not isinstance(got, np.number):
            return f"expected {expected!r}, got {describe(got)}"
        if float(got) != float(expected):
            return f"expected {expected!r}, got {got!r}"
        return None
    if _plain_equal(got, expected):
        return None
    return f"expected {describe(expected)}, got {describe(got)}"


def _plain_equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.generic):
        a = a.item()
    if isinstance(b, np.generic):
        b = b.item()
    if type(a) in (list, tuple) and type(b) in (list, tuple):
        return len(a) == len(b) and all(_plain_equal(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict and type(b) is dict:
        return a.keys() == b.keys() and all(_plain_equal(a[k], b[k]) for k in a)
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    if type(a) in (int, float) and type(b) in (int, float):
        return a == b
    if type(a) in (str, type(None)):
        return type(a) is type(b) and a == b
    return False


def _judge_between(got: Any, expected: Any, opts: dict) -> str | None:
    lo, hi = expected
    g = _as_float_array(got)
    if g is None or g.size != 1:
        return f"expected one number, got {describe(got)}"
    x = float(g.reshape(()))
    if not (lo <= x <= hi):
        return f"expected a value between {lo:.6g} and {hi:.6g}, got {x:.6g}"
    return None


_JUDGES: dict[str, Callable[[Any, Any, dict], str | None]] = {
    "close": _judge_close,
    "equal": _judge_equal,
    "between": _judge_between,
}


def judge(kind: str, got: Any, expected: Any, opts: dict) -> str | None:
    """Return ``None`` when ``got`` passes, else a message saying what is wrong.

    ``got`` and ``expected`` are decoded plain data. Pure function, run by the trusted grader.
    """
    fn = _JUDGES.get(kind)
    if fn is None:
        return f"unknown check kind {kind!r}"
    try:
        return fn(got, expected, opts)
    except Exception as exc:  # a malformed value must fail the check, not the grader
        return f"could not compare values ({type(exc).__name__}: {exc})"


def problem_category(kind: str, got: Any, expected: Any, opts: dict) -> str:
    """What kind of mistake a failed check shows, in words that reveal no input, no expected
    value and no returned value (what a hidden test may tell the student)."""
    g = _as_float_array(got)
    if kind == "between":
        if g is None or g.size != 1:
            return "not a single number"
        return ("NaN or infinity (an overflow?)" if not np.isfinite(g).all()
                else "outside the range a correct answer lands in")
    e = _as_float_array(expected)
    if g is None or e is None:
        if type(got) is not type(expected):
            return f"wrong type (a {type(expected).__name__} was expected)"
        return "values differ"
    if g.shape != e.shape and (kind == "equal" or opts.get("check_shape", True)):
        return "wrong shape"
    want_kind = opts.get("dtype_kind")
    if want_kind and (isinstance(got, np.ndarray | np.generic) and got.dtype.kind not in want_kind
                      or type(got) in (int, bool)):
        return "wrong dtype (a floating-point result was expected)"
    try:
        g, e = np.broadcast_arrays(g, e)
    except ValueError:
        return "wrong shape"
    if (~np.isfinite(g) & np.isfinite(e)).any():
        return "NaN or infinity where a finite value was expected (an overflow?)"
    return "values differ"


def failure_message(label: str, problem: str, inputs: str | None, hint: str | None) -> str:
    parts = [f"{label}: {problem}"]
    if inputs:
        parts.append(f"  input: {inputs}")
    if hint:
        parts.append(f"  hint: {hint}")
    return "\n".join(parts)
