"""Warm forked kernels: one sandboxed parent that has imported the course, forking a kernel per
submission (see ``autograde/ISOLATION.md``, "Warm forked kernels").

Starting a kernel costs seconds (a new sandbox, a new interpreter, ``import torch``), while a
student's cells run in well under a second. The parent (``python -m autograde.forkserver``)
starts once, inside the same bubblewrap sandbox and under the same rlimits as a cold kernel
(:func:`autograde.sandbox.sandbox_command`), imports numpy, torch, matplotlib (Agg), IPython,
ipykernel and ``course_utils`` without starting a thread, and then serves one JSON request per
line on its stdin (answers on its stdout):

* ``spawn``: kill every other process of the sandbox, empty ``/tmp``, ``/dev/shm`` and
  ``/run``, then fork a child that becomes an ``IPKernelApp`` with a fresh connection file
  (ZeroMQ ``ipc`` sockets in its own folder), its own session, rlimits, random seeds and
  record mode. Children run one at a time.
* ``reset``: the same clean-up, and the whole working folder emptied (between submissions).
* ``poll`` / ``kill``: a child's exit status; SIGKILL to a child's process group.

The parent is non-dumpable (a child cannot open ``/proc/<parent>/mem`` or ptrace it; under
root bubblewrap also drops every capability), keeps its request pipe on descriptors the
children close, and holds no shared writable mapping, so a child changes nothing a sibling
sees. The grading process talks to a child with an ordinary ``BlockingKernelClient``; the
:class:`ForkedKernelManager` gives :class:`autograde.runner.KernelSession` the few manager
methods it uses.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARENT_LOG = "forkserver.log"
READY_TIMEOUT = 120.0
REQUEST_TIMEOUT = 30.0
WRITABLE = ("/tmp", "/dev/shm", "/run")
FSIZE = 256 * 1024 * 1024


class ForkUnavailable(Exception):
    """The warm path cannot be used; the caller grades with a cold kernel instead."""


def fork_disabled_reason() -> str | None:
    """Why the warm path is off on this machine, or None when it can run."""
    from .sandbox import bwrap_works

    if os.environ.get("TUG_NO_FORK"):
        return "TUG_NO_FORK is set"
    if not sys.platform.startswith("linux"):
        return "fork server needs Linux"
    if not bwrap_works():  # without a PID namespace the parent could not kill leftovers
        return "bubblewrap unavailable"
    return None


def short_lived_pool(sandbox) -> ForkServer | None:
    """A fork server for one ``check`` (the caller closes it), or None: grade cold."""
    try:
        return ForkServer(sandbox)
    except ForkUnavailable:
        return None


# ============================================================================ grading side
class ForkServer:
    """A sandboxed warm parent, started at once and waited for on first use."""

    def __init__(self, sandbox, mode: str = "record"):
        from .sandbox import kernel_env, sandbox_command

        reason = fork_disabled_reason()
        if reason:
            raise ForkUnavailable(reason)
        self.sandbox = sandbox
        self.mode = mode
        self.workdir = Path(tempfile.mkdtemp(prefix="tug-fork-"))
        self.started = time.monotonic()
        self.ready_seconds: float | None = None
        self._buf = b""
        self._ready = False
        self.children = 0
        cmd, self.flags = sandbox_command(sandbox, self.workdir,
                                          [sys.executable, "-m", "autograde.forkserver",
                                           str(self.workdir)])
        env = kernel_env(self.workdir, mode)
        self._log = open(self.workdir / PARENT_LOG, "ab")  # noqa: SIM115 - closed in close()
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self._log, env=env,
                                         cwd=str(self.workdir / "cwd"))
        except OSError as exc:
            self.close()
            raise ForkUnavailable(f"could not start the fork server: {exc}") from None

    # -- protocol (JSON lines; a subclass may carry them over another channel)
    def _fd(self) -> int:
        return self.proc.stdout.fileno()

    def _send(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def _readline(self, timeout: float) -> dict:
        end = time.monotonic() + timeout
        fd = self._fd()
        while b"\n" not in self._buf:
            left = end - time.monotonic()
            if left <= 0:
                raise ForkUnavailable("the fork server did not answer in time")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise ForkUnavailable("the fork server ended"
                                          f" (exit status {self.proc.poll()})")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            raise ForkUnavailable(f"the fork server said {line[:200]!r}") from None

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        if self._ready:
            return
        msg = self._readline(timeout)
        if not msg.get("ready"):
            raise ForkUnavailable(f"the fork server failed to start: {msg.get('error')}")
        self._ready = True
        self.ready_seconds = round(time.monotonic() - self.started, 2)

    def request(self, op: str, timeout: float = REQUEST_TIMEOUT, **args) -> dict:
        self.wait_ready()
        try:
            self._send((json.dumps({"op": op, **args}) + "\n").encode())
        except (BrokenPipeError, OSError, ValueError):
            raise ForkUnavailable("the fork server ended") from None
        msg = self._readline(timeout)
        if "error" in msg:
            raise ForkUnavailable(f"fork server: {msg['error']}")
        return msg

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- kernels
    def reset(self) -> None:
        """Kill every child and empty every writable place (between submissions). A server
        that cannot is closed, never reused: its owner starts a new one."""
        try:
            self.request("reset")
        except ForkUnavailable:
            self.close()
            raise

    def start_kernel(self, folder: str, mode: str, memory_mb: int):
        """Fork a kernel child in ``folder`` (created if new) and return (manager, client)."""
        self._join_prespawn()
        msg = self.request("spawn", folder=folder, mode=mode, memory_mb=memory_mb)
        self.children += 1
        return self._connect_kernel(msg)

    def prespawn(self, mode: str, memory_mb: int) -> None:
        """Reset and fork the next submission's kernel now, on a thread, so that its start
        overlaps the caller's planning; :meth:`take_prespawned` hands it over."""
        import threading

        self._join_prespawn()
        folder = "k-" + os.urandom(6).hex()
        box: dict = {"folder": folder, "mode": mode, "memory_mb": memory_mb}

        def work() -> None:
            try:
                self.reset()
                box["msg"] = self.request("spawn", folder=folder, mode=mode,
                                          memory_mb=memory_mb)
            except Exception as exc:  # noqa: BLE001 - the session starts its kernel itself
                box["error"] = exc

        self._prespawn = box
        self._prespawn_thread = threading.Thread(target=work, daemon=True)
        self._prespawn_thread.start()

    def _join_prespawn(self) -> dict | None:
        import threading

        thread = getattr(self, "_prespawn_thread", None)
        if thread is threading.current_thread():  # a failed reset on it closes the server
            return None
        if thread is not None:
            thread.join()
            self._prespawn_thread = None
        box, self._prespawn = getattr(self, "_prespawn", None), None
        return box

    def take_prespawned(self, mode: str, memory_mb: int):
        """The kernel :meth:`prespawn` forked, as (folder, manager, client), if it was forked
        for this mode and memory limit; else None (an unused one dies at the next reset)."""
        box = self._join_prespawn()
        if not box or "msg" not in box or (box["mode"], box["memory_mb"]) != (mode, memory_mb):
            return None
        self.children += 1
        km, kc = self._connect_kernel(box["msg"])
        return box["folder"], km, kc

    def _connect_kernel(self, msg: dict):
        km = ForkedKernelManager(self, msg["pid"], msg["connection_file"])
        kc = _client_class()(connection_file=msg["connection_file"])
        kc.manager = km
        kc.load_connection_file()
        kc.start_channels(hb=False)  # alive means the process runs, as for a cold kernel
        km.client_ = kc
        try:
            wait_for_kernel(kc, km, timeout=60)
        except RuntimeError as exc:
            kc.stop_channels()
            km.kill_kernel()
            raise ForkUnavailable(f"a forked kernel did not start: {exc}") from None
        return km, kc

    def close(self) -> None:
        self._join_prespawn()
        proc = getattr(self, "proc", None)
        if proc is not None:
            if proc.poll() is None:
                # bubblewrap's init dies with it (--die-with-parent), and with the init the
                # whole PID namespace: the parent, its children, anything they left
                proc.kill()
                proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass
        self._log.close() if hasattr(self, "_log") else None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ForkServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def wait_for_kernel(kc, km, timeout: float) -> None:
    """Return once the kernel answers on its shell channel and its IOPub reaches us.

    ``BlockingKernelClient.wait_for_ready`` does the same and then drains IOPub until it has
    been quiet for 0.2 s, which every check paid; here the reply's own idle status on IOPub
    proves the subscription (a message published before it took effect is lost, so the
    request is sent again until one arrives). Older messages left on IOPub do no harm: the
    runner reads only the messages of its own requests."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        msg_id = kc.kernel_info()
        try:
            reply = kc.get_shell_msg(timeout=1)
        except queue.Empty:
            if not km.is_alive():
                raise RuntimeError("the kernel died before it answered") from None
            continue
        if reply.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        quiet_until = time.monotonic() + 0.5
        while time.monotonic() < quiet_until:
            try:
                msg = kc.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                continue
            if msg.get("parent_header", {}).get("msg_id") == msg_id and \
                    msg["msg_type"] == "status" and \
                    msg["content"].get("execution_state") == "idle":
                return
    raise RuntimeError(f"the kernel did not answer in {timeout:g} s")


@functools.lru_cache(maxsize=1)
def _client_class():
    from jupyter_client import BlockingKernelClient

    class ForkedKernelClient(BlockingKernelClient):
        """Asks the fork server whether the kernel lives, not the heartbeat (which a loaded
        machine can miss; a cold kernel's client asks its manager the same way)."""

        manager = None

        def is_alive(self) -> bool:
            return self.manager.is_alive() if self.manager else super().is_alive()

    return ForkedKernelClient


class ForkedKernelManager:
    """The part of ``KernelManager`` that :class:`autograde.runner.KernelSession` uses, for a
    kernel forked by a :class:`ForkServer`."""

    def __init__(self, server: ForkServer, pid: int, connection_file: str):
        self.server = server
        self.pid = pid
        self.connection_file = connection_file
        self.flags: list[str] = []
        self.client_ = None
        self._dead = False

    def is_alive(self) -> bool:
        if self._dead:
            return False
        try:
            self._dead = not self.server.request("poll", pid=self.pid)["alive"]
        except ForkUnavailable:
            self._dead = True
        return not self._dead

    def interrupt_kernel(self) -> None:
        # like SandboxedKernelManager: ask the kernel itself, on its control channel
        kc = self.client_
        kc.control_channel.send(kc.session.msg("interrupt_request", content={}))

    def kill_kernel(self) -> None:
        if not self._dead:
            self._dead = True
            try:
                self.server.request("kill", pid=self.pid)
            except ForkUnavailable:
                pass

    def shutdown_kernel(self, now: bool = True) -> None:
        self.kill_kernel()


# ============================================================================ sandboxed parent
def _prctl_nondumpable() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE = 4
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def _warm_imports() -> None:
    import pkgutil

    import matplotlib

    matplotlib.use("Agg")
    import ipykernel.ipkernel  # noqa: F401
    import ipykernel.kernelapp  # noqa: F401
    import IPython  # noqa: F401
    import jupyter_client.connect  # noqa: F401
    import matplotlib.pyplot  # noqa: F401
    import numpy  # noqa: F401
    import torch  # noqa: F401
    import torch.nn.functional  # noqa: F401

    import course_utils

    for mod in pkgutil.walk_packages(course_utils.__path__, "course_utils."):
        try:
            __import__(mod.name)
        except Exception:  # noqa: BLE001 - a module that needs more than a kernel has
            pass
    try:
        import matplotlib_inline.backend_inline  # noqa: F401
    except ImportError:
        pass


def _mounts() -> list[str]:
    out = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            out.append(line.split()[4].replace("\\040", " "))
    return out


def _wipe(folder: str, mounts: list[str], keep: tuple[str, ...] = ()) -> None:
    """Delete everything under ``folder`` except mount points (and what leads to them)."""
    def fix(func, path, exc, depth=0):  # a child made a folder unreadable: undo, retry
        try:
            os.chmod(os.path.dirname(path), 0o700)
            os.chmod(path, 0o700, follow_symlinks=False)
        except (OSError, NotImplementedError):
            pass
        try:
            if func in (os.rmdir, os.unlink, os.remove):
                func(path)
            elif depth < 50:
                shutil.rmtree(path, onerror=lambda f, p, e: fix(f, p, e, depth + 1))
        except OSError:
            pass

    try:
        os.chmod(folder, 0o1777 if folder in WRITABLE else 0o700)
        entries = os.listdir(folder)
    except OSError:
        return
    for name in entries:
        if name in keep:
            continue
        path = os.path.join(folder, name)
        if path in mounts:
            continue
        if any(m.startswith(path + "/") for m in mounts):
            _wipe(path, mounts)
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, onerror=fix)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


