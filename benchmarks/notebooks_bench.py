"""Wall time to execute each solution notebook top to bottom (as a student's Run All)."""

from __future__ import annotations

import os
import tempfile
import time

import nbformat
from nbclient import NotebookClient

from autograde.course import assignments


def run(verbose: bool = True) -> dict:
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("TUG_STATIC_WIDGETS", "1")
    figures = {}
    for a in assignments():
        nb = nbformat.read(a.source, as_version=4)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.monotonic()
            NotebookClient(nb, timeout=600, kernel_name="python3",
                           resources={"metadata": {"path": tmp}}).execute()
            figures[a.name] = round(time.monotonic() - t0, 1)
        if verbose:
            print(f"  {a.name}: {figures[a.name]} s", flush=True)
    return {"notebook_seconds": figures}
