"""Assertion helpers used by every test cell of the course.

Each helper works in one of three modes:

* ``"assert"`` (the default): compare at once and raise :class:`CheckFailed` (an
  ``AssertionError``) with a message that names the check, the input, what was expected, what
  came back and a hint. This is what a student sees when running a visible test cell in
  JupyterLab (the message alone, without the frames of these helpers; a cell whose checks all
  pass ends with one line, "✓ 4 checks passed"), and what plain ``nbgrader autograde`` sees.
* ``"record"`` (set by ``python -m autograde check`` inside the sandboxed student kernel):
  do not judge anything; turn the student's value into plain data (numbers, strings, arrays)
  and publish it as a display output. The verdict is computed later, in the trusted grading
  process, by :func:`judge`.
* ``"expect"`` (set by the grader in the trusted kernel that runs the instructor's solution):
  publish what the check expects (expected value, tolerances, input description, hint).

Because the student's kernel only ever sends plain data, nothing it does (patching these
helpers, objects whose ``__eq__`` is always true, hijacking IPython) can change a verdict:
the comparison happens in a process the student's code never touches.

Introduced in ``notebooks/01_activations``; used by all notebooks.
"""

from __future__ import annotations

import base64
import json
import math
import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

RECORD_MIME = "application/vnd.tug.record+json"
MAX_ARRAY_ELEMENTS = 2_000_000
_ALLOWED_DTYPE_KINDS = "biuf"

_state = {"mode": "assert"}
if os.environ.get("TUG_TESTING_MODE") in ("record", "expect"):
    _state["mode"] = os.environ["TUG_TESTING_MODE"]


def set_mode(mode: str) -> None:
    """Switch between ``"assert"``, ``"record"`` and ``"expect"`` (used by the grader)."""
    if mode not in ("assert", "record", "expect"):
        raise ValueError(f"unknown mode {mode!r}: use 'assert', 'record' or 'expect'")
    _state["mode"] = mode


def get_mode() -> str:
    return _state["mode"]


# --------------------------------------------------------------------------- plain data
class Opaque:
    """Stands for a value that is not plain data (after :func:`decode`)."""

    def __init__(self, type_name: str):
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<object of type {self.type_name}>"

    def __eq__(self, other: object) -> bool:  # an opaque value never equals anything
        return False

    __hash__ = None  # type: ignore[assignment]


def encode(value: Any, _depth: int = 0) -> Any:
    """Turn ``value`` into JSON-able plain data. Anything else becomes an opaque marker.

    Only exact built-in types are trusted: a subclass of ``float`` or ``list`` written by a
    student is reported as opaque rather than converted through its own methods.
    """
    if _depth > 20:
        return {"__opaque__": "nesting too deep"}
    t = type(value)
    if value is None or t is bool or t is str:
        return value
    if t is int:
        return value if abs(value) < 2**62 else float(value)
    if t is float:
        return _encode_float(value)
    if t in (list, tuple):
        return {"__seq__": t.__name__, "items": [encode(v, _depth + 1) for v in value]}
    if t is dict:
        if all(type(k) is str for k in value):
            return {"__dict__": {k: encode(v, _depth + 1) for k, v in value.items()}}
        return {"__opaque__": "dict with non-string keys"}
    if isinstance(value, np.generic) and type(value).__module__ == "numpy":
        return _encode_array(np.asarray(value), scalar=True)
    if t is np.ndarray:
        return _encode_array(value, scalar=False)
    if _is_exact_torch_tensor(value):
        return _encode_array(value.detach().cpu().numpy(), scalar=False, torch=True)
    return {"__opaque__": f"{t.__module__}.{t.__qualname__}"}


def _is_exact_torch_tensor(value: Any) -> bool:
    t = type(value)
    return t.__module__ == "torch" and t.__name__ in ("Tensor",) or (
        t.__name__ == "Parameter" and t.__module__ == "torch.nn.parameter"
    )


def _encode_float(x: float) -> Any:
    if math.isfinite(x):
        return x
    return {"__float__": repr(x)}


def _encode_array(a: np.ndarray, scalar: bool, torch: bool = False) -> Any:
    if a.dtype.kind not in _ALLOWED_DTYPE_KINDS:
        return {"__opaque__": f"array of dtype {a.dtype}"}
    if a.size > MAX_ARRAY_ELEMENTS:
        return {"__opaque__": f"array with {a.size} elements (too large to grade)"}
    a = np.array(a, order="C", copy=True)  # (ascontiguousarray would make 0-d arrays 1-d)
    return {
        "__array__": base64.b64encode(a.tobytes()).decode("ascii"),
        "dtype": a.dtype.str,
        "shape": list(a.shape),
        "scalar": scalar,
        "torch": torch,
    }


