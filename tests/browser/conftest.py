"""``lab``: a JupyterLab server (and browser) as fresh for each test module, one per process; ``nb7``: one on
Jupyter Notebook 7 per module.
See :mod:`tests.browser.lab`."""
import shutil
from pathlib import Path

import pytest

from .lab import CHROMIUM, Lab


def _server(app: str):
    if not Path(CHROMIUM).exists() and shutil.which(CHROMIUM) is None:
        pytest.skip(f"no Chromium at {CHROMIUM} (set FFN_WIDGETS_CHROMIUM)")
    from ffn_widgets.widgets.base import bundle_built

    if not bundle_built():
        pytest.fail("The front end is not built: run `make js` before the browser tests.")
    return Lab.start(app=app)


@pytest.fixture(scope="session")
def lab_server():
    """One JupyterLab server (and Chromium) per test process: starting one costs seconds."""
    server = _server("lab")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lab(lab_server):
    """The process's server, handed back as fresh after each module: kernels shut down, files and settings gone."""
    yield lab_server
    lab_server.reset()


@pytest.fixture(scope="module")
def nb7():
    server = _server("notebook")
    yield server
    server.stop()
