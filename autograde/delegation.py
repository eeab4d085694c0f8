"""Static vetting, in the trusted process, of the student code an exercise's tests depend on.

Grading runs only the student statements some test needs (see :mod:`autograde.slicing` and
``autograde/ISOLATION.md``). Before they run, every statement of an exercise's slice is read
here (never executed). The exercise gets 0, with a flag that says why, when its slice:

* uses a name its answer cell forbids in ``solutions/`` (``metadata["tug"]["forbid"]``: the
  torch function it re-implements, ``course_utils``'s reference...);
* runs code the grader cannot follow or that reaches the grading machinery: ``eval``,
  ``exec``, ``compile``, ``__import__``, ``getattr``/``setattr``/``delattr``/``hasattr`` with a
  computed name, ``globals()``/``locals()``/``vars()``, dunder attributes (except a few such as
  ``__init__`` and ``__name__``), frames and tracebacks (``tb_frame``, ``f_back``,
  ``f_globals``...), the IPython shell (``get_ipython``, ``display``, ``In``/``Out``), modules
  such as ``inspect``, ``gc``, ``ctypes``, ``builtins``, ``importlib``, ``IPython``,
  the kernel's messaging (``sys`` only for ``sys.stdout``, ``sys.stderr`` and a few
  constants), modules that are not installed (a file the notebook wrote), or the
  test helpers (``course_utils.testing``, ``check_close``...);
* changes a module (``torch.sigmoid = ...``, ``np.random = ...``, ``setattr(np, ...)``) or passes
  a module around as a value (``m = np``, ``patch(torch)``), the only ways to patch one.

A statement outside every slice is not vetted and costs nothing: it never runs.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from dataclasses import dataclass, field

from .slicing import Slicer, Unit
from .slicing import is_module as _is_module

DYNAMIC_NAMES = {"eval", "exec", "compile", "__import__", "globals", "locals", "vars",
                 "breakpoint", "__builtins__", "importlib", "builtins", "__dict__",
                 "__getattribute__"}
SHELL_NAMES = {"get_ipython", "display", "In", "Out", "_ih", "_oh", "_dh", "_i", "_ii",
               "_iii", "__", "___", "__IPYTHON__"}
SHELL_NAME_RE = re.compile(r"^_(i|ii|iii|oh|ih)?\d+$")
HELPER_NAMES = {"check_close", "check_equal", "check_between", "outcome", "warnings_raised",
                "set_mode", "get_mode", "RECORD_MIME", "judge", "decode", "_emit", "_check",
                "_state"}
# ``sys`` itself is allowed for these attributes only (``print(..., file=sys.stderr)``)
SYS_ALLOWED = {"stdout", "stderr", "float_info", "int_info", "maxsize", "version",
               "version_info", "platform", "byteorder", "getsizeof", "float_repr_style"}
# attributes of the kernel's streams and shell that lead to its messaging
KERNEL_ATTRS = {"session", "pub_thread", "iopub_socket", "iopub_thread", "parent_header",
                "comm_manager", "display_pub", "displayhook", "excepthook", "user_ns",
                "user_global_ns", "kernel", "shell"}
DENIED_MODULES = {
    "inspect", "gc", "ctypes", "builtins", "traceback", "linecache", "IPython",
    "ipykernel", "ipywidgets", "jupyter_client", "jupyter_core", "zmq", "comm", "tornado",
    "importlib", "pickle", "marshal", "copyreg", "dill", "cloudpickle", "shelve", "code",
    "codeop", "runpy", "types", "dis", "pdb", "bdb", "faulthandler", "atexit", "signal",
    "site", "tracemalloc", "_thread", "threading", "multiprocessing", "ast", "symtable",
    "nbformat", "nbclient", "nbconvert", "nbgrader", "autograde", "__main__", "cffi",
    "sysconfig", "pkgutil", "zipimport",
}
FRAME_ATTRS = {"tb_frame", "tb_next", "tb_lasti", "f_back", "f_globals", "f_locals",
               "f_builtins", "f_code", "f_trace", "gi_frame", "gi_code", "cr_frame", "cr_code",
               "ag_frame", "ag_code", "co_code", "co_consts", "func_globals", "func_code"}
ALLOWED_DUNDERS = {"__init__", "__name__", "__qualname__", "__doc__"}
ATTR_FUNCTIONS = {"getattr", "setattr", "delattr", "hasattr"}


@dataclass
class Finding:
    text: str
    forbidden: bool = False  # a forbid-list hit (versus a rule every exercise shares)


def _dotted(node: ast.AST) -> str:
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


DTYPE_PREFIX = "dtype:"
DTYPE_CALLS = {"astype", "view", "dtype", "type", "to"}  # whose first argument can be a dtype


def matches(dotted: str, entry: str) -> bool:
    if dotted.startswith(DTYPE_PREFIX) or entry.startswith(DTYPE_PREFIX):
        return dotted == entry  # a dtype string matches only an entry naming that string
    if entry.startswith("."):
        return dotted.endswith(entry) or dotted == entry[1:]
    return dotted == entry or dotted.startswith(entry + ".") or dotted.endswith("." + entry)


def installed(module: str) -> bool:
    top = module.split(".")[0]
    if top in sys.modules or top in sys.stdlib_module_names:
        return True
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def scan(tree: ast.AST, module_at=lambda name: None) -> tuple[list[str], list[str]]:
    """``(dotted names used, rule breaches)`` of one statement.

    ``module_at(name)`` says which module a name stands for where the statement runs."""
    dotted: list[str] = []
    bad: list[str] = []
    parents: dict[ast.AST, ast.AST] = {}
    local: dict[str, str] = {}  # modules imported inside the statement (in a function body)
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.asname or alias.name.split(".")[0]
                local[name] = alias.name if alias.asname else name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                if _is_module(f"{node.module}.{alias.name}"):
                    local[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    outer = module_at

    def module_at(name):  # noqa: F811 - the statement's own imports first
        return local.get(name) or outer(name)

    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            name = node.id
            if name in DYNAMIC_NAMES:
                bad.append(f"uses dynamic code `{name}` that the grader cannot check; call "
                           "functions directly")
            elif name in SHELL_NAMES or SHELL_NAME_RE.match(name):
                bad.append(f"reaches the notebook shell through `{name}`")
            elif name in HELPER_NAMES:
                bad.append(f"touches the test helper `{name}`")
            elif name.startswith("__") and name.endswith("__") and name != "__name__":
                bad.append(f"uses `{name}`")
            elif module_at(name):
                parent = parents.get(node)
                if not (isinstance(parent, ast.Attribute) and parent.value is node):
                    if not isinstance(node.ctx, ast.Store):  # rebinding the name is fine
                        bad.append(f"uses the module `{name}` as a value; call its functions "
                                   "directly")
        elif isinstance(node, ast.Attribute):
            d = _dotted(node)
            dotted.append(d)
            attr = node.attr
            if attr in FRAME_ATTRS:
                bad.append(f"reads frames or tracebacks (`{d}`)")
            elif attr.startswith("__") and attr.endswith("__") and attr not in ALLOWED_DUNDERS:
                bad.append(f"uses the dunder attribute `{d}`")
            elif d == "sys.modules" or "course_utils.testing" in d:
                bad.append(f"reaches `{d}`")
            elif attr in KERNEL_ATTRS:
                bad.append(f"reaches the kernel's messaging through `{d}`")
            if isinstance(node.value, ast.Name) and module_at(node.value.id) == "sys" \
                    and attr not in SYS_ALLOWED:
                bad.append(f"uses `{d}`; of `sys` only {', '.join(sorted(SYS_ALLOWED))} may "
                           "be used")
            if isinstance(node.ctx, ast.Store | ast.Del):
                root = _root_name(node)
                if root and module_at(root):
                    bad.append(f"changes the module attribute `{d}`")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                dotted.append(alias.name)
                bad.extend(_import_rule(alias.name))
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                bad.append("uses a relative import, which a notebook cannot have")
            for alias in node.names:
                full = f"{mod}.{alias.name}" if mod else alias.name
                dotted.append(full)
                if alias.name == "*":
                    bad.append(f"uses `from {mod} import *`; import the names you use")
                if full in ("course_utils.testing", "sys.modules") or alias.name in HELPER_NAMES:
                    bad.append(f"reaches `{full}`")
                elif mod == "sys" and alias.name not in SYS_ALLOWED:
                    bad.append(f"imports `{full}`; of `sys` only "
                               f"{', '.join(sorted(SYS_ALLOWED))} may be used")
            bad.extend(_import_rule(mod))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ATTR_FUNCTIONS:
            fn = node.func.id
            target = node.args[0] if node.args else None
            name = node.args[1] if len(node.args) > 1 else None
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                bad.append(f"uses dynamic code `{fn}(..., <computed name>)` that the grader "
                           "cannot check; call functions directly")
            else:
                dotted.append(f"{_dotted(target)}.{name.value}")
                if name.value.startswith("__") and name.value not in ALLOWED_DUNDERS:
                    bad.append(f"uses `{fn}` with the dunder name {name.value!r}")
                if name.value in FRAME_ATTRS:
                    bad.append(f"reads frames or tracebacks (`{fn}(..., {name.value!r})`)")
            root = _root_name(target) if target is not None else None
            if fn in ("setattr", "delattr") and root and module_at(root):
                bad.append(f"changes an attribute of the module `{root}` with `{fn}`")
        if isinstance(node, ast.Call):
            # a dtype can be named by a string (np.asarray(x, dtype="float16"),
            # x.astype("e")): forbid lists reach those with entries like "dtype:float16"
            named = [k.value for k in node.keywords if k.arg == "dtype"]
            if isinstance(node.func, ast.Attribute) and node.func.attr in DTYPE_CALLS \
                    or isinstance(node.func, ast.Name) and node.func.id in DTYPE_CALLS:
                named += node.args[:1]
            dotted += [f"{DTYPE_PREFIX}{v.value}" for v in named
                       if isinstance(v, ast.Constant) and isinstance(v.value, str)]
    return dotted, sorted(set(bad))


def _root_name(node) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _import_rule(module: str) -> list[str]:
    if not module:
        return []
    top = module.split(".")[0]
    if top in DENIED_MODULES or module == "course_utils.testing" \
            or module.startswith("course_utils.testing."):
        return [f"imports `{module}`, which reaches the interpreter or the grading machinery"]
    if not installed(module):
        return [f"imports `{module}`, which is not an installed package (a file the "
                "notebook wrote?)"]
    return []


def vet(units: list[Unit], slicer: Slicer | None, forbid: list[str]) -> list[Finding]:
    """Findings for the student units of one slice (empty: the slice may run)."""
    student = [u for u in units if not u.trusted]
    imported = _trusted_imports(slicer.units if slicer is not None else [])
    reads: set[str] = set()
    for u in student:
        reads |= u.top_reads | u.body_reads
    out: list[Finding] = []
    for u in student:
        if u.tree is None:
            continue

        def module_at(name, _u=u):
            return slicer.module_alias(name, _u.pos) if slicer is not None else None

        dotted, bad = scan(u.tree, module_at)
        for b in bad:
            out.append(Finding(f"{b} (in {u.where})"))
        # a module import that only the instructor's code reads just supplies the module
        if isinstance(u.tree, ast.Import | ast.ImportFrom) and u.binds <= set(u.modules) \
                and not (u.binds & reads):
            continue
        # a name the instructor's cells import stands for what it imports
        for name in sorted((u.top_reads | u.body_reads) & set(imported)):
            for path in sorted(imported[name] - {name}):
                if any(matches(path, entry) for entry in forbid):
                    out.append(Finding(f"uses `{name}` (in {u.where}), which the instructor's "
                                       f"cells import from `{path}` and which does the "
                                       "exercise's work; write it yourself", forbidden=True))
        for d in dotted:
            for entry in forbid:
                if matches(d, entry):
                    out.append(Finding(f"uses `{d}` (in {u.where}), which does the exercise's "
                                       "work; write it yourself", forbidden=True))
    seen, unique = set(), []
    for f in out:
        if f.text not in seen:
            seen.add(f.text)
            unique.append(f)
    return unique


def _trusted_imports(units: list[Unit]) -> dict[str, set[str]]:
    """Name -> what it imports, for every import statement of the instructor's cells."""
    out: dict[str, set[str]] = {}
    for v in units:
        if not v.trusted or not isinstance(v.tree, ast.Import | ast.ImportFrom):
            continue
        for alias in v.tree.names:
            if isinstance(v.tree, ast.Import):
                name = alias.asname or alias.name.split(".")[0]
                path = alias.name if alias.asname else name
            else:
                name, path = alias.asname or alias.name, f"{v.tree.module}.{alias.name}"
            out.setdefault(name, set()).add(path)
    return out


