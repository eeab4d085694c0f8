"""Warm forked kernels (issue 16): a child forked from the sandboxed warm parent cannot change
what a sibling computes, a child that hangs or eats memory dies alone, and the report says
which path ran. Real bubblewrap, real kernels; the student code here runs directly in the
kernel (no vetting in front), so these hold for anything a slice could do.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import by_exercise, check_json
from test_isolation import GOOD, make  # noqa: F401 - fixture

from autograde.forkserver import ForkServer, fork_disabled_reason
from autograde.runner import COLD, WARM, CellJob, run_cells
from autograde.sandbox import SandboxConfig

pytestmark = pytest.mark.skipif(fork_disabled_reason() is not None,
                                reason=f"warm path off: {fork_disabled_reason()}")


@pytest.fixture(scope="module")
def server():
    with ForkServer(SandboxConfig(memory_mb=2048)) as fs:
        yield fs


def run(server, *sources, timeout=20.0, memory_mb=2048):
    """Run ``sources`` as the cells of one submission; (results, flags, execution)."""
    jobs = [CellJob(i, src, "setup") for i, src in enumerate(sources)]
    with tempfile.TemporaryDirectory() as tmp:
        return run_cells(jobs, Path(tmp), SandboxConfig(memory_mb=memory_mb), "record",
                         timeout, 120.0, pool=server)


def probe(server) -> dict:
    """What a fresh sibling sees: module objects, writable places, other processes."""
    results, _, execution = run(server, """
import json, os, numpy as np, torch, course_utils.testing as t
here = os.path.dirname(os.getcwd())
pool = os.path.dirname(here)
procs = []
for p in os.listdir('/proc'):
    if p.isdigit() and int(p) not in (1, os.getppid(), os.getpid()):
        try:
            procs.append(open(f'/proc/{p}/cmdline', 'rb').read().replace(b'\\0', b' ').decode())
        except OSError:
            pass
print(json.dumps({
    'pi': np.pi, 'sqrt': np.sqrt(4.0), 'torch_sigmoid': float(torch.sigmoid(torch.tensor(0.0))),
    'check_close': t.check_close.__module__, 'mode': t.get_mode(),
    'tmp': sorted(os.listdir('/tmp')), 'shm': sorted(os.listdir('/dev/shm')),
    'run': sorted(os.listdir('/run')), 'cwd': sorted(os.listdir('.')),
    'pool': sorted(set(os.listdir(pool)) - {os.path.basename(here), 'forkserver.log'}),
    'home': sorted(os.listdir(os.path.expanduser('~'))), 'procs': procs,
    'sysv': [row for kind in ('shm', 'msg', 'sem')
             for row in open(f'/proc/sysvipc/{kind}').read().splitlines()[1:]],
}))
""")
    assert results[0].status == "ok", results[0]
    assert execution == WARM
    return json.loads(results[0].stdout.strip().splitlines()[-1])


def code_mounts_in_tmp() -> list[str]:
    """Entries of /tmp the sandbox binds read-only because code lives there (the interpreter,
    the virtual environment or a clone of the course under /tmp, as on a CI machine)."""
    import autograde
    import course_utils

    names = set()
    for p in (Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent,
              Path(course_utils.__file__).parent, Path(autograde.__file__).parent):
        parts = p.resolve().parts
        if parts[:2] == ("/", "tmp") and len(parts) > 2:
            names.add(parts[2])
    return sorted(names)


def assert_clean(seen: dict, pool: str) -> None:
    assert seen["pi"] == pytest.approx(3.141592653589793)
    assert seen["sqrt"] == 2.0 and seen["torch_sigmoid"] == 0.5
    assert seen["check_close"] == "course_utils.testing" and seen["mode"] == "record"
    pool_mount = [os.path.basename(pool)] if Path(pool).parent == Path("/tmp") else []
    assert seen["tmp"] == sorted({*pool_mount, *code_mounts_in_tmp()}), seen
    assert seen["shm"] == [] and seen["run"] == [] and seen["cwd"] == [], seen
    assert seen["pool"] == [] and seen["home"] == [], seen
    assert seen["procs"] == [] and seen["sysv"] == [], seen


def test_a_fresh_child_sees_a_clean_sandbox(server):
    assert_clean(probe(server), str(server.workdir))


def test_module_objects_written_by_one_child_are_not_a_siblings(server):
    results, _, execution = run(server, """