def _kill_others() -> None:
    """SIGKILL to every process of the sandbox but this one and bubblewrap's init (kill(-1)
    inside a PID namespace), until none is left: leftovers, setsid'd grandchildren, all."""
    me = os.getpid()
    for _ in range(200):
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while True:  # reap our own children
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        others = [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]
        alive = []
        for p in others:
            try:
                with open(f"/proc/{p}/stat") as fh:
                    state = fh.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state not in ("Z", "X"):
                alive.append(p)
        if not alive:
            return
        time.sleep(0.01)
    raise RuntimeError(f"processes left in the sandbox after SIGKILL: {alive}")


def _remove_sysv_ipc() -> None:
    """Remove the System V shared memory, semaphores and message queues a child left in the
    sandbox's IPC namespace."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for kind, remove in (("shm", libc.shmctl), ("sem", libc.semctl), ("msg", libc.msgctl)):
        try:
            with open(f"/proc/sysvipc/{kind}") as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            ipc_id = int(row.split()[1])
            if kind == "sem":
                remove(ipc_id, 0, 0)  # IPC_RMID
            else:
                remove(ipc_id, 0, None)


def _clean(workdir: str, whole: bool) -> None:
    _kill_others()
    _remove_sysv_ipc()
    mounts = _mounts()
    for place in WRITABLE:
        _wipe(place, mounts)
    if whole:
        _wipe(workdir, mounts, keep=(PARENT_LOG,))


def _spawn(workdir: str, req: dict, private: tuple[int, int]) -> dict:
    from jupyter_client.connect import write_connection_file

    _clean(workdir, whole=False)
    folder = os.path.join(workdir, os.path.basename(str(req["folder"])))
    for sub in ("home", "ipython", "mpl", "runtime", "cwd"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    cf = os.path.join(folder, "kernel.json")
    if os.path.exists(cf):
        os.unlink(cf)
    key = os.urandom(32).hex().encode()
    write_connection_file(cf, ip=os.path.join(folder, "ipc"), transport="ipc", key=key)
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            _child(folder, cf, str(req.get("mode", "record")), int(req.get("memory_mb", 0)),
                   private)
            code = 0
        finally:
            os._exit(code)
    return {"pid": pid, "connection_file": cf}


def _child(folder: str, cf: str, mode: str, memory_mb: int, private: tuple[int, int]) -> None:
    import random
    import resource

    os.setsid()  # its own session and process group: killed as one
    for fd in private:
        os.close(fd)
    log = os.open(os.path.join(folder, "kernel.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.closerange(3, 65536)
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE, FSIZE))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.environ.update(HOME=os.path.join(folder, "home"),
                      IPYTHONDIR=os.path.join(folder, "ipython"),
                      MPLCONFIGDIR=os.path.join(folder, "mpl"),
                      JUPYTER_RUNTIME_DIR=os.path.join(folder, "runtime"),
                      TUG_TESTING_MODE=mode)
    os.chdir(os.path.join(folder, "cwd"))
    import numpy as np
    import torch

    from course_utils import testing

    random.seed(os.urandom(16))
    np.random.seed(int.from_bytes(os.urandom(4), "little"))
    torch.manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
    testing.set_mode(mode)
    from ipykernel.kernelapp import IPKernelApp

    sys.argv = [sys.executable, "-f", cf]
    IPKernelApp.launch_instance(argv=["-f", cf])


def serve(workdir: str) -> None:
    """The parent's loop (runs inside the sandbox)."""
    t0 = time.monotonic()
    # the request pipe moves to private descriptors that every child closes first
    rfd, wfd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(2, 1)
    out = os.fdopen(wfd, "w", buffering=1)
    inp = os.fdopen(rfd, "r")

    def answer(msg: dict) -> None:
        out.write(json.dumps(msg) + "\n")
        out.flush()

    try:
        _prctl_nondumpable()
        _warm_imports()
        import threading

        if threading.active_count() != 1 or len(os.listdir("/proc/self/task")) != 1:
            raise RuntimeError("an import started a thread; forking would be unsafe")
        os.chdir("/")
    except Exception as exc:  # noqa: BLE001 - reported to the grader, which goes cold
        answer({"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        return
    answer({"ready": True, "pid": os.getpid(), "seconds": round(time.monotonic() - t0, 2)})
    exits: dict[int, int] = {}
    for line in inp:
        try:
            req = json.loads(line)
            op = req.get("op")
            if op == "spawn":
                answer(_spawn(workdir, req, (rfd, wfd)))
            elif op == "poll":
                answer({"alive": _poll(int(req["pid"]), exits)})
            elif op == "kill":
                pid = int(req["pid"])
                for target in (-pid, pid):
                    try:
                        os.kill(target, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                _poll(pid, exits, block=True)
                answer({"killed": pid, "status": exits.get(pid)})
            elif op == "reset":
                _clean(workdir, whole=True)
                exits.clear()
                answer({"ok": True})
            else:
                answer({"error": f"unknown request {op!r}"})
        except Exception as exc:  # noqa: BLE001 - the grader decides what to do
            answer({"error": f"{type(exc).__name__}: {exc}"})
    _kill_others()


def _poll(pid: int, exits: dict[int, int], block: bool = False) -> bool:
    if pid in exits:
        return False
    try:
        got, status = os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        exits[pid] = -1
        return False
    if got == 0:
        return True
    exits[pid] = status
    return False


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m autograde.forkserver WORKDIR (started by the grader)")
    serve(sys.argv[1])
