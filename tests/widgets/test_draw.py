import numpy as np
import pytest

from cnn_widgets.widgets import draw


def test_diverging_is_white_at_zero_red_for_positive_blue_for_negative():
    img = draw.diverging(np.array([[-2.0, -1.0, 0.0, 1.0, 2.0]]), vmax=2.0)
    assert img.dtype == np.uint8 and img.shape == (1, 5, 4) and (img[..., 3] == 255).all()
    r, g, b = (img[0, :, i].astype(int) for i in range(3))
    assert min(r[2], g[2], b[2]) > 240                     # zero is (near) white
    assert b[0] > r[0] + 50 and b[1] > r[1] + 50           # negative: blue
    assert r[3] > b[3] + 50 and r[4] > b[4] + 50           # positive: red
    assert (r[4] + g[4] + b[4]) < (r[3] + g[3] + b[3])     # stronger is darker


def test_diverging_clips_beyond_vmax_and_survives_zero_vmax():
    a = draw.diverging(np.array([[10.0, -10.0]]), vmax=1.0)
    b = draw.diverging(np.array([[1.0, -1.0]]), vmax=1.0)
    assert (a == b).all()
    assert draw.diverging(np.zeros((2, 2)), vmax=0.0).shape == (2, 2, 4)


def test_image_gray_and_colour():
    g = draw.image(np.linspace(0, 1, 4).reshape(1, 2, 2))
    assert g[0, 0, 0] == 0 and g[1, 1, 0] == 255 and (g[..., 0] == g[..., 2]).all()
    c = draw.image(np.stack([np.ones((2, 2)), np.zeros((2, 2)), np.zeros((2, 2))]))
    assert (c[..., 0] == 255).all() and (c[..., 1] == 0).all()


def test_tile_and_cell_at_are_inverse():
    cells = [[np.full((4, 3, 4), 10 * (r * 3 + c), np.uint8) for c in range(3)] for r in range(2)]
    sheet, corners = draw.tile(cells, (4, 3), gap=(2, 1), origin=(5, 0))
    assert sheet.shape == (5 + 2 * 6, 3 * 4, 4)
    for r in range(2):
        for c in range(3):
            top, left = corners[r][c]
            assert (sheet[top:top + 4, left:left + 3] == 10 * (r * 3 + c)).all()
            assert draw.cell_at(left + 1, top + 2, (4, 3), (2, 1), (5, 0), (2, 3)) == (r, c)
    assert draw.cell_at(3, 1, (4, 3), (2, 1), (5, 0), (2, 3)) is None       # header
    assert draw.cell_at(3, 5 + 4, (4, 3), (2, 1), (5, 0), (2, 3)) is None   # gap below row 0
    with pytest.raises(ValueError, match="expected"):
        draw.tile([[np.zeros((2, 2, 4), np.uint8)]], (4, 3), (0, 0))


def test_upscale_is_nearest_neighbour():
    a = np.arange(4, dtype=np.uint8).reshape(2, 2, 1)
    up = draw.upscale(a, 3)
    assert up.shape == (6, 6, 1) and up[0, 0, 0] == 0 and up[5, 5, 0] == 3 and up[2, 3, 0] == 1


def test_ink_draws_a_segment_with_a_hard_edge_and_keeps_the_brighter_value():
    img = np.zeros((1, 10, 10), dtype=np.float32)
    out = draw.ink(img, (2.0, 3.0), (2.0, 7.0), sigma=0.9)
    assert out is img and img.dtype == np.float32
    assert img[0, 2, 3:8].min() > 0.9                      # the segment itself is inked
    assert img[0, 5:].sum() == 0 and img[0, :, 0].sum() == 0  # nothing beyond the pen's edge
    assert (img[img > 0] >= 0.05).all()                    # a hard edge, no faint halo
    before = img.copy()
    draw.ink(img, (8.0, 8.0), (8.0, 8.0), sigma=0.9)       # a dot elsewhere adds, never dims
    assert (img >= before).all() and img[0, 8, 8] == 1.0


@pytest.mark.parametrize("h,w", [(28, 28), (10, 30), (30, 10)])
def test_fit_box_centres_the_longer_side_on_the_panel(h, w):
    s, nh, nw, top, left = draw.fit_box(h, w, 120)
    assert max(nh, nw) == 120 and abs(nh / nw - h / w) < 0.05
    assert top == (120 - nh) // 2 and left == (120 - nw) // 2
