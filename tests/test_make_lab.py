"""The README's main command: `make lab` starts JupyterLab on a copy of the tour, as root or not, with flags
passed through, and leaves the tracked notebooks alone; the notebooks are committed without outputs."""
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.browser.lab import free_port

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").rglob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_are_committed_without_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    dirty = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"])]
    assert not dirty, f"{path.name}: cells {dirty} hold outputs; clear them before committing"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_lab_serves_a_copy_of_the_tour(tmp_path):
    port, token = free_port(), "fw-test"
    before = {p: p.read_bytes() for p in NOTEBOOKS}
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data"), "BROWSER": "true"}
    args = f"--no-browser --port {port} --IdentityProvider.token={token} --LabApp.news_url=None"
    proc = subprocess.Popen(["make", "-s", "lab", f"ARGS={args}", f"WORKSPACE={tmp_path / 'ws'}"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/api/contents/00_tour.ipynb?content=0&token={token}"
        deadline, answer = time.time() + 120, None
        while time.time() < deadline and proc.poll() is None and answer is None:
            try:
                answer = json.load(urllib.request.urlopen(url, timeout=2))
            except OSError:
                time.sleep(0.5)
        assert answer is not None, f"make lab did not serve the tour:\n{proc.stdout.read() if proc.poll() else ''}"
        assert answer["name"] == "00_tour.ipynb"
        copies = sorted(p.name for p in (tmp_path / "ws").glob("*.ipynb"))
        assert copies == sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
        assert {p: p.read_bytes() for p in NOTEBOOKS} == before
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        printed = proc.communicate(timeout=30)[0]
    # without a display (no browser opens) the address printed is the tour's, not the bare /lab
    assert f":{port}/lab/tree/00_tour.ipynb?token=" in printed, printed[-2000:]  # (a given token prints as ...)
