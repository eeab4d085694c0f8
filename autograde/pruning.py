"""Which instructor cells a grading run may skip.

A solution notebook is mostly teaching: plots, timings, training runs, widgets. None of that
changes a verdict unless a later cell reads what it defines. Grading runs every cell the
student wrote and every test cell; an instructor's locked cell runs only when a kept cell
(transitively) uses a name it binds, when it changes state it does not own (an attribute or
item of an outer object, a seed, a default dtype, the working folder...), or when it cannot be
analysed (magics, syntax the parser rejects). The expected values still come from a full
trusted run of the solution. ``check`` and ``grade`` share this, and the contract tests prove
on every real notebook that the solution keeps full marks with the skipped cells left out.
"""

from __future__ import annotations

import ast
import symtable
from dataclasses import dataclass

# Calls that change process-wide state a later cell may depend on.
SIDE_EFFECT_CALLS = {
    "set_default_dtype", "set_default_tensor_type", "set_printoptions",
    "seterr", "filterwarnings", "simplefilter", "resetwarnings", "use_deterministic_algorithms",
    "set_num_threads", "set_num_interop_threads", "set_grad_enabled", "chdir", "putenv",
    "setrecursionlimit", "set_flush_denormal", "set_mode", "default_rng_seed", "setattr",
    "delattr", "exec", "eval", "__import__", "import_module",
    "reload", "register_forward_hook",
    "register_full_backward_hook", "register_backward_hook", "register_hook",
}


SEED_CALLS = {"seed", "manual_seed", "manual_seed_all"}
GLOBAL_RNG_MODULES = {"torch", "np", "numpy", "random"}


@dataclass
class CellInfo:
    binds: set[str]
    uses: set[str]
    variables: set[str]  # names this cell binds by assignment (mutable data, not defs/imports)
    pinned: bool  # must run whatever else happens


def analyse(source: str) -> CellInfo:
    if any(line.lstrip().startswith(("%", "!")) for line in source.splitlines()):
        return CellInfo(set(), set(), set(), True)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return CellInfo(set(), set(), set(), True)
    binds: set[str] = set()
    variables: set[str] = set()
    uses: set[str] = set()
    pinned = False
    for stmt in tree.body:  # names bound at the top level of the cell
        for node in top_level_binders(stmt):
            if isinstance(node, ast.Name):
                binds.add(node.id)
                variables.add(node.id)
            elif isinstance(node, str):
                binds.add(node)
    uses = global_uses(source, tree)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            pinned = True
        elif isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", None)
            if name in SEED_CALLS:
                if _base_name(fn) in GLOBAL_RNG_MODULES and not isinstance(
                        getattr(fn, "value", None), ast.Call):
                    pinned = True  # seeds a global generator (torch.manual_seed, np.random.seed)
            elif name in SIDE_EFFECT_CALLS:
                pinned = True  # changes process-wide state
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [
                node.target]
            for t in targets:
                for sub in ast.walk(t):
                    if isinstance(sub, (ast.Attribute, ast.Subscript)):
                        base = _base_name(sub)
                        if base is None or base not in binds:
                            pinned = True  # changes an object from elsewhere
    return CellInfo(binds, uses, variables, pinned)


def global_uses(source: str, tree) -> set[str]:
    """Module-level names the cell reads before it binds them itself (flow-ordered at the top
    level; any global read from inside its functions, classes and comprehensions)."""
    try:
        table = symtable.symtable(source, "<cell>", "exec")
    except (SyntaxError, ValueError):
        return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    top_binds: set[str] = set()
    external: set[str] = set()
    bound: set[str] = set()
    for stmt in tree.body:
        external |= scope_loads(stmt) - bound
        names = {n if isinstance(n, str) else n.id for n in top_level_binders(stmt)}
        bound |= names
        top_binds |= names
    nested: set[str] = set()
    stack = list(table.get_children())
    while stack:
        t = stack.pop()
        for sym in t.get_symbols():
            if sym.is_referenced() and (sym.is_global() or sym.is_declared_global()):
                nested.add(sym.get_name())
        stack.extend(t.get_children())
    return external | (nested - top_binds)


_NEW_SCOPE = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.ListComp,
              ast.SetComp, ast.DictComp, ast.GeneratorExp)


def scope_loads(stmt) -> set[str]:
    """Names read in the module scope by one statement (nested scopes excluded, except what
    they evaluate in the enclosing scope: decorators, defaults, a comprehension's first
    iterable, base classes)."""
    out: set[str] = set()
    stack = [stmt]
    while stack:
        node = stack.pop()
        if isinstance(node, _NEW_SCOPE) and node is not stmt or isinstance(
                node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                stack.extend(node.args.defaults + [d for d in node.args.kw_defaults if d])
                stack.extend(getattr(node, "decorator_list", []))
            elif isinstance(node, ast.ClassDef):
                stack.extend(node.bases + node.keywords + node.decorator_list)
            else:
                stack.append(node.generators[0].iter)
            continue
        if isinstance(node, ast.Name) and (isinstance(node.ctx, ast.Load)):
            out.add(node.id)
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            out.add(node.target.id)
        stack.extend(ast.iter_child_nodes(node))
    return out


def _base_name(node) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.value if not isinstance(node, ast.Call) else node.func
    return node.id if isinstance(node, ast.Name) else None


def top_level_binders(stmt):
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield stmt.name
        return
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        for alias in stmt.names:
            yield (alias.asname or alias.name).split(".")[0]
        return
    # assignments anywhere outside function/class bodies bind module-level names
    stack = [stmt]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            if node is not stmt and not isinstance(node, ast.Lambda):
                yield node.name
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                yield (alias.asname or alias.name).split(".")[0]
            continue
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            continue  # their loop variables are their own
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            yield node
        if isinstance(node, ast.NamedExpr):
            yield node.target
        stack.extend(ast.iter_child_nodes(node))


def prunable(jobs, trusted: list[bool], analyse_trusted=None) -> set[int]:
    """Positions in ``jobs`` of trusted non-test cells that no kept cell needs
    (``analyse_trusted``: :func:`analyse` for trusted cells, cached by the caller)."""
    cached = analyse_trusted or analyse
    infos = [cached(j.source) if t else analyse(j.source) for j, t in zip(jobs, trusted,
                                                                          strict=True)]
    needed: set[str] = set()
    mutable: set[str] = set()  # variables some cell binds; touching them pins a cell
    for info in infos:
        mutable |= info.variables
    skip: set[int] = set()
    for pos in range(len(jobs) - 1, -1, -1):
        job, info = jobs[pos], infos[pos]
        keep = (not trusted[pos] or job.kind == "test" or info.pinned
                or bool(info.binds & needed)
                or bool(info.uses & needed & mutable))  # may mutate what a kept cell reads
        if keep:
            needed |= info.uses
        else:
            skip.add(pos)
    return skip
