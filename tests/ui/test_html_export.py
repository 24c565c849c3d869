"""Views that outlive the kernel (issue 17, part 3): the tour, executed with nbclient (smoke
sizes) and stored with its widget state the way ``python tools/notebook_runner.py``
stores it, shows each widget's last view as a picture where no kernel runs:

- exported to HTML with nbconvert (what nbviewer serves) and opened in Chromium on a closed
  network: the CDN requests for the widget JavaScript are answered from this machine (the
  html-manager and require.js from the npm registry, fetched by ``.ci/widget-js`` into
  $CNN_WIDGETS_WIDGET_JS; bqplot, bqscales and ipycanvas from their Python packages' bundled
  files), every other request outside localhost is refused;
- reopened in JupyterLab without running it: trusted (the widget views from the saved state)
  and not trusted (JupyterLab then renders only safe mime types: the PNG beside each view);
- exported without its widget state (a notebook saved without it, or a renderer without the
  widget JavaScript such as GitHub): the PNG beside each view.

"A picture" = at least MIN_PAINTED painted pixels (canvases: not transparent; PNGs: not white)
whose brightness varies (std >= MIN_STD); where the widget views render, each canvas also
shows every pixel its stored picture paints.
"""
import base64
import copy
import functools
import http.server
import io
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from jupyter_core.paths import jupyter_path
from lab_helpers import NOTEBOOK
from notebook_runner import NOTEBOOKS, WIDGET_VIEW, run_notebook
from PIL import Image

ROOTS = {"EtalonGrid": ".cnnw-etalon-grid", "FOVExplorer": ".cnnw-fov",
         "MaximizerPanel": ".cnnw-maximizer", "PredictionTreeView": ".cnnw-prediction-tree",
         "InverseSetGallery": ".cnnw-inverse-set"}
MIN_PAINTED, MIN_STD = 500, 8.0
WIDGETS = list(ROOTS)
PAINT_JS = """root => {
  let n = 0, s = 0, s2 = 0;
  for (const el of root.querySelectorAll('canvas')) {
    if (!el.width || !el.height) continue;
    const d = el.getContext('2d').getImageData(0, 0, el.width, el.height).data;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] === 0) continue;
      const v = (d[i] + d[i + 1] + d[i + 2]) / 3;
      n++; s += v; s2 += v * v;
    }
  }
  const m = n ? s / n : 0;
  return {painted: n, std: n ? Math.sqrt(Math.max(s2 / n - m * m, 0)) : 0};
}"""
CDN = re.compile(r"^https://(?:unpkg\.com|cdn\.jsdelivr\.net/npm)/((?:@[^/@]+/)?[^/@]+)@[^/]*/dist/(.+)$")
REQUIRE = re.compile(r"^https://cdnjs\.cloudflare\.com/ajax/libs/require\.js/[^/]+/require(\.min)?\.js$")


def widget_js() -> Path:
    folder = Path(os.environ.get("CNN_WIDGETS_WIDGET_JS", "/nonexistent"))
    if not (folder / "html-manager/dist/embed-amd.js").is_file():
        msg = ("the html-manager is not fetched: export CNN_WIDGETS_WIDGET_JS=\"$(bash "
               ".ci/widget-js)\" (npm registry)")
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return folder


def local_file(url: str, js: Path) -> Path | None:
    """The file on this machine that answers a CDN request for widget JavaScript."""
    if REQUIRE.match(url):
        return js / "requirejs/require.js"
    m = CDN.match(url)
    if m is None:
        return None
    package, file = m.groups()
    if package == "@jupyter-widgets/html-manager":
        return js / "html-manager/dist" / file
    for base in jupyter_path("nbextensions"):   # the Python package's bundled AMD module
        if (Path(base) / package / file).is_file():
            return Path(base) / package / file
    return None


@pytest.fixture(scope="module")
def tour():
    """The tour executed at smoke sizes with its widget state, settled as the runner does."""
    return run_notebook(NOTEBOOKS / "00_tour.ipynb", smoke=True).nb


