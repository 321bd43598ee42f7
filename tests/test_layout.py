"""The house rules of DESIGN.md, read from the source: which file imports which (function-level imports
included), so a circle or a loose module shows up as a failing test rather than in review."""
import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ffn_widgets"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every ffn_widgets module a file imports, at any depth (``from .x import y`` names x, or x.y when y is a
    module); package ``__init__`` files count as the package."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + (node.module.split(".") if node.module else []))
            if not target.startswith("ffn_widgets"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if module_path(sub) else target)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("ffn_widgets")}
    return found


def module_path(name: str) -> Path | None:
    rel = Path(*name.split("."))
    for candidate in (PACKAGE.parent / rel.with_suffix(".py"), PACKAGE.parent / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def graph() -> dict[str, set[str]]:
    files = [p for p in PACKAGE.rglob("*.py") if "static" not in p.parts]
    return {module_name(p): imported_modules(p) - {module_name(p)} for p in files}


def test_no_file_circles():
    """No two files import each other, through any chain (facades, i.e. package ``__init__`` files, excluded:
    they re-export and import lazily)."""
    g = {m: {t for t in deps if not module_path(t).name == "__init__.py"}
         for m, deps in graph().items() if module_path(m).name != "__init__.py"}
    circles, state = [], {}

    def visit(m, stack):
        state[m] = "open"
        for t in sorted(g.get(m, ())):
            if state.get(t) == "open":
                circles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t, stack + [t])
        state[m] = "done"

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    assert circles == [], "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_the_package_root_holds_only_the_facade():
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py"]


def test_analyses_never_import_widgets():
    g = graph()
    lower = [m for m in g if m.count(".") >= 1 and m.split(".")[1] in ("model", "analysis", "tracing", "memories", "editing", "data")]
    offenders = {m: sorted(t for t in g[m] if t.startswith("ffn_widgets.widgets")) for m in lower}
    assert {m: t for m, t in offenders.items() if t} == {}
    # and at run time: the science imports without ipywidgets/anywidget being loaded
    code = ("import sys, ffn_widgets as fw; fw.load_facts; fw.localize; fw.evaluate_edits; fw.edit_report; "
            "fw.causal_trace; fw.mine_triggers; print(sorted(m for m in ('anywidget', 'ipywidgets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_every_public_name_still_resolves():
    import ffn_widgets as fw

    missing = [name for name in fw.__all__ if getattr(fw, name, None) is None]
    assert missing == []
