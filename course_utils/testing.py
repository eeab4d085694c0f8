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
  process, by :func:`course_utils.judging.judge`.
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

from .judging import Opaque, describe, failure_message, judge

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
        inputs_text = describe(inputs)
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