STATE = "application/vnd.jupyter.widget-state+json"


def stored_pictures(nb) -> dict:
    """widget name -> {DOM class of a canvas: how many pixels its layers' pictures in the
    saved widget state paint (alpha > 0)}, for every canvas of the widget that has one."""
    state = nb.metadata["widgets"][STATE]["state"]

    def refs(model_id, keys=("children", "_canvases")):
        for key in keys:
            for ref in state[model_id]["state"].get(key, []):
                yield ref.removeprefix("IPY_MODEL_")

    def painted(multi):
        alpha = None
        for layer in refs(multi, ("_canvases",)):
            for b in state[layer].get("buffers", []):
                if b["path"] == ["image_data"]:
                    a = np.asarray(Image.open(io.BytesIO(base64.b64decode(b["data"])))
                                   .convert("RGBA"))[..., 3] > 0
                    alpha = a if alpha is None else alpha | a
        return 0 if alpha is None else int(alpha.sum())

    out = {}
    for name, sel in ROOTS.items():
        roots = [m for m, v in state.items() if sel[1:] in v["state"].get("_dom_classes", [])]
        assert len(roots) == 1, (name, roots)
        seen, stack, found = set(), list(roots), {}
        while stack:
            m = stack.pop()
            if m in seen:
                continue
            seen.add(m)
            stack.extend(refs(m))
            v = state[m]
            if v["model_name"] == "MultiCanvasModel" and (n := painted(m)):
                found[next(c for c in v["state"]["_dom_classes"] if c.startswith("cnnw-"))] = n
        out[name] = found
    return out


CANVAS_JS = """([root, cls]) => {
  const el = root.querySelector('canvas.' + cls);
  if (!el || !el.width || !el.height) return 0;
  const d = el.getContext('2d').getImageData(0, 0, el.width, el.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
  return n;
}"""


def measure(page, artifacts, prefix: str, stored: dict) -> dict:
    """Wait (up to 60 s) until every widget root is there and each canvas with a stored
    picture paints as many pixels as that picture; screenshot each root and return
    name -> {painted, std, canvases: {class: painted}}."""
    wanted = [[sel, cls, n] for name, sel in ROOTS.items() for cls, n in stored[name].items()]
    try:
        page.wait_for_function(
            f"""([all, wanted]) => {{
              const count = ({CANVAS_JS});
              return document.querySelectorAll(all).length >= {len(ROOTS)} &&
                wanted.every(([sel, cls, n]) => {{ const r = document.querySelector(sel);
                                                   return r && count([r, cls]) >= n; }});
            }}""", arg=[", ".join(ROOTS.values()), wanted], timeout=60_000)
    except Exception as exc:  # measure anyway: the assertions say which canvas is blank
        print(f"{prefix}: not every stored picture shown: {exc}")
    out = {}
    for name, root_sel in ROOTS.items():
        root = page.locator(root_sel)
        if root.count() == 0:
            out[name] = {"painted": 0, "std": 0.0, "canvases": {}, "missing": True}
            continue
        root.first.scroll_into_view_if_needed()
        root.first.screenshot(path=str(artifacts / f"{prefix}-{name}.png"))
        out[name] = root.first.evaluate(PAINT_JS)
        out[name]["canvases"] = {cls: root.first.evaluate(
            f"(root, cls) => ({CANVAS_JS})([root, cls])", cls) for cls in stored[name]}
    return out


def assert_shown(got: dict, stored: dict, name: str) -> None:
    """The widget shows a picture, and every canvas its whole stored picture."""
    assert got["painted"] >= MIN_PAINTED and got["std"] >= MIN_STD, (name, got)
    for cls, n in stored.items():
        assert got["canvases"][cls] >= n, (name, cls, got["canvases"][cls], n)


