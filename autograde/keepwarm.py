"""A warm parent that outlives one ``check``: ``python -m autograde check --keep-warm``.

Every ``check`` forks its kernel from a warm sandboxed parent (:mod:`autograde.forkserver`),
and a parent started by the ``check`` itself spends its first seconds importing torch and the
course before any cell can run. With ``--keep-warm`` (what ``make check`` passes) that parent
is handed to a small keeper process that stays for ``--keep-warm`` idle minutes (default
``KEEP_MINUTES``), so the next ``check`` of a notebook in the same folder forks at once.

* **One keeper per (Python, code, sandbox).** Its key digests the interpreter, the installed
  packages' folder, every file of ``autograde`` and ``course_utils`` (path, size, time), the
  course root and the sandbox (memory limit, hidden paths). Changed code gets a new keeper; the
  old one ends when idle.
* **Only its user reaches it.** It listens on a Unix socket in ``$XDG_RUNTIME_DIR/tug-warm``
  (or ``/tmp/tug-warm-UID``), a folder of mode 0700 whose owner is checked, and it checks each
  caller's uid (``SO_PEERCRED``). The folder is not bound into any sandbox.
* **One check at a time.** A second ``check`` meanwhile is told the keeper is busy and starts
  its own short-lived parent.
* **Nothing of one check reaches the next.** The keeper forwards the fork server's four
  requests (spawn, poll, kill, reset) and nothing else. When a ``check`` disconnects it
  resets the parent: every child is killed and ``/tmp``, ``/dev/shm``, ``/run``, System V IPC
  and the working folder are wiped, as between two students in ``grade``. The parent is the
  same sandboxed, non-dumpable process whose children cannot write to it.
* **It ends** after its idle minutes, when its parent fails, on SIGTERM, or with
  ``python -m autograde stop-warm``. Class grading (``grade``) never uses it: each worker
  keeps its own parent for the class.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .forkserver import ForkServer, ForkUnavailable, fork_disabled_reason

KEEP_MINUTES = 10.0
CONNECT_TIMEOUT = 2.0  # for the keeper's first line (busy or not)
START_TIMEOUT = 10.0  # for a new keeper's socket to appear
OPS = ("spawn", "poll", "kill", "reset")
KEEPER_LOG = "keeper.log"


def keeper_folder() -> Path:
    """Where this user's keepers listen (it may not exist). Every sandbox hides it
    (:meth:`autograde.sandbox.SandboxConfig.secrets`)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "tug-warm" if runtime and Path(runtime).is_dir() else \
        Path(tempfile.gettempdir()) / f"tug-warm-{os.getuid()}"


def state_dir(create: bool = True) -> Path:
    """The keepers' folder: private to this user, or an error saying why it is not."""
    base = keeper_folder()
    if create:
        try:
            base.mkdir(mode=0o700)
        except FileExistsError:
            pass
    st = os.lstat(base)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise ForkUnavailable(f"{base} is not a folder of mode 0700 owned by this user; "
                              "remove it and check again")
    return base


def _code_files() -> list[Path]:
    import course_utils

    here = Path(__file__).resolve().parent
    files = []
    for root in (here, Path(course_utils.__file__).resolve().parent):
        files += sorted(root.rglob("*.py"))
    return files


def keeper_key(sandbox) -> str:
    """The digest that names the keeper for ``sandbox`` and the code as it is now."""
    import sysconfig

    from .course import course_root

    h = hashlib.sha256()
    purelib = Path(sysconfig.get_paths()["purelib"])
    parts = [sys.executable, sys.version, str(course_root()), str(sandbox.memory_mb),
             str(sandbox.isolate), *sorted(str(Path(p).resolve()) for p in sandbox.hide),
             str(purelib.stat().st_mtime_ns) if purelib.exists() else "",
             os.environ.get("PYTHONPATH", ""), os.environ.get("TUG_COURSE_ROOT", "")]
    for f in _code_files():
        st = f.stat()
        parts.append(f"{f}:{st.st_size}:{st.st_mtime_ns}")
    h.update("\n".join(parts).encode())
    return h.hexdigest()[:20]


