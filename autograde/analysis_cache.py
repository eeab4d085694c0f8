"""The analysis of the instructor's cells, kept between grading processes.

Every ``check`` and every submission of a class cuts the same solution and released cells into
units (:func:`autograde.slicing.trusted_units`) and analyses the same trusted cells for pruning
(:func:`autograde.pruning.analyse`): about two thirds of the plan of a full ``01`` check.
These depend only on the cell's text, the analysing code and, for ``from m import x``, on
whether ``m.x`` is a module the grading process has imported. This cache keeps them by text:

* in memory for the life of the process (a class's submissions share it), and
* in ``.autograde-cache/analysis-<digest>.pickle``, the digest covering the analysing code
  (``slicing.py``, ``pruning.py``) and the Python version; ``.autograde-cache`` is a secret no
  sandbox can see (:meth:`autograde.sandbox.SandboxConfig.secrets`), written only by the
  grading user, like the expected values beside it.

An entry remembers every ``is_module`` answer it relied on and is used only while they all
still hold. Only instructor text enters the cache, never a student's cell; callers stamp
copies of the cached units with their own positions (:func:`stamp`).
"""

from __future__ import annotations

import ast
import copy
import hashlib
import os
import pickle
import sys
import tempfile
from pathlib import Path

from . import pruning, slicing

_LOADED: dict[Path, AnalysisCache] = {}


def _digest() -> str:
    h = hashlib.sha256(sys.version.encode())
    for mod in (slicing, pruning):
        h.update(Path(mod.__file__).read_bytes())
    return h.hexdigest()[:20]


class AnalysisCache:
    """Units and pruning facts of trusted cells, by source text."""

    def __init__(self, path: Path | None):
        self.path = path
        self.units: dict[str, tuple[list, dict[str, bool]]] = {}
        self.statements: dict[str, frozenset[str]] = {}
        self.infos: dict[str, pruning.CellInfo] = {}
        self.dirty = False
        if path is not None:
            try:
                with open(path, "rb") as fh:
                    self.units, self.statements, self.infos = pickle.load(fh)
            except (OSError, pickle.PickleError, EOFError, ValueError, TypeError,
                    AttributeError):
                pass

    def trusted_units(self, source: str, cell: int, kind: str, grade_id: str | None,
                      where: str, start: int) -> list[slicing.Unit]:
        hit = self.units.get(source)
        if hit is None or any(slicing.is_module(d) != v for d, v in hit[1].items()):
            with slicing.recording_module_queries() as queries:
                units = slicing.trusted_units(source, 0, "setup", None, "", 0)
            for u in units:  # of a trusted unit's tree only an import is ever read (vetting)
                if not isinstance(u.tree, ast.Import | ast.ImportFrom):
                    u.tree = None
            hit = self.units[source] = (units, dict(queries))
            self.dirty = True
        return [stamp(u, start + k, cell, kind, grade_id, where) for k, u in enumerate(hit[0])]

    def released_statements(self, source: str) -> frozenset[str]:
        hit = self.statements.get(source)
        if hit is None:
            hit = self.statements[source] = frozenset(
                u.source for u in slicing.student_units(source, 0, "", 0) if u.tree is not None)
            self.dirty = True
        return hit

    def analyse(self, source: str) -> pruning.CellInfo:
        hit = self.infos.get(source)
        if hit is None:
            hit = self.infos[source] = pruning.analyse(source)
            self.dirty = True
        return copy.deepcopy(hit)

    def save(self) -> None:
        """Write the cache when it learnt something (atomically; silently not when the folder
        is read-only)."""
        if not self.dirty or self.path is None:
            return
        try:
            self.path.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".analysis-")
            with os.fdopen(fd, "wb") as fh:
                pickle.dump((self.units, self.statements, self.infos), fh)
            os.replace(tmp, self.path)
            self.dirty = False
        except OSError:
            pass


def stamp(u: slicing.Unit, pos: int, cell: int, kind: str, grade_id: str | None,
          where: str) -> slicing.Unit:
    """A copy of a cached trusted unit at ``pos`` in ``cell`` (its sets copied, the parsed
    tree of an import shared: nothing changes a trusted unit's tree)."""
    out = copy.copy(u)
    out.pos, out.cell, out.kind, out.grade_id, out.where = pos, cell, kind, grade_id, where
    out.trusted = True
    for name in ("binds", "top_reads", "body_reads", "mutates", "globals_written"):
        setattr(out, name, set(getattr(u, name)))
    out.modules = dict(u.modules)
    return out


def analysis_cache(root: Path | None) -> AnalysisCache:
    """The cache of the course at ``root`` (None: memory only), loaded once per process."""
    path = (Path(root) / ".autograde-cache" / f"analysis-{_digest()}.pickle") if root else None
    key = path or Path("-")
    if key not in _LOADED:
        _LOADED[key] = AnalysisCache(path)
    return _LOADED[key]
