"""Packaging guards: Binder stays in step with pyproject, the engine stays widget-free, CI never
downloads a browser, and the repository root holds only the agreed entries."""
import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")

ROOT = Path(__file__).resolve().parents[1]
BINDER_REQS = ROOT / "binder" / "requirements.txt"
WIDGET_MODULES = {"ipywidgets", "ipycanvas", "bqplot", "IPython", "traitlets"}
ALLOWED_TOP = {"pyproject.toml", "cnn_widgets", "notebooks", "tests", "binder", "README.md",
               "benchmarks", ".ci", "docs", "CONTRIBUTING.md", "tools"}
DEVELOPER_MODULES = {"nbclient", "nbformat", "nbconvert", "playwright", "pytest"}


def _norm(name: str) -> str:  # PEP 503
    return re.sub(r"[-_.]+", "-", name).lower()


def _req_name(line: str) -> str:
    return _norm(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line.strip()).group())


def _binder_lines():
    lines = (line.split("#", 1)[0].strip() for line in BINDER_REQS.read_text().splitlines())
    return [line for line in lines if line]


def test_binder_lists_every_runtime_dependency():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    listed = {_req_name(line) for line in _binder_lines() if not line.startswith("-")}
    missing = {_req_name(d) for d in deps} - listed
    assert not missing, f"binder/requirements.txt lacks {sorted(missing)}"


def test_binder_uses_the_cpu_torch_index():
    lines = _binder_lines()
    assert any(re.fullmatch(r"--(extra-)?index-url[ =]https://download\.pytorch\.org/whl/cpu/?", line)
               for line in lines), lines
    assert not any(re.search(r"nvidia|cu\d{2,3}\b|\+cu", line) for line in lines), lines


def _imported_roots(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def test_engine_source_never_imports_widget_libraries():
    files = sorted((ROOT / "cnn_widgets" / "engine").rglob("*.py"))
    assert files
    bad = {f"{f.relative_to(ROOT)}: {m}" for f in files for m in _imported_roots(f)
           if m in WIDGET_MODULES}
    assert not bad, sorted(bad)


def test_the_package_never_imports_developer_tools():
    """The notebook runner (nbclient) and the test tools live outside the package (tools/,
    tests/): a user's install has none of them."""
    files = sorted((ROOT / "cnn_widgets").rglob("*.py"))
    bad = {f"{f.relative_to(ROOT)}: {m}" for f in files for m in _imported_roots(f)
           if m in DEVELOPER_MODULES}
    assert not bad, sorted(bad)


def _loaded_by_import(packages) -> str:
    """Which of ``packages`` a fresh ``import cnn_widgets, cnn_widgets.engine`` loads."""
    code = ("import sys, cnn_widgets, cnn_widgets.engine\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(packages)!r}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_importing_the_engine_loads_no_widget_library():
    assert _loaded_by_import(WIDGET_MODULES) == "[]"


def test_ci_never_downloads_a_browser():
    assert "playwright install" not in (ROOT / ".ci" / "run").read_text()


def _top_level_entries():
    try:
        files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        files = []
    if (ROOT / ".git").exists() and files:
        return {f.split("/", 1)[0] for f in files}
    return {e for e in os.listdir(ROOT) if e != "__pycache__" and not e.endswith(".egg-info")}


def test_repository_root_holds_only_allowed_entries():
    extra = {e for e in _top_level_entries() if e not in ALLOWED_TOP and not e.startswith(".")}
    assert not extra, f"unexpected top-level entries: {sorted(extra)}"


def test_importing_the_package_loads_no_optional_heavy_library():
    """scipy, scikit-learn and friends load when a capability first needs them, not on import."""
    assert _loaded_by_import({"scipy", "sklearn", "skimage", "umap", "matplotlib", "captum"}) == "[]"
