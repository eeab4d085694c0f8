"""Kernel-side latency of the visualisers (the measurement lives in benchmarks/widgets.py)."""

from __future__ import annotations

from benchmarks import widgets


def run(verbose: bool = True) -> dict:
    return widgets.run()
