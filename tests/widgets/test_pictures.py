"""What a widget shows outlives the kernel (issue 17, part 3): every canvas keeps the pixels put
on it and stores them as PNG in the widget state; snapshot() lays the canvases out as the
widget's boxes do; save() and the Save button write it; settle() brings the PNG beside each
displayed view up to date."""
import base64
import io
import time

import ipywidgets as W
import numpy as np
import pytest
from ipycanvas import Canvas
from PIL import Image

from cnn_widgets import EtalonGrid
from cnn_widgets.engine import InvalidType
from cnn_widgets.widgets import pictures, settle, snapshot
from cnn_widgets.widgets.pictures import GAP, Surface


def block(h, w, rgba):
    return np.broadcast_to(np.array(rgba, np.uint8), (h, w, 4)).copy()


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def test_a_canvas_keeps_what_is_put_on_it_as_a_browser_canvas_would():
    s = Surface(width=6, height=5)
    assert pictures.pixels(s) is None
    red = block(3, 4, (200, 0, 0, 255))
    s.put_image_data(red, 4, 3)                       # partly outside: clipped
    want = np.zeros((5, 6, 4), np.uint8)
    want[3:5, 4:6] = red[:2, :2]
    np.testing.assert_array_equal(pictures.pixels(s), want)

    half = block(5, 6, (0, 0, 255, 128))              # drawImage composes source-over
    s.put_image_data(half, 0, 0)
    sa, da = 128 / 255, want[..., 3:4] / 255
    a = sa + da * (1 - sa)
    rgb = (np.array([0, 0, 255]) * sa + want[..., :3] * da * (1 - sa)) / a
    np.testing.assert_array_equal(pictures.pixels(s)[..., :3], np.rint(rgb).astype(np.uint8))
    np.testing.assert_array_equal(pictures.pixels(s)[..., 3:4], np.rint(a * 255).astype(np.uint8))

    s.put_image_data(block(2, 2, (0, 90, 0, 255))[..., :3], 0, 0)   # RGB: opaque
    np.testing.assert_array_equal(pictures.pixels(s)[:2, :2], block(2, 2, (0, 90, 0, 255)))
    s.clear()
    assert pictures.pixels(s) is None
    s.put_image_data(red, 0, 0)
    s.width = 8                                       # a resized browser canvas is blank
    assert pictures.pixels(s) is None


def test_a_surface_takes_the_canvas_drawing_api_for_its_layer():
    s, clicks = Surface(width=10, height=10), []
    s.fill_style, s.font = "#222", "12px serif"
    assert (s[0].fill_style, s[0].font) == ("#222", "12px serif")
    assert s.fill_text == s[0].fill_text and isinstance(s[0], Canvas)
    s.on_mouse_down(lambda x, y: clicks.append((x, y)))
    s._handle_frontend_event(None, {"event": "mouse_down", "x": 3, "y": 4}, [])
    assert clicks == [(3, 4)]
    with pytest.raises(AttributeError):
        getattr(s, "no_such_thing")  # noqa: B009 - the lookup is the test
    two = Surface(2, width=4, height=3)
    two[0].put_image_data(block(3, 4, (0, 0, 200, 255)))
    two[1].put_image_data(block(1, 1, (255, 255, 0, 255)), 1, 1)
    want = block(3, 4, (0, 0, 200, 255))
    want[1, 1] = (255, 255, 0, 255)
    np.testing.assert_array_equal(pictures.pixels(two), want)   # layers composed in order


def test_the_picture_goes_into_the_widget_state():
    s = Surface(width=7, height=4)
    pic = np.random.default_rng(0).integers(0, 256, (4, 7, 4), dtype=np.uint8)
    s.put_image_data(pic)
    seen = pic[..., 3] > 0                            # a transparent pixel has no colour
    np.testing.assert_array_equal(pictures.pixels(s)[seen], pic[seen])
    pictures.store_now()
    np.testing.assert_array_equal(decode(s[0].image_data), pictures.pixels(s))   # lossless
    s.clear()
    pictures.store_now()
    assert (decode(s[0].image_data)[..., 3] == 0).all()     # cleared: an empty picture


