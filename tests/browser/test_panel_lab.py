"""One FFN side panel per JupyterLab window, in a real JupyterLab 4 (headless Chromium): three notebooks, each with
its own kernel and a docked view, and five page reloads leave exactly one FFN tab; it shows the active notebook's
kernel's views, each once; after a reload it stays collapsed until a view is docked; a notebook without docked
views leaves the notebook its full width."""
import shutil

import pytest

from .lab import REPO

pytestmark = pytest.mark.browser

NAMES = ["first.ipynb", "second.ipynb", "third.ipynb"]
FFN_TABS = "() => [...jupyterapp.shell.widgets('right'), ...jupyterapp.shell.widgets('left')]" \
           ".filter(w => w.title.label === 'FFN').length"
ACTIVE_KERNEL = "() => jupyterapp.shell.currentWidget.sessionContext.session.kernel.id"
SHOWN_DOCKS = """() => [...document.querySelectorAll('#ffn-widgets-panel .fw-dock')]
    .filter(d => d.offsetParent !== null).map(d => ({kernel: d.dataset.kernel,
                                                     views: d.querySelectorAll('.fw-dock-item').length}))"""


def activate(page, lab, name):
    page.evaluate("(p) => jupyterapp.commands.execute('docmanager:open', {path: p})", name)
    page.wait_for_function("(p) => jupyterapp.shell.currentWidget && jupyterapp.shell.currentWidget.context"
                           " && jupyterapp.shell.currentWidget.context.path === p", arg=name)
    lab.wait_idle()


def settle(page):
    """Wait until every open notebook's kernel is idle and the panel has gathered what ipylab put back."""
    page.wait_for_function("""() => [...jupyterapp.shell.widgets('main')].filter(w => w.sessionContext)
        .every(w => { const k = w.sessionContext.session && w.sessionContext.session.kernel;
                      return k && k.connectionStatus === 'connected' && k.status === 'idle'; })""", polling=250)
    page.wait_for_timeout(1500)  # ipylab restores a kernel's shell widgets shortly after it connects


@pytest.fixture(scope="module")
def window(lab, tmp_path_factory):
    """One page with three notebooks open, each kernel having docked its sliders."""
    folder = tmp_path_factory.mktemp("nbs")
    for name in NAMES:
        shutil.copy(REPO / "tests" / "browser" / "dock.ipynb", folder / name)
    page = lab.open(folder / NAMES[0], width=1500, height=950)
    for i, name in enumerate(NAMES):
        if i:
            shutil.copy(folder / name, lab.root / "work" / name)
            activate(page, lab, name)
        lab.run_all()
        page.wait_for_function("() => jupyterapp.shell.currentWidget.node"
                               ".querySelector('.jp-OutputArea .fw-sliders input[type=range]')")
        lab.execute("w.dock()")
        page.wait_for_function(f"() => ({SHOWN_DOCKS})().some(d => d.kernel === ({ACTIVE_KERNEL})())")
    return page


def test_three_kernels_and_five_reloads_leave_one_ffn_tab_showing_each_view_once(lab, window):
    page = window
    kernels = set()
    for name in NAMES:
        activate(page, lab, name)
        page.wait_for_function(f"() => ({SHOWN_DOCKS})().some(d => d.kernel === ({ACTIVE_KERNEL})())")
        assert page.evaluate(FFN_TABS) == 1
        shown = page.evaluate(SHOWN_DOCKS)
        assert shown == [{"kernel": page.evaluate(ACTIVE_KERNEL), "views": 1}]  # its own kernel's, once
        kernels.add(shown[0]["kernel"])
    assert len(kernels) == 3
    for _ in range(5):
        page.reload()
        page.wait_for_function("() => window.jupyterapp && jupyterapp.shell.currentWidget"
                               " && jupyterapp.shell.currentWidget.sessionContext")
        settle(page)
        assert page.evaluate(FFN_TABS) == 1
        assert page.evaluate("() => jupyterapp.shell.rightCollapsed")  # not reopened by itself
    for name in NAMES:  # each kernel's dock came back once
        activate(page, lab, name)
        page.evaluate("() => jupyterapp.commands.execute('ffn-widgets:show-panel')")
        page.wait_for_function(f"() => ({SHOWN_DOCKS})().some(d => d.kernel === ({ACTIVE_KERNEL})())")
        assert page.evaluate(SHOWN_DOCKS) == [{"kernel": page.evaluate(ACTIVE_KERNEL), "views": 1}]
        assert page.locator("#ffn-widgets-panel .fw-dock").count() == 3  # one per kernel, two hidden
        assert page.evaluate(FFN_TABS) == 1


def test_a_notebook_without_docked_views_keeps_its_full_width(lab, window):
    page = window
    page.evaluate("() => jupyterapp.shell.collapseRight()")
    lab.execute("fw.undock(w)")  # the active notebook's kernel docks nothing now
    page.wait_for_timeout(500)
    assert page.evaluate("() => jupyterapp.shell.rightCollapsed")
    right = page.evaluate("() => jupyterapp.shell.currentWidget.node.getBoundingClientRect().right")
    bar = page.evaluate("() => document.querySelector('.jp-SideBar.jp-mod-right').getBoundingClientRect().left")
    assert bar - right < 12  # a border, nothing between the notebook and the right side bar's icons
