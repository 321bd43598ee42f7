"""A real JupyterLab 4 in headless Chromium, for end-to-end widget tests (reusable by every view).

    lab = Lab.start()                       # server on a free port, throwaway HOME/config/settings
    page = lab.open("notebooks/00_tour.ipynb")   # a copy, opened fresh, kernel idle
    lab.run_all()                           # runs every cell; fails with the traceback of a failing cell
    lab.execute("print(ex.view.cell)")      # run code in the notebook's kernel, get its text output
    lab.theme("JupyterLab Dark")
    lab.stop()
    nb7 = Lab.start(app="notebook")         # the same harness on Jupyter Notebook 7 (its /notebooks/ page)

The server's environment points HOME, JUPYTER_* and IPYTHONDIR at a temp dir, turns off news and the
extension manager (no network), and hands the kernel the repository on PYTHONPATH and the model cache.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

CHROMIUM = os.environ.get("FFN_WIDGETS_CHROMIUM", "/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    def __init__(self, root: Path, proc: subprocess.Popen, port: int, log: Path, app: str = "lab"):
        self.root, self.proc, self.port, self.log, self.app = root, proc, port, log, app
        self.url = f"http://127.0.0.1:{port}"
        self._pw = self.browser = self.page = None

    @classmethod
    def start(cls, timeout: float = 90, app: str = "lab") -> "Lab":
        """``app``: "lab" (JupyterLab 4) or "notebook" (Notebook 7, the same front-end libraries)."""
        from ffn_widgets.model.loading import cache_dir

        root = Path(tempfile.mkdtemp(prefix="fw-lab-"))
        for d in ("home", "config", "data", "runtime", "ipython", "settings", "workspaces", "work"):
            (root / d).mkdir()
        env = {**os.environ, "HOME": str(root / "home"), "JUPYTER_CONFIG_DIR": str(root / "config"),
               "JUPYTER_DATA_DIR": str(root / "data"), "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
               "IPYTHONDIR": str(root / "ipython"), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
               "FFN_WIDGETS_CACHE": str(cache_dir()), "JUPYTER_PLATFORM_DIRS": "1",
               "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        env.pop("ANYWIDGET_HMR", None)
        notify = root / "settings" / "@jupyterlab" / "apputils-extension"
        notify.mkdir(parents=True)
        (notify / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
        port = free_port()
        log = root / "server.log"
        cmd = [sys.executable, "-m", "jupyter", app, "--no-browser", f"--ServerApp.port={port}",
               "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password=",
               "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={root / 'work'}"]
        if app == "lab":
            cmd += ["--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
                    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                    f"--LabApp.user_settings_dir={root / 'settings'}", f"--LabApp.workspaces_dir={root / 'workspaces'}"]
        else:
            cmd += ["--JupyterNotebookApp.expose_app_in_browser=True",
                    f"--JupyterNotebookApp.user_settings_dir={root / 'settings'}",
                    f"--JupyterNotebookApp.workspaces_dir={root / 'workspaces'}"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        proc = subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        lab = cls(root, proc, port, log, app)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited:\n{log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{lab.url}/api/status", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        else:
            lab.stop()
            raise TimeoutError(f"jupyter lab did not start in {timeout} s:\n{log.read_text()[-3000:]}")
        return lab

    # ---- browser ----------------------------------------------------------------------------
    def _browser(self):
        if self.browser is None:
            from playwright.sync_api import sync_playwright

            self._pw = sync_playwright().start()
            self.browser = self._pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        return self.browser

    def open_and_run(self, notebook: str | Path, ready: str, **size):
        """Open a notebook, run all its cells, and wait until ``ready`` (a CSS selector) is visible."""
        page = self.open(notebook, **size)
        self.run_all()
        page.wait_for_selector(ready, state="visible")
        return page

    def open(self, notebook: str | Path, width: int = 1280, height: int = 1000, timeout: float = 120):
        """Copy the notebook into the server's folder, open it fresh, wait for an idle kernel."""
        src = Path(notebook)
        src = src if src.is_absolute() else REPO / src
        shutil.copy(src, self.root / "work" / src.name)
        if self.page is not None:
            self.page.close()
        self.page = self._browser().new_page(viewport={"width": width, "height": height})
        self.page.set_default_timeout(timeout * 1000)
        self.page.goto(f"{self.url}/lab/tree/{src.name}?reset" if self.app == "lab" else f"{self.url}/notebooks/{src.name}")
        self.page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                    " && window.jupyterapp.shell.currentWidget.sessionContext")
        self.wait_idle(timeout)
        return self.page

    def wait_idle(self, timeout: float = 120) -> None:
        """Wait for the real kernel (not the toolbar's placeholder) to exist and be idle."""
        self.page.wait_for_function(
            """() => { const w = window.jupyterapp.shell.currentWidget; const s = w && w.sessionContext;
                       const k = s && s.session && s.session.kernel;
                       return !!(s && s.isReady && k && k.connectionStatus === 'connected' && k.status === 'idle'); }""",
            timeout=timeout * 1000, polling=200)

    def run_all(self, timeout: float = 300) -> None:
        """Run every cell and wait until each code cell has run; raise with the first error's traceback."""
        self.page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        self.page.wait_for_function(
            """() => { const nb = window.jupyterapp.shell.currentWidget.content;
                       const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
                       return k.status === 'idle' && nb.widgets.every(c => c.model.type !== 'code'
                              || !c.model.sharedModel.source.trim() || c.model.executionCount); }""",
            timeout=timeout * 1000, polling=250)
        errors = self.page.evaluate(
            """() => window.jupyterapp.shell.currentWidget.content.widgets.flatMap(c => c.model.type !== 'code' ? [] :
                  c.model.outputs.toJSON().filter(o => o.output_type === 'error')
                   .map(o => o.ename + ': ' + o.evalue + '\\n' + (o.traceback || []).join('\\n')))""")
        if errors:
            raise AssertionError("A notebook cell failed:\n" + errors[0])

    def execute(self, code: str, timeout: float = 120) -> str:
        """Run code in the notebook's kernel (like a new cell) and return its text output."""
        result = self.page.evaluate(
            """async (code) => { const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
                  const f = k.requestExecute({code, store_history: false}); let out = ''; let err = null;
                  f.onIOPub = (m) => { const t = m.header.msg_type, c = m.content;
                     if (t === 'stream') out += c.text;
                     else if (t === 'execute_result' || t === 'display_data') out += (c.data['text/plain'] || '') + '\\n';
                     else if (t === 'error') err = c.ename + ': ' + c.evalue; };
                  await f.done; return {out, err}; }""", code)
        if result["err"]:
            raise AssertionError(f"Kernel error running {code!r}: {result['err']}")
        return result["out"]

    def kernel_json(self, code: str):
        """Evaluate a Python expression in the kernel and return it decoded from JSON."""
        return json.loads(self.execute(f"import json as _j; print(_j.dumps({code}))").strip().splitlines()[-1])

    def theme(self, name: str) -> None:
        self.page.evaluate("(t) => window.jupyterapp.commands.execute('apputils:change-theme', {theme: t})", name)
        light = "true" if "Light" in name else "false"
        self.page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'")

    def reset(self) -> None:
        """As freshly started, for the next test module on this server: the page closed, every session and kernel
        shut down, the notebooks, workspaces and settings the last module wrote removed. Chromium is closed too:
        Playwright's sync API keeps an event loop running in this thread, which later tests' ``asyncio.run`` and
        other modules' browsers must not meet."""
        self._close_browser()
        for kind in ("sessions", "kernels"):
            with urllib.request.urlopen(f"{self.url}/api/{kind}", timeout=10) as r:
                for item in json.load(r):
                    request = urllib.request.Request(f"{self.url}/api/{kind}/{item['id']}", method="DELETE")
                    with contextlib.suppress(urllib.error.HTTPError):  # a session's kernel went with the session
                        urllib.request.urlopen(request, timeout=30).close()
        keep = self.root / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        for folder in ("work", "workspaces", "settings"):
            for path in sorted((self.root / folder).rglob("*"), reverse=True):
                if path == keep or keep.is_relative_to(path):
                    continue
                path.rmdir() if path.is_dir() else path.unlink()

    def _close_browser(self) -> None:
        try:
            if self.browser is not None:
                self.browser.close()
            if self._pw is not None:
                self._pw.stop()
        finally:
            self._pw = self.browser = self.page = None

    def stop(self) -> None:
        try:
            self._close_browser()
        finally:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
            shutil.rmtree(self.root, ignore_errors=True)
