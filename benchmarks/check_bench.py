"""Wall time of ``python -m autograde check`` on each solution notebook (warm expectations
cache) and which execution path ran it (warm forked kernel or cold kernel); then the same
check with ``--keep-warm``: once to start the keeper (``autograde/keepwarm.py``), and the
figure of the check after it, which forks from the kept parent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from autograde.course import assignments
from autograde.grader import expectations


def _check(path, env, *extra) -> tuple[float, dict]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "autograde", "check", str(path), "--json",
                           *extra], capture_output=True, check=True, text=True, env=env)
    return round(time.monotonic() - t0, 2), json.loads(proc.stdout)


def run(verbose: bool = True) -> dict:
    cold, warm, kept, paths = {}, {}, {}, {}
    with tempfile.TemporaryDirectory() as runtime:  # this run's keepers only
        os.chmod(runtime, 0o700)
        env = dict(os.environ, XDG_RUNTIME_DIR=runtime)
        for a in assignments():
            t0 = time.monotonic()
            expectations(a, refresh=True)
            cold[a.name] = round(time.monotonic() - t0, 1)
            warm[a.name], rep = _check(a.source, env)
            paths[a.name] = rep.get("execution")
            try:
                _check(a.source, env, "--keep-warm", "--warm-minutes", "5")  # starts the keeper
                kept[a.name], again = _check(a.source, env, "--keep-warm", "--warm-minutes", "5")
            finally:
                subprocess.run([sys.executable, "-m", "autograde", "stop-warm"], env=env,
                               capture_output=True, check=False)
            if again["score"] != rep["score"]:
                raise SystemExit(f"{a.name}: --keep-warm scored {again['score']}, "
                                 f"without it {rep['score']}")
            if verbose:
                print(f"  {a.name}: check {warm[a.name]} s, {paths[a.name]}; next check with "
                      f"a kept parent {kept[a.name]} s (expectations built once: "
                      f"{cold[a.name]} s)", flush=True)
    return {"check_seconds": warm, "check_kept_warm_seconds": kept, "check_execution": paths,
            "expectations_seconds": cold}
