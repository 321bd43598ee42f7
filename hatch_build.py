"""Build the JS bundle into ffn_widgets/static/ when the package is built (wheel or editable install)."""
import shutil
import subprocess
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class JSBuildHook(BuildHookInterface):
    def initialize(self, version, build_data):
        root = Path(self.root)
        js = root / "js"
        if not (js / "package.json").exists():
            return
        npm = shutil.which("npm")
        if npm is None:
            self.app.display_warning("npm not found: the widget front end is not built (see README).")
            return
        if not (js / "node_modules").exists():
            subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=js, check=True)
        subprocess.run([npm, "run", "build"], cwd=js, check=True)