# ============================================================================ the check's side
class KeptServer(ForkServer):
    """The ``check``'s end of a keeper: a :class:`ForkServer` whose requests travel over the
    keeper's socket. ``close`` only disconnects (the keeper then resets its parent)."""

    def __init__(self, sock: socket.socket, hello: dict):  # noqa: D107 - no parent to start
        self.sock = sock
        self.proc = None
        self.workdir = None
        self.started = time.monotonic()
        self.ready_seconds = None
        self._buf = b""
        self._ready = False
        self.children = 0
        self.flags: list[str] = []
        self.keeper_pid = int(hello.get("pid", 0))

    def _fd(self) -> int:
        return self.sock.fileno()

    def _send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def wait_ready(self, timeout: float = 120.0) -> None:
        if self._ready:
            return
        msg = self._readline(timeout)
        if not msg.get("ready"):
            raise ForkUnavailable(f"the kept warm parent failed: {msg.get('error')}")
        self.flags = list(msg.get("flags", []))
        self.workdir = Path(msg["workdir"]) if msg.get("workdir") else None
        self._ready = True
        self.ready_seconds = round(time.monotonic() - self.started, 2)

    def alive(self) -> bool:
        return self.sock is not None

    def close(self) -> None:
        self._join_prespawn()
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None


def _connect(path: Path) -> KeptServer | None:
    """A connection to the keeper at ``path`` if it runs and is free, else None."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path))
        s.settimeout(CONNECT_TIMEOUT)
        got = b""
        while b"\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                raise OSError("the keeper closed the connection")
            got += chunk
        s.settimeout(None)
        first, rest = got.split(b"\n", 1)
        hello = json.loads(first)
    except (OSError, ValueError):
        s.close()
        return None
    if hello.get("busy") or not hello.get("hello"):
        s.close()
        return None
    server = KeptServer(s, hello)
    server._buf = rest  # the ready line may have come with the hello
    return server


def kept_pool(sandbox, minutes: float = KEEP_MINUTES, notes: list[str] | None = None
              ) -> ForkServer | None:
    """The kept warm parent for ``sandbox`` (a keeper is started now when none runs, so this
    check pays its start-up and the next one does not). When it is busy or cannot be used:
    a short-lived parent, as without ``--keep-warm`` (or None: grade cold), and a line in
    ``notes`` that says why."""
    from .forkserver import short_lived_pool

    notes = [] if notes is None else notes
    reason = fork_disabled_reason()
    if reason:
        notes.append(f"--keep-warm: no warm parent can run here ({reason}); cold kernel")
        return None
    try:
        folder = state_dir()
        key = keeper_key(sandbox)
        path = folder / f"{key}.sock"
        server = _connect(path)
        if server is None and not _keeper_running(folder, key):
            _start_keeper(folder, key, sandbox, minutes)
            end = time.monotonic() + START_TIMEOUT
            while server is None and time.monotonic() < end:
                time.sleep(0.02)
                if path.exists():
                    server = _connect(path)
        if server is not None:
            return server
        notes.append("--keep-warm: the kept parent is busy with another check (or did not "
                     "start); this check started its own")
    except (OSError, ForkUnavailable) as exc:
        notes.append(f"--keep-warm: {exc}; this check started its own parent")
    return short_lived_pool(sandbox)


def _keeper_running(folder: Path, key: str) -> bool:
    pid = _read_pid(folder / f"{key}.pid")
    return pid is not None and _is_keeper(pid)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _is_keeper(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"autograde.keepwarm" in cmd and os.stat(f"/proc/{pid}").st_uid == os.getuid()


def _start_keeper(folder: Path, key: str, sandbox, minutes: float) -> None:
    config = {"memory_mb": sandbox.memory_mb, "hide": [str(p) for p in sandbox.hide],
              "isolate": sandbox.isolate}
    here = str(Path(__file__).resolve().parent.parent)  # importable from any folder
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (here, os.environ.get("PYTHONPATH", "")) if p))
    with open(folder / KEEPER_LOG, "ab") as log:
        subprocess.Popen([sys.executable, "-m", "autograde.keepwarm", str(folder), key,
                          json.dumps(config), str(minutes)],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                         start_new_session=True, close_fds=True, cwd=str(folder))


def stop_all() -> list[int]:
    """SIGTERM to every keeper of this user; their pids."""
    try:
        folder = state_dir(create=False)
    except (OSError, ForkUnavailable):
        return []
    stopped = []
    for pidfile in folder.glob("*.pid"):
        pid = _read_pid(pidfile)
        if pid is not None and _is_keeper(pid):
            try:
                os.kill(pid, signal.SIGTERM)
                stopped.append(pid)
            except ProcessLookupError:
                pass
    return stopped


# ============================================================================ the keeper
class _Stop(Exception):
    pass


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def keep(folder: str, key: str, config: dict, minutes: float) -> int:
    """The keeper's life: one warm parent, one check at a time, until idle for ``minutes``."""
    import fcntl

    from .sandbox import SandboxConfig

    base = Path(folder)
    lock = open(base / f"{key}.lock", "w")  # noqa: SIM115 - held for the keeper's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another keeper of this key runs
    path, pidfile = base / f"{key}.sock", base / f"{key}.pid"
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(8)
    pidfile.write_text(str(os.getpid()))

    def on_term(signum, frame):
        raise _Stop

    signal.signal(signal.SIGTERM, on_term)
    sandbox = SandboxConfig(memory_mb=int(config["memory_mb"]),
                            hide=[Path(p) for p in config["hide"]],
                            isolate=bool(config["isolate"]))
    server = None
    try:
        server = ForkServer(sandbox)
        spare = None  # the first check started this keeper: it forks its own kernel
        idle_until = time.monotonic() + minutes * 60
        while time.monotonic() < idle_until:
            ready, _, _ = select.select([listener], [], [],
                                        max(0.0, idle_until - time.monotonic()))
            if not ready:
                break
            conn, _ = listener.accept()
            if _peer_uid(conn) != os.getuid():
                conn.close()
                continue
            healthy = _serve_one(conn, server, listener, spare)
            spare = _fork_spare(server) if healthy else None
            if not healthy:
                break
            idle_until = time.monotonic() + minutes * 60
    except (_Stop, ForkUnavailable, OSError) as exc:
        print(f"keeper {key}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    finally:
        if _read_pid(pidfile) == os.getpid():
            pidfile.unlink(missing_ok=True)
            path.unlink(missing_ok=True)
        listener.close()
        if server is not None:
            server.close()
    return 0


def _send_line(conn: socket.socket, msg: dict) -> None:
    conn.sendall((json.dumps(msg) + "\n").encode())


def _fork_spare(server: ForkServer) -> dict | None:
    """Fork the next check's kernel now, right after the reset, so that it has started by
    the time that check asks (nothing but the kernel's own start-up runs in it before)."""
    try:
        msg = server.request("spawn", folder="k-" + os.urandom(6).hex(), mode="record",
                             memory_mb=server.sandbox.memory_mb)
    except ForkUnavailable:
        return None
    return {**msg, "mode": "record", "memory_mb": server.sandbox.memory_mb}


def _spare_alive(server: ForkServer, spare: dict) -> bool:
    try:
        return bool(server.request("poll", pid=spare["pid"])["alive"])
    except ForkUnavailable:
        return False


def _serve_one(conn: socket.socket, server: ForkServer, listener: socket.socket,
               spare: dict | None = None) -> bool:
    """Serve one check until it disconnects, then reset the parent. False when the parent can
    no longer be trusted to be clean (the keeper then ends).

    ``spare`` is a kernel forked right after the last reset: the check's first ``reset``
    finds nothing to clean but it, and its first ``spawn`` (same mode and memory limit) gets
    it. Any other request first lets it go (the parent kills it at the next clean-up)."""
    healthy = True
    try:
        _send_line(conn, {"hello": True, "busy": False, "pid": os.getpid()})
        try:
            server.wait_ready()
            _send_line(conn, {"ready": True, "flags": list(server.flags),
                              "seconds": server.ready_seconds, "workdir": str(server.workdir)})
        except ForkUnavailable as exc:
            _send_line(conn, {"ready": False, "error": str(exc)})
            return False
        buf = b""
        while True:
            ready, _, _ = select.select([conn, listener], [], [])
            if conn in ready:  # first: a check that just ended lets the next one in
                chunk = conn.recv(65536)
                if not chunk:
                    break
                buf += chunk
            if listener in ready:  # another check meanwhile: it starts its own parent
                other, _ = listener.accept()
                try:
                    _send_line(other, {"hello": True, "busy": True})
                except OSError:
                    pass
                other.close()
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    req = json.loads(line)
                    op = req.pop("op")
                except (ValueError, KeyError, AttributeError):
                    _send_line(conn, {"error": "not a request"})
                    continue
                if op not in OPS:
                    _send_line(conn, {"error": f"unknown request {op!r}"})
                    continue
                if spare is not None and not _spare_alive(server, spare):
                    spare = None
                if spare is not None and op == "reset":
                    _send_line(conn, {"ok": True})  # only the spare runs, and it stays
                    continue
                if spare is not None and op == "spawn" and \
                        (req.get("mode"), req.get("memory_mb")) == (spare["mode"],
                                                                    spare["memory_mb"]):
                    _send_line(conn, {"pid": spare["pid"],
                                      "connection_file": spare["connection_file"]})
                    spare = None
                    continue
                spare = None
                try:
                    _send_line(conn, server.request(op, **req))
                except ForkUnavailable as exc:
                    healthy = False
                    _send_line(conn, {"error": str(exc)})
    except OSError:
        pass
    finally:
        conn.close()
        if healthy:
            try:
                server.reset()  # nothing of this check's children is left for the next
            except ForkUnavailable:
                healthy = False
    return healthy and server.alive()


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: python -m autograde.keepwarm FOLDER KEY CONFIG MINUTES "
                 "(started by `python -m autograde check --keep-warm`)")
    sys.exit(keep(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4])))
