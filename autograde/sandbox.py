"""Run an IPython kernel for untrusted student code inside a sandbox.

The kernel is a real ``ipykernel`` started through :mod:`autograde.sandbox_boot`, which sets
resource limits (address space, file size, processes) and starts a new process group.
When bubblewrap (``bwrap``, Debian package ``bubblewrap``) works on the machine, the kernel also
runs in its own network, PID and mount namespaces: no network at all, the whole file system
read-only, ``/tmp`` private, and the course's secrets (``solutions/``, ``.git``, the gradebook,
grading outputs, other students' submissions) replaced by empty folders. The kernel talks to
the grader over Unix sockets in a private working folder (ZeroMQ ``ipc`` transport), which is
why it needs no network.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_client import KernelManager

from .course import CourseError, course_root

DEFAULT_MEMORY_MB = 3072


@functools.lru_cache(maxsize=1)
def bwrap_works() -> bool:
    """True when ``bwrap`` can create the namespaces we need on this machine."""
    exe = shutil.which("bwrap")
    if not exe or os.environ.get("TUG_NO_BWRAP"):
        return False
    try:
        proc = subprocess.run(
            [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
             "--unshare-net", "--unshare-pid", "--die-with-parent", "true"],
            capture_output=True, timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


@dataclass
class SandboxConfig:
    memory_mb: int = DEFAULT_MEMORY_MB
    hide: list[Path] = field(default_factory=list)
    isolate: bool = True  # False only for the trusted run of the instructor's solution

    def secrets(self) -> list[Path]:
        root = course_root()
        paths = [root / "solutions", root / ".git", root / "submitted", root / "autograded",
                 root / "feedback", root / ".autograde-cache", root / "gradebook.db",
                 root / "source", root / "release", root / "exchange"]
        from .keepwarm import keeper_folder  # the sockets of kept warm parents

        keepers = keeper_folder().resolve()
        if not any(keepers.is_relative_to(t) for t in ("/tmp", "/run", "/dev/shm")):
            paths.append(keepers)  # (those three are empty in every sandbox already)
        return [p for p in paths + list(self.hide) if p.exists()]


def notebook_sandbox(path: Path, memory_mb: int, hide=()) -> SandboxConfig:
    """The sandbox for grading the notebook at ``path``: the secrets, ``hide``, and the other
    files beside the submission (other students') when hiding them hides no code."""
    hide = list(hide)
    folder = Path(path).resolve().parent
    if _safe_to_hide(folder):
        hide.append(folder)
    return SandboxConfig(memory_mb=memory_mb, hide=hide)


def _safe_to_hide(folder: Path) -> bool:
    from importlib.util import find_spec  # not ``import numpy``: check starts faster

    import course_utils

    needed = [Path(sys.prefix).resolve(), Path(course_utils.__file__).resolve().parent,
              Path(find_spec("numpy").origin).resolve().parent]
    return not any(n == folder or folder in n.parents for n in needed)


class SandboxedKernelManager(KernelManager):
    """A KernelManager whose kernel process starts inside the sandbox."""

    def __init__(self, *args, sandbox: SandboxConfig, workdir: Path, **kwargs):
        super().__init__(*args, **kwargs)
        self.sandbox = sandbox
        self.workdir = Path(workdir)
        self.flags: list[str] = []

    async def _async_interrupt_kernel(self) -> None:
        # Signals do not cross into bubblewrap's PID namespace: ask the kernel itself.
        msg = self.session.msg("interrupt_request", content={})
        self._connect_control_socket()
        self.session.send(self._control_socket, msg)

    interrupt_kernel = KernelManager.interrupt_kernel

    def format_kernel_cmd(self, extra_arguments=None):
        kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", self.connection_file]
        cmd, flags = sandbox_command(self.sandbox, self.workdir, kernel)
        self.flags += [f for f in flags if f not in self.flags]
        return cmd


BWRAP_UNAVAILABLE = ("sandbox_limited: bubblewrap unavailable, so the kernel ran with "
                     "resource limits only (no network or file-system isolation)")


def sandbox_command(sandbox: SandboxConfig, workdir: Path,
                    inner: list[str]) -> tuple[list[str], list[str]]:
    """The command that runs ``inner`` under the rlimits of :mod:`autograde.sandbox_boot`
    and, when ``sandbox.isolate`` and bubblewrap works, inside bubblewrap with ``workdir`` the
    only writable folder of the host. Returns ``(command, flags)``. Written once: the cold
    kernel and the warm fork server (:mod:`autograde.forkserver`) start the same way."""
    workdir = Path(workdir)
    boot = [sys.executable, "-m", "autograde.sandbox_boot",
            "--memory-mb", str(sandbox.memory_mb if sandbox.isolate else 0), "--", *inner]
    if not sandbox.isolate:
        return boot, []
    if not bwrap_works():
        return boot, [BWRAP_UNAVAILABLE]
    cmd = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
           "--tmpfs", "/tmp", "--tmpfs", "/dev/shm", "--tmpfs", "/run"]
    for path in _code_paths():  # Python and the course's code, if they live under /tmp
        cmd += ["--ro-bind", str(path), str(path)]
    home = Path.home()
    empty: list[str] = []  # tmpfs placeholders, made read-only below: nothing to leave there
    for private in (".ssh", ".gnupg", ".aws", ".config", ".jupyter", ".netrc",
                    ".git-credentials", ".local/share/jupyter"):
        p = home / private
        if p.is_dir():
            cmd += ["--tmpfs", str(p)]
            empty.append(str(p))
        elif p.exists():
            cmd += ["--ro-bind", "/dev/null", str(p)]
    for secret in sandbox.secrets():
        if secret.is_dir():
            cmd += ["--tmpfs", str(secret)]
            empty.append(str(secret))
        else:
            cmd += ["--ro-bind", "/dev/null", str(secret)]
    for path in empty:
        cmd += ["--remount-ro", path]
    cmd += ["--remount-ro", "/dev",  # /dev/shm stays its own writable tmpfs
            "--bind", str(workdir), str(workdir), "--chdir", str(workdir / "cwd"),
            "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--die-with-parent", "--new-session"]
    if os.geteuid() == 0:
        # bubblewrap run by root keeps every capability inside the sandbox (CAP_SYS_ADMIN
        # could remount /, CAP_SYS_PTRACE could read any process's memory): drop them all
        cmd += ["--cap-drop", "ALL"]
    return cmd + ["--", *boot], []