# ----------------------------------------------------------------------------- compatibility
@dataclass
class CellCode:
    """A whole cell read at once (for scans outside a grading run)."""

    key: str
    source: str
    tree: ast.AST | None = None
    defines: set[str] = field(default_factory=set)
    uses: set[str] = field(default_factory=set)
    dotted: list[str] = field(default_factory=list)
    dynamic: list[str] = field(default_factory=list)


def analyse(key: str, source: str) -> CellCode:
    from .slicing import strip_magics

    cell = CellCode(key, source)
    try:
        cell.tree = ast.parse(strip_magics(source))
    except SyntaxError:
        return cell
    modules: dict[str, str] = {}
    for node in ast.walk(cell.tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                name = a.asname or a.name.split(".")[0]
                modules[name] = a.name if a.asname else name
    cell.dotted, bad = scan(cell.tree, modules.get)
    cell.dynamic = bad
    for node in ast.walk(cell.tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            cell.defines.add(node.name)
        elif isinstance(node, ast.Name):
            (cell.defines if isinstance(node.ctx, ast.Store) else cell.uses).add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for a in node.names:
                cell.defines.add((a.asname or a.name).split(".")[0])
    return cell


def violations(exercise: str, forbid: list[str], cells: dict[str, CellCode]) -> list[str]:
    """Why ``exercise`` (with the whole-cell scope of its answer) would score 0."""
    mine = cells.get(exercise)
    if mine is None:
        return []
    scope, pending, seen = [mine], set(mine.uses - mine.defines), set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        for c in cells.values():
            if c not in scope and name in c.defines:
                scope.append(c)
                pending |= c.uses - c.defines
    found = []
    for c in scope:
        for d in c.dotted:
            found += [f"uses `{d}` (in {c.key}), which does the exercise's work; write it "
                      "yourself" for e in forbid if matches(d, e)]
        found += [f"{b} (in {c.key})" for b in c.dynamic]
    return sorted(set(found))
