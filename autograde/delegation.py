"""Static check, in the trusted process, that an exercise is not delegated to a reference.

An exercise's answer cell in ``solutions/`` may carry ``metadata["tug"]["forbid"]``: names it
must not use (the torch function it re-implements, ``course_utils``'s reference). We parse the
student's code (never run it) and follow which top-level names the exercise's cell uses, into
any other cell the student wrote that defines them, transitively. A forbidden name in that
scope, or dynamic code we cannot follow (``eval``, ``exec``, ``__import__``, ``importlib``,
``getattr`` with a computed name, ...), gives the exercise 0 points.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

DYNAMIC_NAMES = {"eval", "exec", "compile", "__import__", "globals", "locals", "vars",
                 "__builtins__", "importlib", "builtins", "__dict__", "__getattribute__"}


@dataclass
class CellCode:
    key: str  # grade_id or "cell N"
    source: str
    tree: ast.AST | None = None
    defines: set[str] = field(default_factory=set)
    uses: set[str] = field(default_factory=set)
    dotted: list[str] = field(default_factory=list)
    dynamic: list[str] = field(default_factory=list)


def _strip_magics(source: str) -> str:
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        lines.append("" if stripped.startswith(("%", "!")) else line)
    return "\n".join(lines)


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    elif isinstance(node, ast.Call):
        parts.append("()")
    else:
        parts.append("?")
    return ".".join(reversed(parts))


def analyse(key: str, source: str) -> CellCode:
    cell = CellCode(key, source)
    try:
        cell.tree = ast.parse(_strip_magics(source))
    except SyntaxError:
        return cell
    for node in ast.walk(cell.tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            cell.defines.add(node.name)
        elif isinstance(node, ast.arg):
            cell.defines.add(node.arg)
        elif isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Store):
                cell.defines.add(node.id)
            else:
                cell.uses.add(node.id)
            if node.id in DYNAMIC_NAMES:
                cell.dynamic.append(node.id)
        elif isinstance(node, ast.Attribute):
            d = _dotted(node)
            cell.dotted.append(d)
            # attributes: only the dunder ways around a name (model.eval(), re.compile() are
            # ordinary methods)
            if (node.attr in DYNAMIC_NAMES and node.attr.startswith("__")) \
                    or d == "sys.modules" or node.attr in ("__globals__", "__code__"):
                cell.dynamic.append(d)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                cell.dotted.append(alias.name)
                cell.defines.add((alias.asname or alias.name).split(".")[0])
                if alias.name.split(".")[0] in DYNAMIC_NAMES:
                    cell.dynamic.append(alias.name)
                if alias.name == "sys" and alias.asname not in (None, "sys"):
                    cell.dynamic.append(f"import sys as {alias.asname}")
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            for alias in node.names:
                cell.dotted.append(f"{mod}.{alias.name}" if mod else alias.name)
                cell.defines.add(alias.asname or alias.name)
            if mod.split(".")[0] in DYNAMIC_NAMES:
                cell.dynamic.append(mod)
            if mod == "sys" and any(a.name == "modules" for a in node.names):
                cell.dynamic.append("sys.modules")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) > 1:
                name = node.args[1]
                if isinstance(name, ast.Constant) and isinstance(name.value, str):
                    cell.dotted.append(f"{_dotted(node.args[0])}.{name.value}")
                else:
                    cell.dynamic.append(f"{node.func.id}(..., <computed name>)")
    return cell


def matches(dotted: str, entry: str) -> bool:
    if entry.startswith("."):
        return dotted.endswith(entry) or dotted == entry[1:]
    return dotted == entry or dotted.startswith(entry + ".") or dotted.endswith("." + entry)


def scope_for(exercise_cell: CellCode, others: list[CellCode]) -> list[CellCode]:
    """The exercise's cell plus every student cell defining a name it uses, transitively."""
    scope = [exercise_cell]
    pending = exercise_cell.uses - exercise_cell.defines
    seen_names: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen_names:
            continue
        seen_names.add(name)
        for cell in others:
            if cell not in scope and name in cell.defines:
                scope.append(cell)
                pending |= cell.uses - cell.defines
    return scope


def violations(exercise: str, forbid: list[str], cells: dict[str, CellCode]) -> list[str]:
    """Messages explaining why ``exercise`` counts as delegated (empty list: it does not)."""
    mine = cells.get(exercise)
    if mine is None or not forbid:
        return []
    others = [c for k, c in cells.items() if k != exercise]
    found = []
    for cell in scope_for(mine, others):
        for d in cell.dotted:
            for entry in forbid:
                if matches(d, entry):
                    found.append(f"uses `{d}` (in {cell.key}), which does the exercise's work; "
                                 "write it yourself")
        for d in cell.dynamic:
            found.append(f"uses dynamic code `{d}` (in {cell.key}) that the grader cannot "
                         "check; call functions directly")
    return sorted(set(found))