def test_store_now_sends_every_picture_again(monkeypatch):
    """nbclient records only what arrives while a cell runs: a picture stored between two
    cells would be lost to the saved notebook unless the last cell sends it again."""
    s = Surface(width=2, height=2)
    s.put_image_data(block(2, 2, (1, 2, 3, 255)))
    pictures.store_now()
    sent = []
    monkeypatch.setattr(pictures.Layer, "send_state",
                        lambda self, key=None: sent.append((self, key)))
    pictures.store_now()                       # nothing changed: sent all the same
    assert (s[0], "image_data") in sent


def test_the_picture_is_stored_by_itself_once_drawing_pauses():
    s = Surface(width=3, height=3)
    s.put_image_data(block(3, 3, (1, 2, 3, 255)))
    end = time.monotonic() + 30
    while s[0].image_data is None and time.monotonic() < end:
        time.sleep(0.05)
    np.testing.assert_array_equal(decode(s[0].image_data), block(3, 3, (1, 2, 3, 255)))


def test_compose_lays_canvases_out_as_their_boxes_do():
    a, b, c, hidden, col = (Surface(width=2, height=3), Surface(width=4, height=2),
                            Surface(width=1, height=5), Surface(width=9, height=9),
                            Surface(width=2, height=1))
    a.put_image_data(block(3, 2, (255, 0, 0, 255)))
    b.put_image_data(block(2, 4, (0, 255, 0, 255)))
    hidden.put_image_data(block(9, 9, (9, 9, 9, 255)))
    hidden.layout.display = "none"
    col.put_image_data(block(1, 2, (0, 0, 255, 255)))
    column = W.Box([col, W.Label("x"), col], layout=W.Layout(flex_flow="column"))
    root = W.VBox([W.Button(), a, W.HBox([b, W.Label("text"), hidden, c, column])])

    got = pictures.compose(root)
    row_y, col_x = 3 + GAP, 4 + GAP + 1 + GAP
    want = np.zeros((row_y + 1 + GAP + 1, max(2, col_x + 2), 4), np.uint8)   # column: tallest
    want[:3, :2] = (255, 0, 0, 255)
    want[row_y:row_y + 2, :4] = (0, 255, 0, 255)       # c is empty: transparent, its size
    want[row_y:row_y + 1, col_x:col_x + 2] = (0, 0, 255, 255)
    want[row_y + 1 + GAP:row_y + 2 + GAP, col_x:col_x + 2] = (0, 0, 255, 255)
    np.testing.assert_array_equal(got, want)
    assert pictures.compose(W.VBox([W.Label("no canvas")])) is None


def test_a_painted_sheet_is_kept_with_its_captions(engine):
    from cnn_widgets.widgets._base import JobWidget
    from cnn_widgets.widgets.canvas import new_canvas
    from cnn_widgets.widgets.sheets import Caption, Sheet

    w = JobWidget(engine)
    canvas = new_canvas(60, 20, "cnnw-test")
    w.children = [canvas]
    white = block(20, 60, (255, 255, 255, 255))
    w.paint(canvas, Sheet(white, (Caption("Hi 42", 3, 14),)))
    kept = pictures.pixels(canvas)
    dark = kept[..., :3].max(-1) < 128                # written by the caption only
    rows, cols = np.nonzero(dark)
    assert dark.sum() > 10
    assert rows.max() <= 14 and rows.min() >= 14 - 12 and cols.min() >= 3 and cols.max() < 40
    np.testing.assert_array_equal(kept[~dark][:, 3], 255)   # the rest is the sheet
    w.paint(canvas, "a hint")                         # a hint: nothing kept
    assert pictures.pixels(canvas) is None
    w.close()