@pytest.fixture(scope="module")
def html_view(tour, browser, artifacts, tmp_path_factory):
    """The tour's nbconvert HTML (with widget state) in Chromium, closed network."""
    from nbconvert import HTMLExporter

    js = widget_js()
    folder = tmp_path_factory.mktemp("html")
    body, _ = HTMLExporter().from_notebook_node(tour)
    (folder / "tour.html").write_text(body, encoding="utf-8")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    served, refused = [], []

    def route(r):
        url = r.request.url
        if url.startswith(f"http://127.0.0.1:{server.server_port}/"):
            return r.continue_()
        f = local_file(url, js)
        if f is not None and f.is_file():
            served.append(url)
            return r.fulfill(path=str(f))
        refused.append(url)
        return r.abort()

    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.route("**/*", route)
    try:
        page.goto(f"http://127.0.0.1:{server.server_port}/tour.html")
        found = measure(page, artifacts, "static-html", stored_pictures(tour))
        page.screenshot(path=str(artifacts / "static-html-page.png"), full_page=True)
        text = page.locator("body").inner_text()
    finally:
        ctx.close()
        server.shutdown()
    return {"measured": found, "served": served, "refused": refused, "text": text}


def test_html_export_loads_the_widget_javascript_from_this_machine_only(html_view):
    served = " ".join(html_view["served"])
    for package in ("html-manager", "require", "ipycanvas", "bqplot", "bqscales"):
        assert package in served, (package, html_view["served"])
    # nothing a widget needs was refused (MathJax and mermaid are refused: not needed)
    assert not [u for u in html_view["refused"] if "/dist/" in u], html_view["refused"]
    assert "Error displaying widget" not in html_view["text"]


@pytest.mark.parametrize("name", WIDGETS)
def test_html_export_shows_each_widget_as_a_picture(tour, html_view, name):
    assert_shown(html_view["measured"][name], stored_pictures(tour)[name], name)


def widget_cells(nb) -> dict:
    """widget name -> index among the code cells of the cell that shows it (its root's DOM
    class, read from the saved widget state)."""
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    classes = {sel[1:]: name for name, sel in ROOTS.items()}
    out = {}
    for k, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        for o in cell.outputs:
            view = o.get("data", {}).get(WIDGET_VIEW)
            if view is not None:
                dom = state[view["model_id"]]["state"].get("_dom_classes", [])
                out.update({classes[c]: k for c in dom if c in classes})
    return out


# an <img> of a PNG on white: painted = pixels darker than white
IMAGE_PAINT_JS = """img => {
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d');
  g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let n = 0, s = 0, s2 = 0;
  for (let i = 0; i < d.length; i += 4) {
    const v = (d[i] + d[i + 1] + d[i + 2]) / 3;
    if (v >= 250) continue;
    n++; s += v; s2 += v * v;
  }
  const m = n ? s / n : 0;
  return {painted: n, std: n ? Math.sqrt(Math.max(s2 / n - m * m, 0)) : 0};
}"""


@pytest.fixture(scope="module")
def lab_views(tour, lab_server, browser, artifacts):
    """The executed tour reopened in JupyterLab, nothing run: as anyone opens a notebook they
    did not run ("untrusted": JupyterLab renders only safe mime types, so the PNG beside each
    view, never the widget) and as its author does ("trusted": the widget views, from the
    saved state)."""
    import nbformat
    from nbformat.sign import NotebookNotary

    # the server's Jupyter data dir (conftest.py: <base>/home/data) holds its signing key
    notary = NotebookNotary(data_dir=str(lab_server.root.parent / "home" / "data"))
    cells, out = widget_cells(tour), {}
    for trust in ("untrusted", "trusted"):
        nb = copy.deepcopy(tour)
        nb.metadata["cnnw_copy"] = trust       # a different signature for each copy
        if trust == "trusted":
            notary.sign(nb)
        nbformat.write(nb, lab_server.root / "notebooks" / f"tour-{trust}.ipynb")
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        try:
            page.goto(lab_server.notebook_url(f"notebooks/tour-{trust}.ipynb"))
            page.wait_for_selector(NOTEBOOK)
            if trust == "trusted":
                found = measure(page, artifacts, "static-lab", stored_pictures(tour))
            else:
                found = measure_pngs(page, artifacts, cells)
            page.screenshot(path=str(artifacts / f"static-lab-{trust}-page.png"), full_page=True)
            prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_text_contents()
        finally:
            ctx.close()
            shut_down(lab_server, f"notebooks/tour-{trust}.ipynb")
        out[trust] = {"measured": found, "prompts": prompts}
    return out


