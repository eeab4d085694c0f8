"""Set resource limits, then exec the kernel (used by :mod:`autograde.sandbox`).

Usage: ``python -m autograde.sandbox_boot --memory-mb N -- COMMAND...``
"""

from __future__ import annotations

import os
import resource
import sys


def main(argv: list[str]) -> None:
    if "--" not in argv:
        sys.exit("usage: python -m autograde.sandbox_boot --memory-mb N -- COMMAND...")
    split = argv.index("--")
    opts, cmd = argv[:split], argv[split + 1:]
    memory_mb = int(opts[opts.index("--memory-mb") + 1]) if "--memory-mb" in opts else 0
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024 * 1024, 256 * 1024 * 1024))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # Inside a PID namespace the grader's PID means nothing; bubblewrap's --die-with-parent
    # ends the kernel when the grader goes away.
    os.environ.pop("JPY_PARENT_PID", None)
    try:
        os.setsid()  # own process group: the grader can kill everything the kernel started
    except OSError:
        pass
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
