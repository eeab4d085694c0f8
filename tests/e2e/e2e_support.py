"""What the browser tests share: where Chromium is, how it is started, a free local port."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("TUG_E2E_CHROMIUM", "/usr/bin/chromium"))
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]


def require_browser():
    """Skip the calling test module, with one line saying why, unless Debian's Chromium and
    Playwright are both there; returns ``playwright.sync_api``."""
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests skipped: no Chromium at {CHROMIUM} "
                    "(apt-get install -y chromium)", allow_module_level=True)
    return pytest.importorskip("playwright.sync_api",
                               reason="browser tests skipped: playwright is not installed")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
