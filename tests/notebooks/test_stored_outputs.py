"""The notebooks are committed executed (``python tools/notebook_runner.py``), so a
reader on GitHub, nbviewer or a slow Binder sees results without running anything: no error
output, every code cell executed and, unless it only imports, defines or assigns (or is tagged
``no-output``), showing something; every widget view with its saved state; at most 3 MB each;
and no machine's folders in what they show."""
import json
from pathlib import Path

import nbformat
import pytest

from notebook_runner import (
    MAX_BYTES,
    NOTEBOOKS,
    missing_pictures,
    needs_output,
    stored_problems,
)

NAMES = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


@pytest.mark.parametrize("name", NAMES)
def test_stored_notebook_is_executed_complete_and_small(name):
    problems = stored_problems(NOTEBOOKS / name)
    assert not problems, f"{name} (re-run python tools/notebook_runner.py):\n" + \
        "\n".join(problems)


def machine_paths(nb) -> list[str]:
    """The outputs and widget state of ``nb`` (images aside) that name a folder of the machine
    that ran it: a worktree under /work/ or the user's home."""
    home = str(Path.home())
    paths = ["/work/"] + ([home + "/"] if len(home) > 1 else [])     # a home of "/" names no folder
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            shown = {k: v for k, v in out.items() if k != "data"}
            shown["data"] = {k: v for k, v in out.get("data", {}).items() if not k.startswith("image/")}
            text = json.dumps(shown)
            found += [f"cell {i}: {p}" for p in paths if p in text]
    state = json.dumps(nb.metadata.get("widgets", {}))
    return found + [f"widget state: {p}" for p in paths if p in state]


@pytest.mark.parametrize("name", NAMES)
def test_stored_notebook_names_no_machine_path(name):
    found = machine_paths(nbformat.read(NOTEBOOKS / name, as_version=4))
    assert not found, f"{name} (re-run python tools/notebook_runner.py):\n" + "\n".join(found)


def test_the_path_check_finds_a_path_in_text_but_not_in_images(tmp_path):
    text = dict(TEXT, text=f"loaded from {Path.home()}/.cache/x.pt\n")
    assert machine_paths(nbformat.read(_write(tmp_path, [_cell("f()", [text])]), as_version=4))
    image = {"output_type": "display_data", "metadata": {}, "data": {"image/png": "AA/work/AA"}}
    assert not machine_paths(nbformat.read(_write(tmp_path, [_cell("f()", [image])]), as_version=4))


def _cell(source, outputs=(), tags=(), count=1):
    cell = nbformat.v4.new_code_cell(source, execution_count=count, metadata={"tags": list(tags)})
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    return cell


def _write(tmp_path, cells, widgets=None, pad=0):
    nb = nbformat.v4.new_notebook(cells=cells)
    if widgets is not None:
        nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json":
                                  {"version_major": 2, "version_minor": 0, "state": widgets}}
    if pad:
        nb.metadata["padding"] = "x" * pad
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    return path


TEXT = {"output_type": "stream", "name": "stdout", "text": "hi\n"}
VIEW = {"output_type": "display_data", "metadata": {}, "data": {
    "text/plain": "Grid(...)", "application/vnd.jupyter.widget-view+json":
        {"model_id": "abc", "version_major": 2, "version_minor": 0}}}


def test_the_check_finds_each_fault(tmp_path):
    assert stored_problems(_write(tmp_path, [_cell("x = 1"), _cell("print(x)", [TEXT])])) == []
    error = {"output_type": "error", "ename": "ValueError", "evalue": "bad", "traceback": []}
    assert "ValueError: bad" in stored_problems(_write(tmp_path, [_cell("f()", [error])]))[0]
    assert "has no output" in stored_problems(_write(tmp_path, [_cell("print(1)")]))[0]
    assert stored_problems(_write(tmp_path, [_cell("print(1)", tags=["no-output"])])) == []
    assert "not executed" in stored_problems(_write(tmp_path, [_cell("x = 1", count=None)]))[0]
    assert "no saved state" in stored_problems(_write(tmp_path, [_cell("grid", [VIEW])]))[0]
    assert stored_problems(_write(tmp_path, [_cell("grid", [VIEW])], widgets={"abc": {}})) == []
    big = _write(tmp_path, [_cell("x = 1")], pad=MAX_BYTES)
    assert "MB >" in stored_problems(big)[0]


def test_which_cells_must_show_something():
    assert not needs_output(_cell("import os\nfrom a import b\nx = 1\ny: int = 2\nx += 1"))
    assert not needs_output(_cell("def f():\n    print(1)\nclass A:\n    pass"))
    assert needs_output(_cell("x = 1\nx"))
    assert needs_output(_cell("for i in range(2):\n    print(i)"))
    assert needs_output(_cell("show(panels)"))


@pytest.mark.parametrize("name", NAMES)
def test_stored_widgets_keep_their_last_view(name):
    problems = missing_pictures(NOTEBOOKS / name)
    assert not problems, f"{name} (re-run python tools/notebook_runner.py):\n" + \
        "\n".join(problems)


def test_the_picture_check_finds_each_fault(tmp_path):
    canvas = {"model_name": "CanvasModel", "state": {},
              "buffers": [{"path": ["image_data"], "encoding": "base64", "data": "iVBO"}]}
    tree = {"abc": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_m"],
                                                         "_dom_classes": ["cnnw-etalon-grid"]}},
            "m": {"model_name": "MultiCanvasModel", "state": {"_canvases": ["IPY_MODEL_c"]}},
            "c": canvas}
    blank = {**tree, "c": {**canvas, "buffers": []}}
    with_png = {**VIEW, "data": {**VIEW["data"], "image/png": "iVBO"}}
    assert missing_pictures(_write(tmp_path, [_cell("grid", [with_png])], widgets=tree)) == []
    assert "no PNG" in missing_pictures(_write(tmp_path, [_cell("grid", [VIEW])], widgets=tree))[0]
    assert "no canvas picture" in missing_pictures(
        _write(tmp_path, [_cell("grid", [with_png])], widgets=blank))[0]
    other = {**blank, "abc": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_m"]}}}
    figure = _cell("bq.Figure()", [VIEW])                      # another library's widget
    assert "no static picture" in missing_pictures(_write(tmp_path, [figure], widgets=other))[0]
    figure.outputs.append(nbformat.from_dict({"output_type": "display_data", "metadata": {},
                                              "data": {"image/png": "iVBO"}}))
    assert missing_pictures(_write(tmp_path, [figure], widgets=other)) == []