def decode(data: Any, _depth: int = 0) -> Any:
    """Inverse of :func:`encode`; validates everything and never runs foreign code."""
    if _depth > 25:
        return Opaque("nesting too deep")
    if data is None or type(data) in (bool, str, int, float):
        return data
    if type(data) is list:  # plain JSON list (only from trusted code)
        return [decode(v, _depth + 1) for v in data]
    if type(data) is not dict:
        return Opaque(type(data).__name__)
    if "__float__" in data:
        text = data["__float__"]
        return float(text) if text in ("inf", "-inf", "nan") else Opaque("float")
    if "__seq__" in data:
        items = [decode(v, _depth + 1) for v in data.get("items", [])]
        return tuple(items) if data["__seq__"] == "tuple" else items
    if "__dict__" in data and type(data["__dict__"]) is dict:
        return {str(k): decode(v, _depth + 1) for k, v in data["__dict__"].items()}
    if "__array__" in data:
        try:
            dtype = np.dtype(str(data["dtype"]))
            shape = tuple(int(s) for s in data["shape"])
            if dtype.kind not in _ALLOWED_DTYPE_KINDS or math.prod(shape) > MAX_ARRAY_ELEMENTS:
                return Opaque("array")
            raw = base64.b64decode(data["__array__"], validate=True)
            arr = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        except (ValueError, TypeError, KeyError):
            return Opaque("malformed array")
        if data.get("scalar"):
            return arr[()]
        return arr
    if "__opaque__" in data:
        return Opaque(str(data["__opaque__"]))
    return Opaque("unknown record")


def roundtrip(value: Any) -> Any:
    return decode(json.loads(json.dumps(encode(value))))


# --------------------------------------------------------------------------- judging
def _short(value: Any, limit: int = 300) -> str:
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
        return f"expected numbers, got {_short(got)}"
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
        return f"expected {_short(expected)}, got {got!r}"
    if isinstance(expected, np.ndarray) or isinstance(got, np.ndarray):
        g, e = _as_float_array(got), _as_float_array(expected)
        if g is None or g.shape != e.shape or not np.array_equal(g, e):
            return f"expected {_short(expected)}, got {_short(got)}"
        return None
    if type(expected) is float or type(got) is float:
        if type(got) not in (int, float) and not isinstance(got, np.number):
            return f"expected {expected!r}, got {_short(got)}"
        if float(got) != float(expected):
            return f"expected {expected!r}, got {got!r}"
        return None
    if _plain_equal(got, expected):
        return None
    return f"expected {_short(expected)}, got {_short(got)}"


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
        return f"expected one number, got {_short(got)}"
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


# --------------------------------------------------------------------------- helpers
class CheckFailed(AssertionError):
    """A check that failed in ``"assert"`` mode. IPython shows only its message."""

    def _render_traceback_(self) -> list[str]:
        first, *rest = str(self).splitlines() or [""]
        return [f"\x1b[31m✗ {first}\x1b[0m", *rest]


_passed = {"count": 0, "hooked": False}


def _count_pass() -> None:
    """Count a passed check; the cell then ends with one line that says how many passed."""
    _passed["count"] += 1
    if _passed["hooked"]:
        return
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:  # registered on the first check, never on import
        shell.events.register("post_run_cell", _report_passes)
        _passed["hooked"] = True


def _report_passes(result) -> None:
    count, _passed["count"] = _passed["count"], 0
    if count and result.success:
        print(f"✓ {count} check{'s' if count != 1 else ''} passed")


def _emit(record: dict) -> None:
    from IPython.display import publish_display_data

    publish_display_data({RECORD_MIME: record, "text/plain": f"[graded check {record['label']}]"})


def _check(kind: str, label: str, got: Any, expected: Any, opts: dict, inputs: Any, hint):
    mode = _state["mode"]
    if inputs is None or isinstance(inputs, str):
        inputs_text = inputs
    else:
        inputs_text = _short(inputs)
    if mode == "record":
        _emit({"label": label, "got": encode(got)})
        return
    if mode == "expect":
        _emit(
            {
                "label": label,
                "kind": kind,
                "expected": encode(expected),
                "opts": opts,
                "inputs": inputs_text,
                "hint": hint,
                "reference_got": encode(got),
            }
        )
    problem = judge(kind, roundtrip(got), roundtrip(expected), opts)
    if problem is not None:
        raise CheckFailed(failure_message(label, problem, inputs_text, hint))
    if mode == "assert":
        _count_pass()


def check_close(label, got, expected, *, rtol=1e-6, atol=1e-9, float_dtype=False,
                inputs=None, hint=None):
    """Values (scalars or arrays) match ``expected`` within tolerances and have its shape.

    With ``float_dtype=True`` the result must also be a floating-point value or array.
    """
    opts = {"rtol": rtol, "atol": atol}
    if float_dtype:
        opts["dtype_kind"] = "f"
    _check("close", label, got, expected, opts, inputs, hint)


def check_equal(label, got, expected, *, inputs=None, hint=None):
    """Plain data (numbers, strings, tuples, lists, arrays) equal ``expected`` exactly."""
    _check("equal", label, got, expected, {}, inputs, hint)


def check_between(label, got, low, high, *, inputs=None, hint=None):
    """One number lies in ``[low, high]`` (used for statistical checks)."""
    _check("between", label, got, (float(low), float(high)), {}, inputs, hint)


def outcome(fn: Callable[[], Any]) -> str:
    """Run ``fn()`` and name what happened: ``"ok"`` or the raised exception's class name.

    Use with :func:`check_equal` to test that bad input raises the right error.
    """
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the class name is the answer
        return type(exc).__name__
    return "ok"


def warnings_raised(fn: Callable[[], Any]) -> list[str]:
    """Run ``fn()`` with NumPy set to warn and return the warning categories it raised."""
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="warn"):
        warnings.simplefilter("always")
        fn()
    return sorted({w.category.__name__ for w in caught})
