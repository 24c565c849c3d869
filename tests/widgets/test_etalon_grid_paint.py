"""EtalonGrid's pictures (pure: etalons in, RGBA sheets and captions out; no widget)."""
from types import SimpleNamespace

import numpy as np

from cnn_widgets.widgets.etalon_grid.geometry import GAP, HEADER
from cnn_widgets.widgets.etalon_grid.paint import FRAME, PENDING, detail_sheet, grid_sheet


def rows(n, p, hw=(28, 28), seed=0):
    """Etalons-like rows: W with both signs, zeros in a band, out with a known argmax."""
    g = np.random.default_rng(seed)
    W = g.normal(size=(n, p, 1, *hw)).astype(np.float32)
    W[..., :4, :] = 0.0
    out = g.normal(size=(n, p)).astype(np.float32)
    return SimpleNamespace(W=W, out=out, x=g.random((n, 1, *hw)).astype(np.float32))


def cell(sheet, layout, row, col):
    top, left = layout.corner(row, col)
    h, w = layout.cell
    return sheet.rgba[top:top + h, left:left + w].astype(int)


def test_cells_are_red_where_the_etalon_is_positive_and_blue_where_negative():
    res = rows(2, 3)
    sheet, g = grid_sheet(res.x, ["a", "b"], ["u0", "u1", "u2"], res)
    k = g.cell[0] // 28
    for row, unit in [(0, 0), (1, 2)]:
        etalon = res.W[row, unit, 0]
        px = cell(sheet, g, row, unit + 1)
        strong = np.abs(etalon) > 0.5 * np.abs(etalon).max()
        for y, x in zip(*np.nonzero(strong)):
            r, _, b = px[y * k, x * k, :3]
            assert (r > b) == (etalon[y, x] > 0), (row, unit, y, x)
        assert px[0:4 * k, :, :3].min() > 240                          # zero is white


def test_each_rows_strongest_unit_is_framed_outside_its_cell():
    res = rows(2, 3)
    sheet, g = grid_sheet(res.x, ["a", "b"], ["u0", "u1", "u2"], res)
    for row in range(2):
        for unit in range(3):
            x, y, w, h = g.frame(row, unit)
            ring = sheet.rgba[y - 1, x + 1:x + w - 1]             # the line just above the cell
            framed = (ring == FRAME).all()
            assert framed == (unit == int(np.argmax(res.out[row]))), (row, unit)


def test_rows_not_done_show_their_input_and_grey_cells_and_no_scores():
    res = rows(3, 2)
    done = SimpleNamespace(W=res.W[:1], out=res.out[:1], x=res.x[:1])
    sheet, g = grid_sheet(res.x, ["a", "b", "c"], ["u0", "u1"], done)
    for row in (1, 2):
        assert (cell(sheet, g, row, 1) == PENDING).all() and (cell(sheet, g, row, 2) == PENDING).all()
        np.testing.assert_array_equal(cell(sheet, g, row, 0), cell(grid_sheet(
            res.x, ["a", "b", "c"], ["u0", "u1"], res)[0], g, row, 0))   # the same input cell
    scores = [c.text for c in sheet.captions if c.text[-3:-2] == "."]
    assert scores == [f"{v:.2f}" for v in res.out[0]]
    assert [c.text for c in sheet.captions[:3]] == ["input", "u0", "u1"]
    assert sheet.rgba.shape == (HEADER + 3 * (g.cell[0] + GAP[0]), 3 * (g.cell[1] + GAP[1]), 4)


def test_rows_with_their_own_units_name_them_above_their_scores():
    res = rows(2, 2)
    names = [["tabby cat", "tiger cat"], ["goldfish", "a very long class name indeed"]]
    sheet, g = grid_sheet(res.x, ["a", "b"], ["top 1", "top 2"], res, names)
    assert g.lines == 2
    at = {(c.x, c.y): c.text for c in sheet.captions}
    assert at[g.caption_at(1, 1, 0)] == "goldfish" and at[g.caption_at(1, 1, 1)] == f"{res.out[1, 0]:.2f}"
    long = at[g.caption_at(1, 2, 0)]
    assert long.endswith("…") and len(long) < len(names[1][1])        # cut to the cell


def test_large_inputs_are_shrunk_to_about_56_px_cells():
    res = rows(1, 1, hw=(224, 224))
    sheet, g = grid_sheet(res.x, ["a"], ["u"], res)
    assert g.cell == (56, 56)
    mean = res.x[0, 0].reshape(56, 4, 56, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(cell(sheet, g, 0, 0)[..., 0], np.rint(mean * 255), atol=1)


def test_the_detail_panels_are_the_input_the_etalon_and_the_votes():
    res = rows(1, 1)
    x, W = res.x[0], res.W[0, 0]
    sheet = detail_sheet(x, W, W * x)
    assert [c.text for c in sheet.captions] == ["input x", "etalon W", "votes W ⊙ x"]
    assert sheet.rgba.shape[:2] == (HEADER + 84, 3 * (84 + 8))
    votes = sheet.rgba[HEADER:, 2 * (84 + 8):2 * (84 + 8) + 84].astype(int)
    assert (votes[:12, :, :3] > 240).all()                      # W = 0 there: no vote, white