def shut_down(lab_server, path: str) -> None:
    """End the kernel JupyterLab started for ``path`` (the later tests share two cores)."""
    import json
    import urllib.request

    api = f"{lab_server.url}/api/sessions"
    with urllib.request.urlopen(f"{api}?token={lab_server.token}", timeout=10) as r:
        sessions = json.load(r)
    for s in sessions:
        if s.get("path") == path:
            urllib.request.urlopen(urllib.request.Request(
                f"{api}/{s['id']}?token={lab_server.token}", method="DELETE"), timeout=30)


def measure_pngs(page, artifacts, cells) -> dict:
    """name -> {painted (non-white), std} of the image in the output of the widget's cell."""
    code = page.locator(".jp-CodeCell")
    raster = list(cells.values())
    try:
        page.wait_for_function(
            """ks => { const c = document.querySelectorAll('.jp-CodeCell');
                       return ks.every(k => { const i = c[k] && c[k].querySelector(
                         '.jp-OutputArea-output img');
                         return i && i.complete && i.naturalWidth > 0; }); }""",
            arg=raster, timeout=60_000)
    except Exception as exc:  # measure anyway: the assertions say which widget has no picture
        print(f"untrusted: not every picture shown: {exc}")
    out = {}
    for name, k in cells.items():
        img = code.nth(k).locator(".jp-OutputArea-output img")
        if img.count() == 0:
            out[name] = {"painted": 0, "std": 0.0, "missing": True}
            continue
        img.first.scroll_into_view_if_needed()
        img.first.screenshot(path=str(artifacts / f"static-lab-untrusted-{name}.png"))
        out[name] = img.first.evaluate(IMAGE_PAINT_JS)
    return out


@pytest.mark.parametrize("trust", ["untrusted", "trusted"])
@pytest.mark.parametrize("name", WIDGETS)
def test_jupyterlab_reopen_shows_each_widget_as_a_picture(tour, lab_views, trust, name):
    seen = lab_views[trust]
    assert seen["prompts"] and not any("*" in p for p in seen["prompts"])   # nothing ran
    got = seen["measured"][name]
    if trust == "trusted":
        assert_shown(got, stored_pictures(tour)[name], name)
    else:
        assert got["painted"] >= MIN_PAINTED and got["std"] >= MIN_STD, (name, got)


@pytest.mark.parametrize("name", WIDGETS)
def test_without_widget_state_each_view_falls_back_to_its_png(tour, name):
    """nbconvert renders a widget view only if the notebook holds its state; otherwise (like
    GitHub, which has no widget JavaScript) it shows the next mime type: the PNG."""
    from nbconvert import HTMLExporter

    views = [o.data for cell in tour.cells if cell.cell_type == "code" for o in cell.outputs
             if WIDGET_VIEW in o.get("data", {})]
    assert len(views) == len(ROOTS)
    data = views[list(ROOTS).index(name)]
    assert "image/png" in data, name
    stateless = copy.deepcopy(tour)
    del stateless.metadata["widgets"]
    body, _ = HTMLExporter().from_notebook_node(stateless)
    assert f'src="data:image/png;base64,{data["image/png"]}"' in body
    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(data["image/png"]))).convert("L"),
                     dtype=np.float64)
    painted = img < 250                                  # the page is white
    assert painted.sum() >= MIN_PAINTED and img[painted].std() >= MIN_STD, name