def _code_paths() -> list[Path]:
    """What the kernel must be able to read that a private /tmp, /run or /dev/shm would hide:
    the interpreter, the virtual environment and the course's packages (a clone in /tmp)."""
    import course_utils

    candidates = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent,
                  Path(course_utils.__file__).resolve().parent, Path(__file__).resolve().parent]
    hidden = (Path("/tmp"), Path("/run"), Path("/dev/shm"))
    out: list[Path] = []
    for p in candidates:
        p = p.resolve()
        if any(h == p or h in p.parents for h in hidden) and p not in out:
            out.append(p)
    return out


def kernel_env(workdir: Path, record_mode: str) -> dict[str, str]:
    """A small, explicit environment for the kernel (nothing secret is inherited)."""
    keep = ("PATH", "LANG", "LC_ALL", "VIRTUAL_ENV", "PYTHONHASHSEED", "TZ")
    env = {k: v for k, v in os.environ.items() if k in keep}
    for sub in ("home", "ipython", "mpl", "runtime", "cwd"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(workdir / "home"),
        IPYTHONDIR=str(workdir / "ipython"),
        MPLCONFIGDIR=str(workdir / "mpl"),
        JUPYTER_RUNTIME_DIR=str(workdir / "runtime"),
        MPLBACKEND="Agg",
        TUG_STATIC_WIDGETS="1",
        TUG_TESTING_MODE=record_mode,
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONDONTWRITEBYTECODE="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    return env


def start_kernel(workdir: Path, sandbox: SandboxConfig, record_mode: str, cwd: Path | None = None):
    """Start a kernel and return ``(manager, client)``; the caller shuts it down."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    km = SandboxedKernelManager(
        sandbox=sandbox, workdir=workdir, transport="ipc", ip=str(workdir / "kernel-ipc"),
        connection_file=str(workdir / "kernel.json"),
    )
    env = kernel_env(workdir, record_mode)
    log = open(workdir / "kernel.log", "ab")  # noqa: SIM115 - lives as long as the kernel
    km.start_kernel(env=env, cwd=str(cwd or (workdir / "cwd")), stdout=log, stderr=log)
    log.close()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=90)
    except RuntimeError as exc:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        raise CourseError(
            f"could not start the grading kernel ({exc}). Check that this Python "
            f"({sys.executable}) has ipykernel installed; set TUG_NO_BWRAP=1 to run "
            "without bubblewrap if the sandbox itself fails on this machine."
        ) from None
    return km, kc
