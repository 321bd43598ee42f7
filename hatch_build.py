"""Build the front ends when the package is built (wheel or editable install): the widgets' ESM bundle (js/ ->
ffn_widgets/static/) and the prebuilt JupyterLab extension (labextension/ -> ffn_widgets/labextension/, which
the wheel installs under share/jupyter/labextensions/ffn-widgets, see pyproject.toml)."""
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def labextension_build_command(path: Path) -> list[str]:
    """The official builder: jupyter-builder (JupyterLab >= 4.6), else `jupyter labextension build`."""
    module = "jupyter_builder.main" if importlib.util.find_spec("jupyter_builder") else "jupyterlab.labextensions"
    return [sys.executable, "-m", module, "build", str(path)]


class JSBuildHook(BuildHookInterface):
    def initialize(self, version, build_data):
        root = Path(self.root)
        npm = shutil.which("npm")
        js, lab = root / "js", root / "labextension"
        if not (js / "package.json").exists():
            return
        if npm is None:
            self.app.display_warning("npm not found: the widget front end and the JupyterLab extension are not built "
                                     "(see README).")
            return
        for folder in (js, lab):
            if (folder / "package.json").exists() and not (folder / "node_modules").exists():
                subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=folder, check=True)
        subprocess.run([npm, "run", "build"], cwd=js, check=True)
        if (lab / "package.json").exists():
            subprocess.run([npm, "run", "build:lib"], cwd=lab, check=True)
            subprocess.run(labextension_build_command(lab), cwd=lab, check=True)