@pytest.fixture
def grid(engine, monkeypatch):
    sent = {}                              # layer -> the last array sent to the browser
    put = Canvas.put_image_data

    def spy(self, image_data, x=0, y=0):
        sent[self] = np.array(image_data)
        return put(self, image_data, x, y)
    monkeypatch.setattr(Canvas, "put_image_data", spy)
    g = EtalonGrid(engine, indices=[0, 1, 2])
    assert g.wait(60)
    g.sent = sent
    return g


def test_snapshot_is_what_the_canvases_were_sent_laid_out(grid, tmp_path):
    canvas = grid.controls.grid_canvas
    sheet = grid._sheets()[canvas]                    # what paint.py made for it
    np.testing.assert_array_equal(grid.sent[canvas[0]], sheet.rgba)   # what the browser got
    assert sheet.captions and sheet.rgba.shape[:2] == (canvas.height, canvas.width)
    kept = pictures.pixels(canvas)
    np.testing.assert_array_equal(kept, pictures.with_captions(sheet.rgba, sheet.captions,
                                                               sheet.font))
    assert (kept != sheet.rgba).any()                 # the captions are in the picture
    snap = grid.snapshot()
    assert snap.dtype == np.uint8 and snap.shape[2] == 4 and (snap[..., 3] == 255).all()
    # the grid is the first canvas of the layout: top left
    np.testing.assert_array_equal(snap[:kept.shape[0], :kept.shape[1]], pictures.on_white(kept))
    path = grid.save(tmp_path / "grid.png")
    np.testing.assert_array_equal(decode(path.read_bytes()), snap)
    with pytest.raises(InvalidType, match="expected a str or os.PathLike; got int"):
        grid.save(3)


def test_the_save_button_writes_the_next_free_file(grid, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "cnnw-save" in grid.save_button._dom_classes
    assert grid.save_button in grid.status_bar.children
    grid.save_button.click()
    grid.save_button.click()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["EtalonGrid-1.png", "EtalonGrid-2.png"]
    assert grid.status.value == "saved EtalonGrid-2.png"
    np.testing.assert_array_equal(decode((tmp_path / "EtalonGrid-1.png").read_bytes()),
                                  grid.snapshot())


def test_settle_updates_the_png_beside_each_displayed_view(engine, monkeypatch):
    shown = []

    class Handle:
        def __init__(self, data):
            self.data = data

        def update(self, data, raw):
            assert raw
            self.data = data

    def display(data, raw, display_id):
        assert raw and display_id is True
        shown.append(Handle(data))
        return shown[-1]
    monkeypatch.setattr("IPython.display.display", display)
    g = EtalonGrid(engine, indices=[0, 1])
    g._ipython_display_()                       # what IPython calls for `g` as a cell's result
    view = shown[0].data["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == g.model_id and "image/png" not in shown[0].data
    g.indices = [3, 4, 5]                       # the view changes after it was displayed
    assert settle(60)
    png = decode(base64.b64decode(shown[0].data["image/png"]))
    np.testing.assert_array_equal(png, g.snapshot())
    canvas = g.controls.grid_canvas
    assert canvas[0].image_data is not None                  # stored without waiting
    np.testing.assert_array_equal(decode(canvas[0].image_data), pictures.pixels(canvas))
    assert g in snapshot._SHOWN


def test_every_drawing_batch_names_its_canvas_first(monkeypatch):
    """A front end that connects between two batches on one canvas (Voila showing the tour
    while its jobs draw, a reload) has no current canvas: a batch without its switchCanvas
    failed there and stopped all later drawing on the page."""
    from cnn_widgets.widgets.canvas import drawing, put_rgba

    s = Surface(width=4, height=4)
    manager, sent = s[0]._canvas_manager, []
    monkeypatch.setattr(manager, "_send_custom", lambda command, buffers=None: sent.append(command))
    for _ in range(2):
        with drawing():
            put_rgba(s, block(4, 4, (1, 2, 3, 255)))
    assert len(sent) == 2
    for batch in sent:
        assert batch[0][1][0] == f"IPY_MODEL_{s[0].model_id}", batch[:1]
    s.close()
