"""Every notebook executes top to bottom on the embedded default (smaller timings via
CNN_WIDGETS_SMOKE=1), and the etalon notebook's printed exactness checks hold."""
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture(scope="module")
def executed(tmp_path_factory, monkeypatch_module):
    """name -> the executed notebook; each notebook runs once per test session."""
    monkeypatch_module.setenv("CNN_WIDGETS_SMOKE", "1")
    cache = {}

    def run(name):
        if name not in cache:
            nb = nbformat.read(NOTEBOOKS / name, as_version=4)
            NotebookClient(nb, kernel_name="python3", timeout=600, resources={
                "metadata": {"path": str(tmp_path_factory.mktemp("nb"))}}).execute()
            cache[name] = nb
        return cache[name]
    return run


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def text_of(nb):
    return "\n".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                     for out in cell.outputs if out.output_type == "stream")


def widget_views(nb):
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
            if "application/vnd.jupyter.widget-view+json" in out.get("data", {})]


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_runs(name, executed):
    nb = executed(name)
    errors = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
              if out.output_type == "error"]
    assert not errors, errors
    assert widget_views(nb), "every notebook shows at least one live widget"


def test_etalon_notebook_checks_hold(executed):
    text = text_of(executed("01_etalons.ipynb"))
    number = r"([0-9.]+e[-+]\d+)"
    fast_vs_paper = float(re.search(r"1\. max \|W_fast - W_paper\| / max \|W\| = " + number, text)[1])
    reproduces = float(re.search(r"2\. max \|<W,x> \+ b - f\(x\)\| \(paper's W and b\) = " + number, text)[1])
    small, large = (float(v) for v in re.findall(r"max \|f\(x\+δ\) - \(<W,x\+δ> \+ b\)\| = " + number, text))
    assert fast_vs_paper <= 1e-5 and reproduces <= 1e-4 and small <= 1e-4
    assert large > 1e-2                      # outside the region the map no longer holds
    assert re.search(r"test accuracy (9[5-9]|100)\.\d\d%", text)
    ratios = [int(v) for v in re.findall(r"\((\d+)x\)", text)]
    assert len(ratios) == 2 and all(r > 1 for r in ratios)
