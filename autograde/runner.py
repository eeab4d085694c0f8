"""Execute a list of code cells in a (sandboxed) kernel and collect what each produced.

Every cell gets a deadline. A cell that runs past it is interrupted (and, if the kernel does
not answer, the kernel is killed). When the kernel dies, whether from a crash, the memory
limit or a kill, it is restarted and the cells that defined things before the failure are run
again, so a crash in one exercise does not erase the credit for the others.

A kernel is either cold (a new sandbox and interpreter, :func:`autograde.sandbox.start_kernel`)
or warm: forked by a :class:`autograde.forkserver.ForkServer` that has already imported the
course. ``run_cells`` takes a server when the caller has one; when it cannot be used the
session starts a cold kernel instead, and says which ran (``KernelSession.execution``).
"""

from __future__ import annotations

import os
import queue
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from course_utils.testing import RECORD_MIME

from .forkserver import ForkUnavailable
from .sandbox import SandboxConfig, start_kernel

COLD, WARM = "cold kernel", "warm forked kernel"

MAX_TEXT = 4000
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MAX_RECORDS_PER_CELL = 2000
MEMORY_PATTERNS = ("MemoryError", "can't allocate memory", "Unable to allocate",
                   "std::bad_alloc", "Cannot allocate memory", "out of memory")


@dataclass
class CellJob:
    index: int
    source: str
    kind: str  # "setup" (ordinary or answer cell) or "test"
    grade_id: str | None = None
    trusted: bool = False  # taken from the instructor's solution, not written by the student


@dataclass
class CellResult:
    index: int
    status: str = "ok"  # ok | error | timeout | kernel_died | memory_exceeded | skipped
    ename: str | None = None
    evalue: str | None = None
    traceback: str | None = None
    records: list = field(default_factory=list)
    stdout: str = ""
    seconds: float = 0.0

    def short_error(self) -> str:
        if self.status == "timeout":
            return "the cell did not finish within the time limit (an endless loop?)"
        if self.status == "kernel_died":
            return "the kernel crashed while running this cell"
        if self.status == "memory_exceeded":
            return f"the cell ran out of memory ({self.ename or 'memory limit'})"
        if self.status == "skipped":
            return "not run: the notebook's total time limit was used up"
        if self.ename:
            first = (self.evalue or "").strip().splitlines()
            return f"{self.ename}: {first[0] if first else ''}".strip().rstrip(":")
        return ""


