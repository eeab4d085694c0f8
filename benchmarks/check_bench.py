"""Wall time of ``python -m autograde check`` on each solution notebook (warm expectations
cache), and which execution path ran it (warm forked kernel or cold kernel)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from autograde.course import assignments
from autograde.grader import expectations


def run(verbose: bool = True) -> dict:
    cold, warm, paths = {}, {}, {}
    for a in assignments():
        t0 = time.monotonic()
        expectations(a, refresh=True)
        cold[a.name] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "autograde", "check", str(a.source),
                               "--json"], capture_output=True, check=True, text=True)
        warm[a.name] = round(time.monotonic() - t0, 1)
        paths[a.name] = json.loads(proc.stdout).get("execution")
        if verbose:
            print(f"  {a.name}: check {warm[a.name]} s, {paths[a.name]} (expectations "
                  f"built once: {cold[a.name]} s)", flush=True)
    return {"check_seconds": warm, "check_execution": paths, "expectations_seconds": cold}
