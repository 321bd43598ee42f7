"""The widget platform: binary payloads, gesture dispatch, errors and progress in the widget."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import traitlets
from ipywidgets.widgets.widget import _remove_buffers

import ffn_widgets as fw
from ffn_widgets.widgets import ViewWidget, handles, pack, unpack
from ffn_widgets.widgets.serialize import nbytes


@pytest.mark.parametrize("dtype,values", [
    ("float32", np.array([[1.5, -2.25], [3e-8, 1e30]])),
    ("float16", np.array([0.1, -7.0, 65000.0])),
    ("int32", np.array([[0, -1, 2**31 - 1]])),
    ("uint8", np.array([0, 7, 255])),
    ("uint16", np.array([0, 49151, 65535])),
])
def test_pack_round_trips_and_is_binary(dtype, values):
    p = pack(values, dtype)
    assert isinstance(p["data"], memoryview)
    assert p["shape"] == list(values.shape)
    back = unpack(p)
    expected = values.astype({"float16": np.float16, "float32": np.float32}.get(dtype, values.dtype))
    np.testing.assert_array_equal(back, expected)
    assert nbytes(p) == values.size * np.dtype(back.dtype).itemsize


def test_pack_accepts_torch_and_refuses_lossy_casts():
    t = torch.arange(6, dtype=torch.float64).reshape(2, 3) / 3
    np.testing.assert_allclose(unpack(pack(t)), t.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="truncate"):
        pack(np.array([1.5]), "int32")
    with pytest.raises(ValueError, match="fit"):
        pack(np.array([300]), "uint8")
    with pytest.raises(ValueError, match="float16 range"):
        pack(np.array([1e6]), "float16")
    with pytest.raises(ValueError, match="dtype must be"):
        pack(np.array([1]), "float64")


class Probe(ViewWidget):
    view = traitlets.Unicode("probe").tag(sync=True)
    grid = traitlets.Dict({}).tag(sync=True)
    seen = traitlets.List([])

    @handles("add")
    def _add(self, msg):
        self.seen = self.seen + [msg["value"]]

    @handles("boom")
    def _boom(self, msg):
        raise fw.InputError("layer must be an integer in 0..29, got 31.")

    @handles("crash")
    def _crash(self, msg):
        {}["missing"]


def test_synced_arrays_travel_as_buffers_not_json():
    w = Probe(grid={"a": pack(np.ones((3, 4)), "float32"), "nested": [pack(np.arange(5), "int32")]})
    state, paths, buffers = _remove_buffers(w.get_state())
    assert sorted(map(tuple, paths)) == [("grid", "a", "data"), ("grid", "nested", 0, "data")]
    assert sum(memoryview(b).nbytes for b in buffers) == 3 * 4 * 4 + 5 * 4
    assert "data" not in state["grid"]["a"]


def test_handlers_dispatch_and_errors_land_in_the_widget():
    w = Probe()
    sent = []
    w.send = lambda content, buffers=None: sent.append(content)
    assert w.dispatch({"type": "add", "value": 3, "_ack": 7})
    assert w.seen == [3] and w.error == ""
    assert sent == [{"type": "_ack", "id": 7, "ok": True}]
    assert not w.dispatch({"type": "boom", "_ack": 8})
    assert w.error == "layer must be an integer in 0..29, got 31."
    assert sent[-1] == {"type": "_ack", "id": 8, "ok": False}
    assert not w.dispatch({"type": "crash"})
    assert w.error.startswith("KeyError")
    assert not w.dispatch({"type": "nope"})
    assert "no handler for message type 'nope'" in w.error and "add, boom, crash" in w.error
    assert w.dispatch({"type": "add", "value": 4})  # a good gesture clears the old error
    assert w.error == "" and w.seen == [3, 4]
    w.handle("extra", lambda msg: w.seen.append("x"))
    assert w.dispatch({"type": "extra"})


def test_progress_is_shown_while_busy_and_cleared_after():
    w = Probe()
    states = []
    w.observe(lambda change: states.append(dict(change["new"])), "progress")
    with w.busy("Running the model") as step:
        step("Logit lens", 0.5)
    assert [s.get("message") for s in states] == ["Running the model", "Logit lens", None]
    assert states[1]["fraction"] == 0.5 and w.progress == {}
    with w.reporting():
        with w.busy("about to fail"):
            raise RuntimeError("bad")
    assert w.progress == {} and w.error == "RuntimeError: bad"


def test_bundle_is_the_single_esm(tmp_path):
    from ffn_widgets.widgets.base import BUNDLE, bundle_built

    if not bundle_built():
        pytest.skip("front end not built (make js)")
    w = Probe()
    assert w._esm == BUNDLE.read_text()
    assert "export" in w._esm and "http" not in w._esm.replace("http://www.w3.org", "")


def test_import_without_bundle_says_how_to_build(tmp_path):
    """A copy of the package without static/: importing and creating a widget must work."""
    src = Path(fw.__file__).parent
    shutil.copytree(src, tmp_path / "ffn_widgets", ignore=shutil.ignore_patterns("static", "__pycache__"))
    code = ("import ffn_widgets as fw; from ffn_widgets.widgets import ViewWidget, bundle_built; "
            "w = ViewWidget(); print(bundle_built(), 'make js' in w._esm, fw.__file__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PATH": "", "PYTHONPATH": str(tmp_path), "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:2] == ["False", "True"]
    assert str(tmp_path) in out.stdout
