"""SanityCheckView's pictures and curves (pure, no widget): each map drawn as its measure reads
it, grey cells for the maps still to come, the scores under the cells, the mean curves."""
import numpy as np
import pytest

from cnn_widgets.engine.sanity.check import SanityRow
from cnn_widgets.widgets.sanity_check_view.geometry import cell_size, detail_size
from cnn_widgets.widgets.sanity_check_view.paint import (
    PENDING,
    curve_values,
    detail_sheet,
    grid_sheet,
    map_rgba,
    placed,
)

HW = (8, 8)
METHODS = ("gradient", "gradcam")


def row(stage, method, n=3, seed=0, **scores):
    g = np.random.default_rng(seed + 10 * (stage + 1) + (method == "gradcam"))
    channels = 1
    values = {k: scores.get(k, g.uniform(-1, 1, n)) for k in ("rank_abs", "rank", "ssim")}
    return SanityRow(stage=stage, layer="fc" if stage >= 0 else "original", method=method,
                     maps=g.normal(size=(n, channels, *HW)).astype(np.float32),
                     classes=np.zeros(n, np.int64), **values)


def test_abs_maps_are_grey_up_to_their_maximum_signed_ones_blue_white_red():
    m = np.zeros((1, 2, 3), np.float32)
    m[0, 0, 0], m[0, 0, 1], m[0, 1, 2] = 2.0, -2.0, 1.0
    a = map_rgba(m, "rank_abs")
    assert (a[0, 0, :3] == 255).all() and (a[0, 1, :3] == 255).all()       # |-2| = |2|: white
    assert (a[1, 0, :3] == 0).all() and 120 < a[1, 2, 0] < 135              # 0 black, 1 half
    s = map_rgba(m, "rank")
    assert s[0, 0, 0] > s[0, 0, 2] and s[0, 1, 2] > s[0, 1, 0]               # red +, blue -
    assert (s[1, 0, :3] == 247).all()                                        # 0 is white
    r = map_rgba(m, "ssim")
    assert (r[0, 1, :3] == 0).all() and (r[0, 0, :3] == 255).all()          # min..max
    assert a.dtype == np.uint8 and a.shape == (2, 3, 4) and (a[..., 3] == 255).all()


def test_maps_over_channels_are_summed_and_scaled_into_a_cell():
    m = np.ones((3, 224, 224), np.float32)
    m[:, :4, :4] = -1.0                                   # the first 4 x 4 block: |.| the same
    a = map_rgba(m, "rank_abs", (1, 4))
    assert a.shape == (56, 56, 4) and (a[..., :3] == 255).all()
    s = map_rgba(m, "rank", (1, 4))
    assert s[0, 0, 2] > s[0, 0, 0] and s[1, 1, 0] > s[1, 1, 2]
    assert map_rgba(np.ones((1, 8, 8)), "rank_abs", (7, 1)).shape == (56, 56, 4)


def test_a_constant_map_draws_without_dividing_by_zero():
    for metric in ("rank_abs", "rank", "ssim"):
        assert np.isfinite(map_rgba(np.zeros((1, 4, 4)), metric).astype(float)).all()


def test_the_grid_shows_the_rows_done_and_grey_cells_for_the_rest():
    rows = (row(-1, "gradient"), row(-1, "gradcam"), row(0, "gradient"), row(0, "etalon"))
    sheet, grid = grid_sheet(rows, METHODS, ["gradient", "Grad-CAM"], ["original", "fc", "conv"],
                             1, "rank", HW)
    assert sheet.rgba.shape[:2] == grid.size and (grid.rows, grid.cols) == (2, 3)
    assert grid.cell == cell_size(HW)
    done = {(0, 0), (1, 0), (0, 1)}                       # the etalon row is not in the grid

    def grey(r, c):
        top, left = grid.corner(r, c)
        return (sheet.rgba[top:top + grid.cell[0], left:left + grid.cell[1]] == PENDING).all()
    assert {(r, c) for r in range(2) for c in range(3) if not grey(r, c)} == done
    top, left = grid.corner(0, 1)                          # image 1's map, as map_rgba draws it
    cell = sheet.rgba[top:top + grid.cell[0], left:left + grid.cell[1]]
    np.testing.assert_array_equal(cell, map_rgba(rows[2].maps[1], "rank", (7, 1)))
    texts = [c.text for c in sheet.captions]
    assert texts[:5] == ["original", "fc", "conv", "gradient", "Grad-CAM"]
    assert texts[5:] == [f"{rows[2].rank[1]:.2f}"]         # no score under the originals
    assert (sheet.captions[5].x, sheet.captions[5].y) == grid.caption_at(0, 1)


def test_a_nan_score_reads_n_a():
    rows = (row(-1, "gradient"), row(0, "gradient", rank_abs=np.array([0.5, np.nan, 0.2])))
    sheet, _ = grid_sheet(rows, METHODS[:1], ["gradient"], ["original", "fc"], 1, "rank_abs", HW)
    assert sheet.captions[-1].text == "n/a"


def test_placed_puts_the_original_in_column_0():
    rows = (row(-1, "gradcam"), row(2, "gradient"), row(0, "filter"))
    assert {k: (r.stage, r.method) for k, r in placed(rows, METHODS).items()} == {
        (1, 0): (-1, "gradcam"), (0, 3): (2, "gradient")}


def test_curves_are_the_mean_over_images_nan_where_not_done():
    a = row(0, "gradient", ssim=np.array([0.2, 0.4, np.nan]))
    b = row(1, "gradcam", ssim=np.array([np.nan, np.nan, np.nan]))
    c = row(-1, "gradient", ssim=np.array([1.0, 1.0, 1.0]))
    with np.errstate(all="raise"):
        values = curve_values((c, a, b), METHODS, 3, "ssim")
    assert values.shape == (2, 3)
    assert values[0, 0] == 1.0 and values[0, 1] == pytest.approx(0.3) and np.isnan(values[0, 2])
    assert np.isnan(values[1]).all()


def test_the_detail_shows_the_input_and_the_two_maps_at_the_canvas_size():
    x = np.random.default_rng(0).uniform(0, 1, (1, *HW)).astype(np.float32)
    r = row(0, "gradient")
    full = detail_sheet(x, (r.maps[0], r.maps[1]), "rank_abs", ("input", "original", "fc"))
    alone = detail_sheet(x, (), "rank_abs", ("input",))
    for sheet in (full, alone):
        assert sheet.rgba.shape[1::-1] == detail_size(HW)
    assert [c.text for c in full.captions] == ["input", "original", "fc"]
    w = full.rgba.shape[1] // 3
    assert (alone.rgba[:, w:] == 255).all() and not (full.rgba[:, w:] == 255).all()
    np.testing.assert_array_equal(alone.rgba[:, :w], full.rgba[:, :w])
