"""FOVExplorer's pictures (pure: arrays in, RGBA sheets and captions out; no widget)."""
from types import SimpleNamespace

import numpy as np
import pytest

from cnn_widgets.engine.probing.receptive_field import ReceptiveField
from cnn_widgets.widgets import draw
from cnn_widgets.widgets.fov_explorer.geometry import HEADER, PANEL, PANEL_GAP, PositionGrid
from cnn_widgets.widgets.fov_explorer.paint import (
    DASH,
    EMPTY,
    HOVERED,
    SELECTED,
    TITLES,
    best_sheet,
    image_sheet,
    recon_sheet,
    slices_sheet,
)

K = 10                                     # a 28 px image on 280 px
GRID = PositionGrid(7, 7, (28 * K, 28 * K))
# position (y, x) of a 7 x 7 layer sees rows 4y..4y+7 and columns 4x..4x+7 (8 px)
FIELDS = SimpleNamespace(top=np.arange(7) * 4, bottom=np.arange(7) * 4 + 8,
                         left=np.arange(7) * 4, right=np.arange(7) * 4 + 8)


def image(seed=0):
    return np.random.default_rng(seed).random((1, 28, 28)).astype(np.float32) * 0.5


def test_the_image_enlarged_with_lighter_grid_lines_and_nothing_else():
    x = image()
    rgba = image_sheet(x, K, GRID).rgba
    plain = draw.upscale(draw.image(x), K)
    lines = np.zeros(rgba.shape[:2], bool)
    lines[40::40, :] = lines[:, 40::40] = True          # the 12 inner lines, 1 px each
    np.testing.assert_array_equal(rgba[~lines], plain[~lines])
    assert (rgba[lines][:, :3].astype(int) > plain[lines][:, :3]).all()    # lighter
    too_fine = PositionGrid(100, 100, GRID.image)
    np.testing.assert_array_equal(image_sheet(x, K, too_fine).rgba, plain)


def test_the_selected_field_is_framed_solid_red_and_its_cell_tinted():
    x = image()
    base = image_sheet(x, K, GRID).rgba
    rgba = image_sheet(x, K, GRID, FIELDS, selected=(2, 3)).rgba
    left, top, w, h = 12 * K, 8 * K, 8 * K, 8 * K          # columns 12..19, rows 8..15
    frame = np.zeros(rgba.shape[:2], bool)
    frame[top:top + h, left:left + w] = True
    frame[top + 2:top + h - 2, left + 2:left + w - 2] = False      # 2 px just inside the box
    assert (rgba[frame][:, :3] == SELECTED).all()
    cl, ct, cw, chh = GRID.cell_box(2, 3)
    cell = np.zeros(rgba.shape[:2], bool)
    cell[ct:ct + chh, cl:cl + cw] = True
    tinted = cell & ~frame
    assert tinted.any() and (rgba[tinted][:, 0].astype(int) > base[tinted][:, 0]).all()
    untouched = ~frame & ~cell
    np.testing.assert_array_equal(rgba[untouched], base[untouched])


def test_the_hovered_field_is_dashed_and_drawn_over_the_selected_one():
    x = image()
    rgba = image_sheet(x, K, GRID, FIELDS, selected=(2, 3), hovered=(2, 3)).rgba
    top_edge = rgba[8 * K, 12 * K:20 * K, :3]
    hovered = (top_edge == HOVERED).all(1)
    assert hovered.any() and (~hovered).any()               # dashes and gaps
    period = sum(DASH)
    assert hovered[:DASH[0] + period].tolist().count(True) >= DASH[0]
    assert (top_edge[~hovered] == SELECTED).all()           # the selection shows in the gaps


def reconstruction(field=None):
    field = field or ReceptiveField("3", 1, 1, 4, 6, 20, 18)
    g = np.random.default_rng(1)
    images = {m: g.normal(size=(1, 28, 28)).astype(np.float32) for m in TITLES}
    for m in images:                                        # zero outside the field
        keep = np.zeros((28, 28), bool)
        keep[field.slices] = True
        images[m][:, ~keep] = 0
    return SimpleNamespace(images=images, x=image(), field=field,
                           crop=lambda m: images[m][:, field.slices[0], field.slices[1]])


def test_reconstructions_side_by_side_under_their_titles():
    r = reconstruction()
    sheet = recon_sheet(r)
    assert sheet.rgba.shape == (PANEL + HEADER, 5 * (PANEL + PANEL_GAP), 4)
    assert [c.text for c in sheet.captions][1:] == [
        "deconvnet (eq. 4-5)", "with masks (eq. 6-7)", "random weights", "the filter (eq. 8-9)"]
    assert [c.x for c in sheet.captions] == [i * (PANEL + PANEL_GAP) + 2 for i in range(5)]
    np.testing.assert_array_equal(                          # panel 5: the filter, fitted
        sheet.rgba[HEADER:, 4 * (PANEL + PANEL_GAP):4 * (PANEL + PANEL_GAP) + PANEL],
        draw.fit(draw.signed(r.crop("filter")), PANEL))
    np.testing.assert_array_equal(sheet.rgba[HEADER:, :PANEL],
                                  draw.fit(draw.image(r.x[:, 4:20, 6:18]), PANEL))


def test_a_field_in_the_zero_padding_shows_empty_panels():
    r = reconstruction(ReceptiveField("3", 0, 0, 0, 0, 0, 0))
    rgba = recon_sheet(r).rgba
    assert (rgba[HEADER:, :PANEL] == EMPTY).all()


def test_each_slice_on_its_own_scale_under_its_channel():
    maps = np.zeros((3, 7, 7), np.float32)
    maps[0, 1, 1], maps[1, 2, 2], maps[2, 3, 3] = 100.0, 1.0, 0.01      # very unequal
    sheet = slices_sheet(SimpleNamespace(maps=maps, channels=np.array([5, 0, 9])))
    assert [c.text for c in sheet.captions] == ["c5", "c0", "c9"]
    s = 56 // 7
    for i, (y, x) in enumerate([(1, 1), (2, 2), (3, 3)]):
        left = i * (7 * s + 4)
        assert (sheet.rgba[HEADER + y * s, left + x * s, :3] == 255).all()    # its max: white
        assert (sheet.rgba[HEADER, left, :3] == 0).all()                      # zero: black


@pytest.mark.parametrize("field", [ReceptiveField("3", 1, 1, 4, 6, 20, 18),
                                   ReceptiveField("3", 0, 0, 0, 0, 0, 0)])
def test_best_input_shows_what_each_run_added_in_the_field(field):
    g = np.random.default_rng(2)
    start = g.random((3, 1, 28, 28)).astype(np.float32)
    added = g.normal(size=(3, 1, 28, 28)).astype(np.float32)
    best = SimpleNamespace(images=start + added, start=start, field=field)
    rgba = best_sheet(best).rgba
    assert rgba.shape == (PANEL, 3 * (PANEL + PANEL_GAP), 4)
    if not field.height:
        assert (rgba[:, :PANEL] == EMPTY).all()
        return
    for i in range(3):
        left = i * (PANEL + PANEL_GAP)
        want = draw.fit(draw.signed((best.images[i] - start[i])[:, 4:20, 6:18]), PANEL)
        np.testing.assert_array_equal(rgba[:, left:left + PANEL], want)
