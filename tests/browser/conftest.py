"""``lab``: one JupyterLab server (and browser) per test module; see :mod:`tests.browser.lab`."""
import shutil
from pathlib import Path

import pytest

from .lab import CHROMIUM, Lab


@pytest.fixture(scope="module")
def lab():
    if not Path(CHROMIUM).exists() and shutil.which(CHROMIUM) is None:
        pytest.skip(f"no Chromium at {CHROMIUM} (set FFN_WIDGETS_CHROMIUM)")
    from ffn_widgets.widgets.base import bundle_built

    if not bundle_built():
        pytest.fail("The front end is not built: run `make js` before the browser tests.")
    server = Lab.start()
    yield server
    server.stop()
