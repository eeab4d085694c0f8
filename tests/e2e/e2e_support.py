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


class JupyterLabServer:
    """A plain JupyterLab (our own child process) serving ``root`` on a free localhost port,
    with a throwaway config, runtime, settings and workspace folder under ``home``; every cell
    is rendered (no virtual scrolling) so that a test can read any cell's output."""

    def __init__(self, root: Path, home: Path, log_path: Path):
        import json
        import secrets
        import subprocess
        import sys

        self.root, self.port, self.token = root, free_port(), secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        config, runtime = home / "config", home / "runtime"
        settings, workspaces = home / "settings", home / "workspaces"
        for d in (config / "labconfig", runtime, workspaces,
                  settings / "@jupyterlab" / "notebook-extension",
                  settings / "@jupyterlab" / "apputils-extension"):
            d.mkdir(parents=True, exist_ok=True)
        (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
         ).write_text(json.dumps({"windowingMode": "none"}))
        (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
         ).write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        (config / "labconfig" / "page_config.json").write_text(json.dumps(
            {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
        (config / "jupyter_server_config.json").write_text(json.dumps({"ServerApp": {
            "jpserver_extensions": {f"nbgrader.server_extensions.{ext}": False for ext in (
                "formgrader", "validate_assignment", "assignment_list", "course_list")}}}))
        env = {k: v for k, v in os.environ.items()
               if k not in ("TUG_STATIC_WIDGETS", "JUPYTER_CONFIG_PATH", "JUPYTER_TOKEN")}
        env.update({"JUPYTER_CONFIG_DIR": str(config), "JUPYTER_RUNTIME_DIR": str(runtime),
                    "JUPYTER_PLATFORM_DIRS": "1", "PYTHONUNBUFFERED": "1"})
        args = [
            "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}", "--ServerApp.password=",
            f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
            f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={workspaces}",
            "--LabApp.news_url=None", "--LabApp.expose_app_in_browser=True",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", *args], cwd=root,
                                     env=env, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    def api(self, path: str, method: str = "GET"):
        import json
        import urllib.request

        req = urllib.request.Request(f"{self.base}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def wait_ready(self, timeout: float = 120.0) -> None:
        import time
        import urllib.error

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}:\n"
                                   f"{self.log_path.read_text()[-3000:]}")
            try:
                self.api("/api/status")
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        raise RuntimeError(f"JupyterLab not ready after {timeout:.0f} s:\n"
                           f"{self.log_path.read_text()[-3000:]}")

    def shutdown_kernels(self) -> None:
        import urllib.error

        try:
            for kernel in self.api("/api/kernels") or []:
                self.api(f"/api/kernels/{kernel['id']}", method="DELETE")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass

    def url(self, relpath: str) -> str:
        return f"{self.base}/lab/tree/{relpath}?token={self.token}&reset"

    def stop(self) -> None:
        import subprocess

        self.shutdown_kernels()
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()
