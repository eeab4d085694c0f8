"""Per-exercise slices of a submission: which student statements each test cell depends on.

See ``autograde/ISOLATION.md`` for why grading runs exactly these statements and nothing else.

A submission is cut into *units*, in notebook order:

* a trusted unit is a whole cell taken from the instructor (a locked or test cell, whose source
  comes from ``solutions/``, or an unlabelled cell left exactly as released);
* a student unit is one top-level statement of a student cell; ``import a as x, b`` gives one
  unit per alias. Its source is regenerated from the parsed tree (``ast.unparse``), so the code
  that runs is exactly the code that was vetted.

The slice of a test cell starts from the names it reads and, for each, takes the last unit
before the reader that binds it (plus the statements that change that object in between:
``x[0] = ...``, ``x.attr = ...``, ``x.append(...)``), then follows the names those units read,
transitively. Names read at the top level of a unit are resolved where the unit stands; names
read inside a function body are resolved where the function is called (the test cell). A
statement no slice needs never runs during grading.
"""

from __future__ import annotations

import ast
import bisect
import contextlib
import symtable
from dataclasses import dataclass, field

from .pruning import analyse as analyse_trusted
from .pruning import global_uses, scope_loads, top_level_binders

MAGIC_PREFIXES = ("%", "!")


@dataclass(eq=False)
class Unit:
    pos: int  # order in the notebook (units of one cell are consecutive)
    cell: int  # index of the notebook cell it comes from
    source: str  # what runs
    trusted: bool
    kind: str = "setup"  # "setup" or "test"
    grade_id: str | None = None
    where: str = ""  # how a message names its cell ("your cell 4", "sigmoid")
    tree: ast.AST | None = None  # parsed statement (student units)
    binds: set[str] = field(default_factory=set)
    top_reads: set[str] = field(default_factory=set)  # read where the unit stands
    body_reads: set[str] = field(default_factory=set)  # read when its functions are called
    mutates: set[str] = field(default_factory=set)  # objects it changes through a name
    globals_written: set[str] = field(default_factory=set)  # ``global x`` in a function
    modules: dict[str, str] = field(default_factory=dict)  # name -> module it imports
    parse_error: str | None = None


def strip_magics(source: str) -> str:
    """IPython magics and shell escapes never run during grading; the parser drops them."""
    return "\n".join("" if line.lstrip().startswith(MAGIC_PREFIXES) else line
                     for line in source.splitlines())


# ----------------------------------------------------------------------------- units
def student_units(source: str, cell: int, where: str, start: int) -> list[Unit]:
    """The top-level statements of one student cell, as units numbered from ``start``."""
    try:
        tree = ast.parse(strip_magics(source))
    except SyntaxError as exc:
        return [Unit(start, cell, "", False, where=where,
                     parse_error=f"line {exc.lineno}: {exc.msg}")]
    out: list[Unit] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Import | ast.ImportFrom) and len(stmt.names) > 1:
            parts = [type(stmt)(names=[alias], **_import_fields(stmt)) for alias in stmt.names]
        else:
            parts = [stmt]
        for part in parts:
            ast.fix_missing_locations(part)
            out.append(_student_unit(part, start + len(out), cell, where))
    return out


def _import_fields(stmt) -> dict:
    return {"module": stmt.module, "level": stmt.level} if isinstance(stmt, ast.ImportFrom) \
        else {}


def _student_unit(stmt: ast.stmt, pos: int, cell: int, where: str) -> Unit:
    src = ast.unparse(stmt)
    u = Unit(pos, cell, src, False, where=where, tree=stmt)
    u.binds = {n if isinstance(n, str) else n.id for n in top_level_binders(stmt)}
    u.top_reads = scope_loads(stmt)
    u.body_reads = _nested_globals(src)
    if isinstance(stmt, ast.Import):
        for alias in stmt.names:
            if alias.asname:
                u.modules[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                u.modules[top] = top
    elif isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module:
        for alias in stmt.names:
            if is_module(f"{stmt.module}.{alias.name}"):
                u.modules[alias.asname or alias.name] = f"{stmt.module}.{alias.name}"
    _collect_effects(stmt, u)
    return u


def _nested_globals(src: str) -> set[str]:
    """Global names read or written inside the functions, classes and comprehensions of a
    statement (they are looked up when that code runs, not when the statement does)."""
    try:
        table = symtable.symtable(src, "<unit>", "exec")
    except (SyntaxError, ValueError):
        return set()
    out: set[str] = set()
    stack = list(table.get_children())
    while stack:
        t = stack.pop()
        for sym in t.get_symbols():
            if sym.is_global() or sym.is_declared_global():
                out.add(sym.get_name())
        stack.extend(t.get_children())
    return out


def _root(node) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call | ast.Starred):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _collect_effects(stmt: ast.stmt, u: Unit) -> None:
    for node in ast.walk(stmt):
        if isinstance(node, ast.Global):
            u.globals_written.update(node.names)
        targets = []
        if isinstance(node, ast.Assign | ast.Delete):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
            if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                u.mutates.add(node.target.id)  # ``x += ...`` changes a list in place
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            base = _root(node.func.value)
            if base:
                u.mutates.add(base)  # a method may change its object in place
        for t in targets:
            for sub in ast.walk(t):
                if isinstance(sub, ast.Attribute | ast.Subscript):
                    base = _root(sub)
                    if base:
                        u.mutates.add(base)