class KernelSession:
    """One kernel, restartable, executing cells with deadlines."""

    def __init__(self, workdir: Path, sandbox: SandboxConfig, mode: str, cwd: Path | None = None,
                 pool=None):
        self.workdir = Path(workdir)
        self.sandbox = sandbox
        self.mode = mode
        self.cwd = cwd
        self.pool = pool  # a ForkServer, or None for cold kernels
        self.folder = "k-" + os.urandom(6).hex()  # this submission's folder in the pool
        self.km = self.kc = None
        self.flags: list[str] = []
        self.restarts = 0
        self.execution: str | None = None

    def start(self) -> None:
        if self.pool is not None:
            try:
                got = None
                if self.execution is None:  # a new submission: nothing of the last one stays
                    got = self.pool.take_prespawned(self.mode, self.sandbox.memory_mb)
                    if got is None:
                        self.pool.reset()
                if got is not None:  # forked (after a reset) while the caller planned
                    self.folder, self.km, self.kc = got
                else:
                    self.km, self.kc = self.pool.start_kernel(self.folder, self.mode,
                                                              self.sandbox.memory_mb)
                self.execution = self.execution or WARM
                self._add_flags(self.pool.flags)
                return
            except ForkUnavailable as exc:
                self.pool = None
                self.flags.append(f"cold_fallback: the warm kernel pool failed ({exc}); "
                                  "a cold kernel ran")
        self.km, self.kc = start_kernel(self.workdir, self.sandbox, self.mode, self.cwd)
        self.execution = COLD
        self._add_flags(getattr(self.km, "flags", []))

    def _add_flags(self, flags) -> None:
        for flag in flags:
            if flag not in self.flags:
                self.flags.append(flag)

    def stop(self) -> None:
        if self.kc is not None:
            try:
                self.kc.stop_channels()
            except Exception:  # noqa: BLE001 - best effort on shutdown
                pass
        if self.km is not None:
            try:
                self.km.shutdown_kernel(now=True)
            except Exception:  # noqa: BLE001
                pass
        self.km = self.kc = None

    def restart(self) -> None:
        self.stop()
        self.restarts += 1
        self.start()

    def alive(self) -> bool:
        try:
            return self.km is not None and self.km.is_alive()
        except Exception:  # noqa: BLE001
            return False

    def execute(self, source: str, timeout: float) -> CellResult:
        result = CellResult(index=-1)
        start = time.monotonic()
        msg_id = self.kc.execute(source, store_history=False, allow_stdin=False)
        deadline = start + max(timeout, 0.5)
        text: list[str] = []
        done = False
        while not done:
            now = time.monotonic()
            if now > deadline:
                result.status = "timeout"
                self._interrupt_or_kill()
                break
            try:
                msg = self.kc.get_iopub_msg(timeout=min(0.5, deadline - now + 0.01))
            except queue.Empty:
                if not self.alive():
                    result.status = "kernel_died"
                    break
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            mtype, content = msg["msg_type"], msg["content"]
            if mtype == "stream":
                if sum(map(len, text)) < MAX_TEXT:
                    text.append(content.get("text", ""))
            elif mtype in ("display_data", "execute_result", "update_display_data"):
                data = content.get("data", {})
                if RECORD_MIME in data and len(result.records) < MAX_RECORDS_PER_CELL:
                    result.records.append(data[RECORD_MIME])
            elif mtype == "error":
                result.status = "error"
                result.ename = str(content.get("ename", ""))[:200]
                result.evalue = str(content.get("evalue", ""))[:2000]
                result.traceback = ANSI.sub("", "\n".join(content.get("traceback", [])))[-MAX_TEXT:]
            elif mtype == "status" and content.get("execution_state") == "idle":
                done = True
        result.stdout = "".join(text)[:MAX_TEXT]
        result.seconds = time.monotonic() - start
        if result.status == "error" and _looks_like_memory(result):
            result.status = "memory_exceeded"
        if result.status == "kernel_died" and self.sandbox.isolate:
            # the kernel usually dies at the memory limit when a C library cannot allocate
            result.evalue = result.evalue or "the kernel process ended"
        return result

    def _interrupt_or_kill(self) -> None:
        try:
            self.km.interrupt_kernel()
            end = time.monotonic() + 5
            while time.monotonic() < end:
                try:
                    msg = self.kc.get_iopub_msg(timeout=0.5)
                except queue.Empty:
                    continue
                if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                    return
        except Exception:  # noqa: BLE001
            pass
        self.restart_needed = True
        try:
            self.km.kill_kernel()
        except Exception:  # noqa: BLE001
            pass


def _looks_like_memory(result: CellResult) -> bool:
    blob = f"{result.ename} {result.evalue}"
    return any(p in blob for p in MEMORY_PATTERNS)


def run_cells(jobs: list[CellJob], workdir: Path, sandbox: SandboxConfig, mode: str,
              cell_timeout: float, total_timeout: float, pool=None,
              ) -> tuple[list[CellResult], list[str], str | None]:
    """Run ``jobs`` in order; returns one result per job, the session's flags and which
    kind of kernel ran (:data:`COLD` or :data:`WARM`; cold if it fell back midway)."""
    session = KernelSession(workdir, sandbox, mode, pool=pool)
    results: list[CellResult] = []
    replay: list[str] = []  # sources of setup cells that ran without error, for restarts
    flags: list[str] = []
    end = time.monotonic() + total_timeout
    try:
        session.start()
        for job in jobs:
            remaining = end - time.monotonic()
            if remaining <= 0:
                results.append(CellResult(index=job.index, status="skipped"))
                continue
            if not session.alive() or getattr(session, "restart_needed", False):
                session.restart_needed = False
                _recover(session, replay, min(remaining, cell_timeout * 2))
            res = session.execute(job.source, min(cell_timeout, remaining))
            res.index = job.index
            results.append(res)
            if res.status in ("kernel_died", "timeout") or not session.alive():
                session.restart_needed = True
            elif job.kind == "setup" and res.status == "ok":
                replay.append(job.source)
        flags.extend(session.flags)
        if session.restarts:
            flags.append(f"kernel_restarted: {session.restarts} time(s) after a crash or "
                         "timeout; earlier definitions were re-run")
    finally:
        session.stop()
    return results, flags, session.execution


def _recover(session: KernelSession, replay: list[str], budget: float) -> None:
    session.restart()
    end = time.monotonic() + budget
    for source in replay:
        left = end - time.monotonic()
        if left <= 0:
            break
        res = session.execute(source, left)
        if res.status in ("timeout", "kernel_died"):
            session.restart_needed = True
            break
