"""Wall time of ``python -m autograde check`` on each solution notebook."""

from __future__ import annotations

import subprocess
import sys
import time

from autograde.course import assignments
from autograde.grader import expectations


def run(verbose: bool = True) -> dict:
    cold, warm = {}, {}
    for a in assignments():
        t0 = time.monotonic()
        expectations(a, refresh=True)
        cold[a.name] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "autograde", "check", str(a.source), "--json"],
                       capture_output=True, check=True)
        warm[a.name] = round(time.monotonic() - t0, 1)
        if verbose:
            print(f"  {a.name}: check {warm[a.name]} s (expectations built once: "
                  f"{cold[a.name]} s)", flush=True)
    return {"check_seconds": warm, "expectations_seconds": cold}