_QUERIES: list[dict[str, bool]] = []  # open recordings of is_module's answers


def is_module(dotted: str) -> bool:
    """True when ``dotted`` names a module that the grading process has already imported
    (numpy, torch, IPython, the course's packages...). Nothing new is imported here."""
    import sys

    answer = dotted in sys.modules
    for q in _QUERIES:
        q[dotted] = answer
    return answer


@contextlib.contextmanager
def recording_module_queries():
    """Collect ``{dotted: answer}`` of every :func:`is_module` call inside the block (an
    analysis kept for later is valid only while those answers hold)."""
    q: dict[str, bool] = {}
    _QUERIES.append(q)
    try:
        yield q
    finally:
        _QUERIES.remove(q)


def trusted_units(source: str, cell: int, kind: str, grade_id: str | None, where: str,
                  start: int) -> list[Unit]:
    """The statements of an instructor's cell, for the analysis only: the cell runs whole."""
    units = student_units(source, cell, where, start)
    if any(u.parse_error for u in units) or not units:
        return [trusted_unit(source, start, cell, kind, grade_id, where)]
    for u in units:
        u.trusted, u.kind, u.grade_id = True, kind, grade_id
    return units


def trusted_unit(source: str, pos: int, cell: int, kind: str, grade_id: str | None,
                 where: str) -> Unit:
    info = analyse_trusted(source)
    u = Unit(pos, cell, source, True, kind=kind, grade_id=grade_id, where=where)
    u.binds = set(info.binds)
    try:
        tree = ast.parse(strip_magics(source))
    except SyntaxError:
        tree = None
    reads = global_uses(source, tree) if tree is not None else set(info.uses)
    u.top_reads = set(reads)
    u.body_reads = set(reads)
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    name = alias.asname or alias.name.split(".")[0]
                    u.modules[name] = alias.name if alias.asname else name
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    if is_module(f"{node.module}.{alias.name}"):
                        u.modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return u


# ----------------------------------------------------------------------------- slices
class Slicer:
    """Answers "which units does this unit's result depend on?" for one submission."""

    def __init__(self, units: list[Unit]):
        self.units = units
        self.binders: dict[str, list[int]] = {}
        self.mutators: dict[str, list[int]] = {}
        for i, u in enumerate(units):
            for name in u.binds:
                self.binders.setdefault(name, []).append(i)
            for name in u.mutates:
                self.mutators.setdefault(name, []).append(i)
        self._cache: dict[frozenset[int], frozenset[int]] = {}

    def binding(self, name: str, before: int) -> int | None:
        """Index of the last unit before position ``before`` that binds ``name``."""
        idx = self.binders.get(name, [])
        k = bisect.bisect_left(idx, before)
        return idx[k - 1] if k else None

    def module_alias(self, name: str, at: int) -> str | None:
        """The module ``name`` stands for at position ``at`` (None: not a module there)."""
        b = self.binding(name, at)
        if b is None:
            return None
        return self.units[b].modules.get(name)

    def closure(self, *roots: int) -> frozenset[int]:
        """Every unit the results of the ``roots`` depend on (the roots included)."""
        key = frozenset(roots)
        if key in self._cache:
            return self._cache[key]
        included: set[int] = set()
        seen: set[tuple[int, int]] = set()
        work: list[tuple[str, int, int]] = []

        def add(i: int, obs: int) -> None:
            if (i, obs) in seen:
                return
            seen.add((i, obs))
            included.add(i)
            v = self.units[i]
            work.extend((n, i, i) for n in v.top_reads)
            work.extend((n, obs, obs) for n in v.body_reads)

        for root in roots:
            add(root, root)
        done: set[tuple[str, int, int]] = set()
        while work:
            item = work.pop()
            if item in done:
                continue
            done.add(item)
            name, at, obs = item
            b = self.binding(name, at)
            if b is None:
                continue
            add(b, obs)
            if name in self.units[b].modules:
                continue  # a module: changing it is vetted, never followed
            for m in self.mutators.get(name, []):
                if b < m < at:
                    add(m, obs)
        result = frozenset(included)
        self._cache[key] = result
        return result


def interference(slicer: Slicer, test: int, slice_: frozenset[int],
                 running: set[int]) -> set[int]:
    """Student units outside ``slice_`` that run before the test and may change what it
    reads (they call or touch a name the slice's student code binds). They are vetted with
    the test's exercise, so running the union of all slices in one kernel is safe."""
    units = slicer.units
    own = set()
    for i in slice_:
        u = units[i]
        if not u.trusted:
            own |= {n for n in u.binds if n not in u.modules}
    if not own:
        return set()
    extra: set[int] = set()
    for r in sorted(running):
        if r >= test or r in slice_:
            continue
        reach = {i for i in slicer.closure(r) if not units[i].trusted and i not in slice_}
        touched: set[str] = set()
        for i in reach:
            v = units[i]
            touched |= v.top_reads | v.body_reads | v.mutates | v.globals_written
        if touched & own:
            extra |= reach
    return extra
