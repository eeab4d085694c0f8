"""Let "Run All" show every demonstration of a notebook whose exercises are not done yet.

A demonstration that calls a student's function would stop a fresh notebook at the first
stub (``raise NotImplementedError()``). Two ways around that, both of which say so in the
cell's output:

* :func:`or_reference` wraps the student's function: while it is still the stub, the
  course's reference (a PyTorch function, or one from ``course_utils``) runs instead;
* :func:`needs` wraps a whole demonstration: while an exercise it uses is still a stub, the
  demonstration is skipped with a note.

Only ``NotImplementedError`` (the stub) triggers either one. A student's function that is
written but wrong raises its own error as usual, so mistakes are never hidden.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_told: set[str] = set()


def _name(fn: Any) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def or_reference(student_fn: Callable, reference: Callable, *, exercise: str | None = None
                 ) -> Callable:
    """``student_fn``, or ``reference`` for as long as ``student_fn`` is the unfinished stub.

    ``exercise`` names where the function is written (for example ``"exercise 2.1"``); the
    note is printed once per function and notebook session.
    """
    if not callable(student_fn) or not callable(reference):
        raise TypeError("or_reference(student_fn, reference): both arguments must be functions, "
                        f"got {type(student_fn).__name__} and {type(reference).__name__}")
    name = _name(student_fn)

    @functools.wraps(student_fn)
    def call(*args, **kwargs):
        try:
            return student_fn(*args, **kwargs)
        except NotImplementedError:
            if name not in _told:
                _told.add(name)
                where = f" ({exercise})" if exercise else ""
                print(f"ⓘ `{name}`{where} is not written yet, so this cell uses the course's "
                      "reference instead. Run the cell again once your function passes its "
                      "tests to see your own version at work.")
            return reference(*args, **kwargs)

    return call


@contextmanager
def needs(*exercises: str) -> Iterator[None]:
    """Skip the demonstration in the ``with`` block while an exercise it uses is a stub.

    ``exercises`` name what the block needs, for example ``needs("batchnorm_backward")``.
    """
    try:
        yield
    except NotImplementedError:
        what = ", ".join(f"`{e}`" for e in exercises) or "an exercise above"
        print(f"ⓘ This demonstration needs {what}, which is not written yet; it was skipped. "
              "Run the cell again once the exercise passes its tests.")
