"""``python -m benchmarks [--only GROUP ...] [--json]``: the course's speed figures.

Groups:
  import      seconds to ``import course_utils`` and each of its modules (fresh interpreter)
  notebooks   seconds to execute each solution notebook top to bottom (nbclient, Agg)
  check       seconds for ``python -m autograde check`` on each solution notebook (warm cache),
              and for building the trusted expectations once (cold cache)
  widgets     kernel-side update latency of each visualiser (median ms per control change)
  grading     class grading: ``python -m autograde grade`` against plain ``nbgrader autograde``
"""

from __future__ import annotations

import argparse
import json
import sys
import time

GROUPS = ("import", "notebooks", "check", "widgets", "grading")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", action="append", choices=GROUPS, metavar="GROUP",
                   help=f"run only this group (repeatable): {', '.join(GROUPS)}")
    p.add_argument("--json", action="store_true", help="print one JSON object of figures")
    args = p.parse_args(argv)
    groups = args.only or list(GROUPS)
    figures: dict = {}
    for group in groups:
        t0 = time.monotonic()
        if not args.json:
            print(f"== {group}", flush=True)
        module = __import__(f"benchmarks.{group}_bench", fromlist=["run"])
        result = module.run(verbose=not args.json)
        figures.update(result)
        if not args.json:
            for key, value in result.items():
                print(f"{key}: {json.dumps(value, indent=1)}")
            print(f"   ({time.monotonic() - t0:.0f} s)", flush=True)
    if args.json:
        print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
