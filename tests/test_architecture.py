"""The layout is the architecture: core below the paper packages, the facade above them, no
import circles, and a facade whose signatures show every keyword."""
import ast
import inspect
from pathlib import Path

import pytest

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
