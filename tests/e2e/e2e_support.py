"""What the browser tests share: where Chromium is and how it is started, where screenshots go,
the JupyterLab server they drive and the few steps every notebook test takes in it."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("TUG_E2E_ARTIFACTS", ROOT / "tests" / "e2e" / "artifacts"))
CHROMIUM = Path(os.environ.get("TUG_E2E_CHROMIUM", "/usr/bin/chromium"))
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]
JUPYTERLAB = (sys.executable, "-m", "jupyterlab")
NOTEBOOK_CELLS = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell"


def require_browser():
    """Skip the calling test module, with one line saying why, unless Debian's Chromium and
    Playwright are both there; returns ``playwright.sync_api``."""
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests skipped: no Chromium at {CHROMIUM} "
                    "(apt-get install -y chromium)", allow_module_level=True)
    return pytest.importorskip("playwright.sync_api",
                               reason="browser tests skipped: playwright is not installed")


@contextlib.contextmanager
def chromium():
    """Debian's Chromium, headless, driven by Playwright; closed on leaving."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=BROWSER_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def clear_screenshots(*prefixes: str) -> None:
    """Make ``ARTIFACTS`` and remove the screenshots an earlier run left there under these
    names, so that every picture in it is from this run."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for prefix in prefixes:
        for old in ARTIFACTS.glob(f"{prefix}*.png"):
            old.unlink()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLabServer:
    """A JupyterLab (our own child process) on a free localhost port with a known token and a
    throwaway config, runtime, settings and workspace folder under ``home``; its output goes to
    ``log_path``. As a context manager it waits until the server answers, and stops it after.

    ``plain`` (the default) is a bare JupyterLab serving ``root``: nbgrader's server extensions
    off, no news or update checks, and every cell rendered (no virtual scrolling) so that a test
    can read any cell's output. With ``plain=False`` nothing is added to what ``command`` does
    itself, so that a test sees the lab as the course starts it (``python -m autograde.lab``).
    ``command`` is what runs, followed by this server's options and ``extra_args``; ``env``
    adds to the environment; ``cwd`` is where it runs (default ``root``).
    """

    def __init__(self, root: Path | None, home: Path, log_path: Path, *,
                 command: Sequence[str] = JUPYTERLAB, env: Mapping[str, str] | None = None,
                 plain: bool = True, extra_args: Sequence[str] = (), cwd: Path | None = None):
        self.root, self.port, self.token = root, free_port(), secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        config, runtime = home / "config", home / "runtime"
        settings, workspaces = home / "settings", home / "workspaces"
        for d in (config, runtime, settings, workspaces):
            d.mkdir(parents=True, exist_ok=True)
        args = [
            "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
            f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={workspaces}",
            "--LabApp.news_url=None", "--LabApp.expose_app_in_browser=True",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        if plain:
            _write_plain_config(config, settings)
            args += ["--allow-root", "--ServerApp.password=", "--ServerApp.open_browser=False"]
        if root is not None:
            args.append(f"--ServerApp.root_dir={root}")
        full_env = {k: v for k, v in os.environ.items()
                    if k not in ("TUG_STATIC_WIDGETS", "JUPYTER_CONFIG_PATH", "JUPYTER_TOKEN")}
        full_env.update({"JUPYTER_CONFIG_DIR": str(config), "JUPYTER_RUNTIME_DIR": str(runtime),
                         "JUPYTER_PLATFORM_DIRS": "1", "PYTHONUNBUFFERED": "1", **(env or {})})
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([*command, *args, *extra_args], cwd=cwd or root,
                                     env=full_env, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    def __enter__(self) -> JupyterLabServer:
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _request(self, path: str, method: str = "GET") -> urllib.request.Request:
        return urllib.request.Request(f"{self.base}{path}", method=method,
                                      headers={"Authorization": f"token {self.token}"})

    def api(self, path: str, method: str = "GET"):
        with urllib.request.urlopen(self._request(path, method), timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def status(self, path: str) -> int:
        """The HTTP status of a GET of ``path``."""
        try:
            with urllib.request.urlopen(self._request(path), timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as e:
            return e.code

    def wait_ready(self, timeout: float = 120.0) -> None:
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
        try:
            for kernel in self.api("/api/kernels") or []:
                self.api(f"/api/kernels/{kernel['id']}", method="DELETE")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass

    def url(self, relpath: str) -> str:
        """The page of ``relpath`` (a path under the served folder, or '' for the lab)."""
        page = f"lab/tree/{relpath}" if relpath else "lab"
        return f"{self.base}/{page}?token={self.token}&reset"

    def stop(self) -> None:
        self.shutdown_kernels()
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


def _write_plain_config(config: Path, settings: Path) -> None:
    """Every cell rendered, no news or announcements, and nbgrader's server extensions (which
    the course installs, and which are not what these tests look at) switched off."""
    lab = settings / "@jupyterlab"
    for d in (config / "labconfig", lab / "notebook-extension", lab / "apputils-extension"):
        d.mkdir(parents=True, exist_ok=True)
    (lab / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        json.dumps({"windowingMode": "none"}))
    (lab / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    (config / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    (config / "jupyter_server_config.json").write_text(json.dumps({"ServerApp": {
        "jpserver_extensions": {f"nbgrader.server_extensions.{ext}": False for ext in (
            "formgrader", "validate_assignment", "assignment_list", "course_list")}}}))


@contextlib.contextmanager
def lab_page(browser, lab: JupyterLabServer) -> Iterator:
    """A page in a fresh browser context; what the page throws collects in ``page.problems``.
    After it, the lab's kernels are shut down, to keep the 2 cores for the next notebook."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.problems = problems
    try:
        yield page
    finally:
        context.close()
        lab.shutdown_kernels()


def wait_for_notebook(page, timeout_ms: int = 120_000) -> None:
    """Wait until JupyterLab shows the notebook the page opened, with its cells and session."""
    page.wait_for_function(
        "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " return !!(w && w.content && w.content.widgets && w.content.widgets.length"
        " && w.sessionContext); }", timeout=timeout_ms)


def run_all_cells(page, timeout_ms: int = 120_000) -> None:
    """Start JupyterLab's own *Run All* on the open notebook once its kernel is ready, as a
    student does; it is not awaited (the run may be long)."""
    wait_for_notebook(page, timeout_ms)
    page.evaluate("""async () => {
        const app = window.jupyterapp, panel = app.shell.currentWidget;
        await panel.context.ready; await panel.sessionContext.ready;
        app.commands.execute('notebook:run-all-cells');  // not awaited: it runs long
    }""")