import numpy as np, torch, course_utils.testing as t, sys
np.pi = 3.0
np.sqrt = lambda x: 42
torch.sigmoid = lambda x: torch.tensor(1.0)
t.check_close = lambda *a, **k: None
t.set_mode('assert')
sys.modules['numpy'].pi = 3.0
print('tampered')
""")
    assert results[0].status == "ok" and "tampered" in results[0].stdout
    assert execution == WARM
    assert_clean(probe(server), str(server.workdir))


def test_files_written_by_one_child_are_gone_for_the_next(server):
    results, _, _ = run(server, """
import os
open('/tmp/numpy.py', 'w').write('pi = 3')
os.makedirs('/tmp/locked', exist_ok=True); open('/tmp/locked/x', 'w').write('x')
os.chmod('/tmp/locked', 0)
open('/dev/shm/evil', 'w').write('x')
open('/run/evil', 'w').write('x')
open('left_in_cwd.py', 'w').write('x')
import ctypes  # System V IPC objects outlive their process
libc = ctypes.CDLL(None)
assert libc.shmget(1234, 4096, 0o1666) >= 0 and libc.msgget(55, 0o1666) >= 0
os.makedirs(os.path.expanduser('~/.ipython/profile_default/startup'), exist_ok=True)
pool = os.path.dirname(os.path.dirname(os.getcwd()))
for name in ('k-next', 'planted'):  # a folder a sibling might be given
    os.makedirs(os.path.join(pool, name, 'ipython', 'profile_default', 'startup'),
                exist_ok=True)
    open(os.path.join(pool, name, 'ipython', 'profile_default', 'startup', '0.py'),
         'w').write('import numpy; numpy.pi = 3')
print('written')
""")
    assert results[0].status == "ok" and "written" in results[0].stdout, results[0]
    assert_clean(probe(server), str(server.workdir))


def test_a_child_cannot_reach_the_parents_memory_or_capabilities(server):
    results, _, _ = run(server, """
import os
ppid = os.getppid()
out = []
for what, mode in (('mem', 'r+b'), ('maps', 'r'), ('environ', 'r')):
    try:
        open(f'/proc/{ppid}/{what}', mode).read(1)
        out.append(f'{what}: opened')
    except OSError as exc:
        out.append(f'{what}: {type(exc).__name__}')
cap = [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')][0]
out.append(f'cap: {cap}')
print('|'.join(out))
""")
    text = results[0].stdout.strip()
    assert "mem: PermissionError" in text and "maps: PermissionError" in text, text
    assert "environ: PermissionError" in text, text
    if os.geteuid() == 0:
        assert "cap: 0000000000000000" in text, text  # root in bwrap keeps none of them
    assert_clean(probe(server), str(server.workdir))


def test_the_parent_holds_no_shared_writable_mapping(server):
    server.wait_ready()
    pids = descendants(server.proc.pid)
    parents = [p for p in pids if b"autograde.forkserver" in cmdline(p)
               and not cmdline(p).startswith(b"bwrap")]
    assert len(parents) == 1, pids
    try:
        maps = Path(f"/proc/{parents[0]}/maps").read_text()
    except PermissionError:
        pytest.skip("this user may not read the (non-dumpable) parent's maps")
    shared = [line for line in maps.splitlines() if line.split()[1].endswith("s")
              and "w" in line.split()[1]]
    assert shared == []


def test_leftover_processes_cannot_tamper_later(server):
    results, _, _ = run(server, """
import os, subprocess, sys
code = ("import os, time\\n"
        "time.sleep(1)\\n"
        "for root, dirs, files in os.walk(os.path.dirname(os.path.dirname(os.getcwd()))):\\n"
        "    for d in dirs:\\n"
        "        try: open(os.path.join(root, d, 'late.txt'), 'w').write('x')\\n"
        "        except OSError: pass\\n"
        "open('/tmp/late', 'w').write('x')\\n")
subprocess.Popen([sys.executable, '-c', code])  # same process group
subprocess.Popen([sys.executable, '-c', code], start_new_session=True)  # setsid'd
if os.fork() == 0:  # a double-forked, setsid'd grandchild
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable,
                 [sys.executable, '-c', 'import time\\nwhile True: time.sleep(0.1)'])
    os._exit(0)
