"""The layout is the architecture: core below the paper packages, the facade above them, no
import circles, and a facade whose signatures show every keyword."""
import ast
import inspect
from pathlib import Path

import pytest

import cnn_widgets
from cnn_widgets import Engine

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "cnn_widgets"
PAPERS = ("etalons", "probing", "visualization", "clustering", "inverse_set", "sanity")
MAX_LINES = 420


def _modules():
    """dotted module name -> path, for every .py file of the package."""
    out = {}
    for path in PKG.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(mod: str, path: Path):
    """Modules of the package that ``mod`` imports (lazy imports in functions included;
    ``if TYPE_CHECKING:`` blocks excluded)."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test)
                   for b in node.body for n in ast.walk(b)}
    package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
            stem = ".".join(p for p in (base, node.module or "") if p)
            targets = [f"{stem}.{a.name}" for a in node.names] + [stem]
        else:
            continue
        for t in targets:
            while t and t not in MODULES:
                t = t.rpartition(".")[0]
            if t and t != mod and not mod.startswith(t + "."):
                yield t


GRAPH = {m: set(_imports(m, p)) for m, p in MODULES.items()}


def _area(mod: str) -> str:
    """core, a paper's name, facade, or other (widgets, jobs, zoo, testing, top level)."""
    parts = mod.split(".")
    if parts[:2] != ["cnn_widgets", "engine"] or len(parts) < 3:
        return "other"
    if parts[2] == "core":
        return "core"
    if parts[2] in PAPERS:
        return parts[2]
    return "facade"


def test_no_import_circle():
    index, low, stack, on, circles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not circles, circles


@pytest.mark.parametrize("area", ("core",) + PAPERS)
def test_layers_import_downwards_only(area):
    """core imports nothing above it; a paper package imports core and itself, never another
    paper package or the facade."""
    allowed = {"core"} | ({area} if area != "core" else set())
    bad = sorted(f"{m} imports {t}" for m, ts in GRAPH.items() if _area(m) == area
                 for t in ts if _area(t) not in allowed and t.startswith("cnn_widgets.engine"))
    bad += sorted(f"{m} imports {t}" for m, ts in GRAPH.items() if _area(m) == area
                  for t in ts if not t.startswith("cnn_widgets.engine"))
    assert not bad, bad


def test_the_check_sees_a_paper_importing_another(tmp_path):
    """The walker is not blind: a planted import is found."""
    fake = "from ..probing.receptive_field import receptive_field\n"
    mod = "cnn_widgets.engine.etalons.fake"
    path = tmp_path / "fake.py"
    path.write_text(fake)
    found = set(_imports(mod, path))
    assert "cnn_widgets.engine.probing.receptive_field" in found


def _public_methods():
    for name, fn in inspect.getmembers(Engine, predicate=inspect.isfunction):
        if not name.startswith("_"):
            yield name, fn


def test_engine_methods_spell_out_every_keyword():
    names = dict(_public_methods())
    assert {"etalons", "reconstruct", "maximize", "top_images", "category_tree",
            "prediction_tree", "embedding", "inverse_set", "close"} <= set(names)
    bad = [f"{n}{inspect.signature(f)}" for n, f in names.items()
           if any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
                  for p in inspect.signature(f).parameters.values())]
    assert not bad, bad


def test_engine_methods_have_docstrings_and_annotations():
    missing = [n for n, f in _public_methods() if not (f.__doc__ or "").strip()]
    assert not missing, missing
    facade = [n for n, f in _public_methods() if f.__qualname__.startswith("Engine.")]
    unannotated = [n for n in facade if "return" not in getattr(Engine, n).__annotations__
                   and n != "iterate_maximize"]
    assert not unannotated, unannotated


def test_modules_stay_small():
    big = sorted(f"{p.relative_to(ROOT)}: {n}" for p in PKG.rglob("*.py")
                 if (n := len(p.read_text().splitlines())) > MAX_LINES)
    assert not big, big


# -- the widget contract (CONTRIBUTING.md, "Jobs and widgets") -----------------------------------
WIDGETS = PKG / "widgets"
PARTS = ("__init__.py", "controls.py", "paint.py", "geometry.py")
WIDGET_LIBRARIES = ("ipywidgets", "ipycanvas", "bqplot", "traitlets", "IPython")
PACKAGES = sorted(m.rpartition(".")[2] for m in cnn_widgets._LAZY.values())


def _external(path: Path) -> set[str]:
    """Top-level names of the libraries ``path`` imports (its package's own modules excluded)."""
    tree = ast.parse(path.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and not n.level}
    return {n.split(".")[0] for n in names if n and not n.startswith("cnn_widgets")}


def _reached(mod: str) -> set[str]:
    """``mod`` and every module of the package it imports, directly or not."""
    seen, stack = set(), [mod]
    while stack:
        m = stack.pop()
        if m not in seen:
            seen.add(m)
            stack.extend(GRAPH.get(m, ()))
    return seen


def test_every_widget_is_a_package():
    assert len(PACKAGES) == 6 and all((WIDGETS / n).is_dir() for n in PACKAGES)
    assert not (WIDGETS / "layout").exists(), "the old layout modules live in each package now"


@pytest.mark.parametrize("name", PACKAGES)
def test_a_widget_is_a_package_of_four_modules(name):
    assert sorted(p.name for p in (WIDGETS / name).glob("*.py")) == sorted(PARTS)
    left = [p for p in (WIDGETS / f"{name}.py", WIDGETS / f"{name}_controls.py",
                        WIDGETS / "layout" / f"{name}.py") if p.exists()]
    assert not left, left


@pytest.mark.parametrize("name", PACKAGES)
@pytest.mark.parametrize("part", ("paint", "geometry"))
def test_paint_and_geometry_import_no_widget_library(name, part):
    mods = _reached(f"cnn_widgets.widgets.{name}.{part}")
    bad = sorted(f"{m} imports {lib}" for m in mods for lib in _external(MODULES[m])
                 if lib in WIDGET_LIBRARIES)
    assert not bad and f"cnn_widgets.widgets.{name}" not in mods, bad


@pytest.mark.parametrize("name", PACKAGES)
def test_controls_assign_nothing_onto_the_widget(name):
    tree = ast.parse((WIDGETS / name / "controls.py").read_text())
    targets = [t for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AugAssign))
               for t in (n.targets if isinstance(n, ast.Assign) else [n.target])]
    assert not [ast.unparse(t) for t in targets if isinstance(t, ast.Attribute)]


@pytest.mark.parametrize("name", PACKAGES)
def test_one_observer_named_on_state_and_one_way_to_sync_controls(name):
    source = (WIDGETS / name / "__init__.py").read_text()
    tree = ast.parse(source)
    observers = [f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
                 for d in f.decorator_list if "observe" in ast.unparse(d)]
    assert observers == ["_on_state"]
    for idiom in ("_syncing", "W.link(", "jslink(", "dlink(", "control.partial(",
                  "on_samples", "nonlocal"):
        assert idiom not in source, idiom
