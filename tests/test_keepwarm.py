"""``check --keep-warm`` (issue 16): a keeper holds the warm sandboxed parent between checks.
A check's student code leaves nothing the next check sees, a second check meanwhile gets its
own parent, only this user can reach the keeper, changed code gets a new keeper, and keepers
end when idle, when their parent fails, or on ``stop-warm``. Real bubblewrap, real kernels.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import by_exercise, check_json, run_autograde
from test_forkserver import assert_clean, cmdline, probe, run
from test_isolation import GOOD, make  # noqa: F401 - fixture

from autograde import keepwarm
from autograde.forkserver import ForkServer, ForkUnavailable, fork_disabled_reason
from autograde.runner import COLD, WARM
from autograde.sandbox import SandboxConfig

pytestmark = pytest.mark.skipif(fork_disabled_reason() is not None,
                                reason=f"warm path off: {fork_disabled_reason()}")

SANDBOX = SandboxConfig(memory_mb=2048)


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    """A private runtime folder for this test's keepers; every keeper left is stopped."""
    folder = tmp_path / "runtime"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    yield folder
    for pid in keepwarm.stop_all():
        _wait_gone(pid)


def _wait_gone(pid: int, seconds: float = 30.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if b"autograde.keepwarm" not in cmdline(pid):
            return True
        time.sleep(0.1)
    return False


def _keeper_pids(runtime: Path) -> list[int]:
    return sorted(int(p.read_text()) for p in (runtime / "tug-warm").glob("*.pid"))


def test_the_next_check_forks_from_the_kept_parent_and_sees_nothing_of_the_last(runtime):
    first = keepwarm.kept_pool(SANDBOX, minutes=2)
    assert isinstance(first, keepwarm.KeptServer)
    results, _, execution = run(first, """
import os, subprocess, sys, numpy as np, course_utils.testing as t
np.pi = 3.0
t.check_close = lambda *a, **k: None
open('/tmp/numpy.py', 'w').write('pi = 3')
open('/dev/shm/evil', 'w').write('x')
subprocess.Popen([sys.executable, '-c', 'import time\\nwhile True: time.sleep(0.1)'],
                 start_new_session=True)
print('tampered')
""")
    assert execution == WARM and "tampered" in results[0].stdout, results
    keeper = first.keeper_pid
    first.close()

    second = keepwarm.kept_pool(SANDBOX, minutes=2)
    assert isinstance(second, keepwarm.KeptServer) and second.keeper_pid == keeper
    try:
        assert_clean(probe(second), str(second.workdir))
    finally:
        second.close()
    assert _keeper_pids(runtime) == [keeper]


def test_a_check_meanwhile_gets_its_own_parent(runtime):
    holder = keepwarm.kept_pool(SANDBOX, minutes=2)
    assert isinstance(holder, keepwarm.KeptServer)
    holder.wait_ready()
    notes = []
    other = keepwarm.kept_pool(SANDBOX, minutes=2, notes=notes)
    try:
        assert isinstance(other, ForkServer) and not isinstance(other, keepwarm.KeptServer)
        assert len(notes) == 1 and "busy" in notes[0], notes
        results, _, execution = run(other, "print('own parent')")
        assert execution == WARM and "own parent" in results[0].stdout
    finally:
        other.close()
        holder.close()


def test_a_child_that_kills_the_parent_ends_the_keeper(runtime):
    kept = keepwarm.kept_pool(SANDBOX, minutes=2)
    results, flags, execution = run(kept, "import os, signal\nos.kill(os.getppid(), 9)",
                                    "print('second cell')")
    kept.close()
    assert results[1].status == "ok" and "second cell" in results[1].stdout, results
    assert execution == COLD and any("cold_fallback" in f for f in flags), flags
    assert _wait_gone(kept.keeper_pid)
    fresh = keepwarm.kept_pool(SANDBOX, minutes=2)  # a new keeper, a new parent
    try:
        assert isinstance(fresh, keepwarm.KeptServer) and fresh.keeper_pid != kept.keeper_pid
        assert_clean(probe(fresh), str(fresh.workdir))
    finally:
        fresh.close()


def test_keepers_end_when_idle_and_on_stop_warm(runtime):
    short = keepwarm.kept_pool(SANDBOX, minutes=0.05)  # 3 s
    short.wait_ready()
    short.close()
    assert _wait_gone(short.keeper_pid, 60)
    assert list((runtime / "tug-warm").glob("*.sock")) == []

    kept = keepwarm.kept_pool(SandboxConfig(memory_mb=1024), minutes=5)
    kept.wait_ready()
    kept.close()
    assert keepwarm.stop_all() == [kept.keeper_pid]
    assert _wait_gone(kept.keeper_pid)
    assert list((runtime / "tug-warm").glob("*.pid")) == []


def test_a_folder_others_can_open_is_refused(runtime):
    folder = runtime / "tug-warm"
    folder.mkdir(mode=0o700)
    os.chmod(folder, 0o755)
    with pytest.raises(ForkUnavailable, match="mode 0700"):
        keepwarm.state_dir()
    notes = []
    pool = keepwarm.kept_pool(SANDBOX, minutes=2, notes=notes)  # a parent of its own
    try:
        assert isinstance(pool, ForkServer) and not isinstance(pool, keepwarm.KeptServer)
        assert len(notes) == 1 and "not a folder of mode 0700" in notes[0], notes
    finally:
        pool.close()
    assert list(folder.iterdir()) == []


def test_the_key_follows_the_code_and_the_sandbox(tmp_path, monkeypatch):
    code = tmp_path / "module.py"
    code.write_text("x = 1\n")
    monkeypatch.setattr(keepwarm, "_code_files", lambda: [code])
    before = keepwarm.keeper_key(SANDBOX)
    assert keepwarm.keeper_key(SandboxConfig(memory_mb=2048)) == before
    assert keepwarm.keeper_key(SandboxConfig(memory_mb=1024)) != before
    assert keepwarm.keeper_key(SandboxConfig(memory_mb=2048, hide=[tmp_path])) != before
    code.write_text("x = 2  # edited\n")
    assert keepwarm.keeper_key(SANDBOX) != before


def test_the_keeper_answers_only_its_four_requests(runtime):
    kept = keepwarm.kept_pool(SANDBOX, minutes=2)
    try:
        with pytest.raises(ForkUnavailable, match="unknown request 'quit'"):
            kept.request("quit")
        assert kept.request("reset") == {"ok": True}
    finally:
        kept.close()


@pytest.mark.slow
def test_check_keep_warm_grades_as_a_check_of_its_own(make, mini_course, runtime):  # noqa: F811
    nb = make("fair", answers={"sigmoid": GOOD})
    env = {"TUG_COURSE_ROOT": str(mini_course), "XDG_RUNTIME_DIR": str(runtime)}
    plain = check_json(nb, env)
    first = check_json(nb, env, extra=["--keep-warm", "--warm-minutes", "2"])
    keepers = _keeper_pids(runtime)
    second = check_json(nb, env, extra=["--keep-warm", "--warm-minutes", "2"])
    assert len(keepers) == 1 and _keeper_pids(runtime) == keepers
    for rep in (plain, first, second):
        assert rep["execution"] == WARM
        assert by_exercise(rep) == {"square": 3.0, "sigmoid": 3.0, "predict_depth": 1.0}
    assert [t["message"] for t in second["tests"]] == [t["message"] for t in plain["tests"]]
    out = run_autograde(["stop-warm"], env=env)
    assert out.returncode == 0 and "stopped 1 warm kernel parent" in out.stdout, out
    assert _wait_gone(keepers[0])


def test_no_sandbox_sees_the_keepers_sockets(monkeypatch):
    import shutil
    import uuid

    folder = Path.home() / f".tug-test-runtime-{uuid.uuid4().hex[:8]}"  # not under /tmp
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    try:
        kept = keepwarm.kept_pool(SANDBOX, minutes=2)
        assert isinstance(kept, keepwarm.KeptServer)
        try:
            assert any(p.suffix == ".sock" for p in (folder / "tug-warm").iterdir())
            results, _, execution = run(kept, f"""
import os, socket
print(sorted(os.listdir({str(folder / "tug-warm")!r})))
""")
            assert execution == WARM and results[0].stdout.strip() == "[]", results
        finally:
            kept.close()
    finally:
        for pid in keepwarm.stop_all():
            _wait_gone(pid)
        shutil.rmtree(folder, ignore_errors=True)