print('spawned')
""")
    assert "spawned" in results[0].stdout, results[0]
    seen = probe(server)
    assert_clean(seen, str(server.workdir))
    # and later: nothing of the first child is still there to write into the second's folders
    later, _, _ = run(server, "import time, os\ntime.sleep(2)\n"
                      "print(sorted(os.listdir('/tmp')), sorted(os.listdir('.')))")
    assert "late" not in later[0].stdout, later[0].stdout


def test_an_endless_loop_is_interrupted_on_the_control_channel(server):
    server.reset()
    km, kc = server.start_kernel("k-interrupt", "record", 2048)
    try:
        msg_id = kc.execute("print('looping', flush=True)\nwhile True:\n    pass")
        while True:  # interrupt once the loop runs (sooner, ipykernel itself would catch it)
            msg = kc.get_iopub_msg(timeout=30)
            if msg["msg_type"] == "stream" and "looping" in msg["content"]["text"]:
                break
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=60)
        while reply["parent_header"].get("msg_id") != msg_id:  # late kernel_info replies
            reply = kc.get_shell_msg(timeout=60)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert km.is_alive()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert not km.is_alive()


def test_a_hanging_child_is_killed_alone_and_the_next_works(server):
    results, flags, execution = run(
        server, "x = 1",
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
        "print('after', x)", timeout=3)
    assert execution == WARM
    assert [r.status for r in results] == ["ok", "timeout", "ok"], results
    assert "after 1" in results[2].stdout  # restarted from the warm parent, x replayed
    assert any(f.startswith("kernel_restarted") for f in flags), flags
    assert server.alive()
    assert_clean(probe(server), str(server.workdir))


def test_a_child_at_the_memory_limit_dies_alone(server):
    results, _, _ = run(server, "import numpy as np\nbig = np.ones(2**31)",
                        "blob = bytearray(3 * 2**30)", "print('still here')")
    assert [r.status for r in results] == ["memory_exceeded", "memory_exceeded", "ok"], results
    assert server.alive()
    assert_clean(probe(server), str(server.workdir))


def test_a_child_that_kills_the_parent_only_loses_the_warm_start(server):
    with ForkServer(SandboxConfig(memory_mb=2048)) as own:
        results, flags, execution = run(own, "import os, signal\n"
                                        "os.kill(os.getppid(), signal.SIGKILL)",
                                        "print('second cell')")
        assert results[1].status == "ok" and "second cell" in results[1].stdout, results
        assert execution == COLD and any("cold_fallback" in f for f in flags), flags
        assert not own.alive()
    assert_clean(probe(server), str(server.workdir))


@pytest.mark.slow
def test_report_says_which_path_ran_and_cold_grades_identically(make, mini_course):  # noqa: F811
    nb = make("fair", answers={"sigmoid": GOOD})
    env = {"TUG_COURSE_ROOT": str(mini_course)}
    warm = check_json(nb, env)
    cold = check_json(nb, dict(env, TUG_NO_FORK="1"))
    assert warm["execution"] == WARM and cold["execution"] == COLD
    assert by_exercise(warm) == by_exercise(cold) == {"square": 3.0, "sigmoid": 3.0,
                                                      "predict_depth": 1.0}
    assert [t["message"] for t in warm["tests"]] == [t["message"] for t in cold["tests"]]


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            kids = []
        todo += [int(k) for k in kids]
    return out
