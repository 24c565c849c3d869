"""MaximizerPanel's pictures (pure: results in, RGBA sheets and captions out; no widget)."""
from types import SimpleNamespace

import numpy as np

from cnn_widgets.widgets import draw
from cnn_widgets.widgets.maximizer_panel.geometry import (
    CAPTION,
    GAP,
    PICTURE_PX,
    SMALL_PX,
    TOP_COLUMNS,
    cell_size,
    corner,
    scale,
)
from cnn_widgets.widgets.maximizer_panel.paint import fooling_sheet, picture_sheet, top_sheet

NAMES = [f"class {i}" for i in range(10)]


def images(n, c=1, hw=(28, 28), seed=0):
    return np.random.default_rng(seed).random((n, c, *hw)).astype(np.float32)


def test_each_image_is_enlarged_side_by_side_and_captioned_with_its_class():
    x = images(2)
    probs = np.zeros((2, 10))
    probs[0, 3], probs[1, 7] = 0.9, 0.55
    sheet = picture_sheet(x, probs, NAMES)
    h, w = cell_size((28, 28), PICTURE_PX)
    k = scale((28, 28), PICTURE_PX)[0]
    assert sheet.rgba.shape == (h + CAPTION, 2 * (w + GAP), 4)
    for i in range(2):
        top, left = corner(0, i, (h, w))
        np.testing.assert_array_equal(sheet.rgba[top:top + h, left:left + w],
                                      draw.upscale(draw.image(x[i]), k))
    assert [c.text for c in sheet.captions] == ["class 3 90%", "class 7 55%"]
    assert [c.x for c in sheet.captions] == [0, w + GAP] and sheet.captions[0].y > h


def test_images_outside_the_data_range_are_stretched():
    img = np.array([[[-1.0, 0.0], [1.0, 3.0]]])
    np.testing.assert_array_equal(draw.shown(img)[..., 0], [[0, 64], [128, 255]])
    np.testing.assert_array_equal(draw.shown(img / 4 + 0.25)[..., 0], [[0, 64], [128, 255]])


def test_a_grad_cam_reddens_where_it_is_high():
    x = np.full((1, 1, 28, 28), 0.5, np.float32)
    heat = np.zeros((1, 28, 28))
    heat[0, 10:14, 10:14] = 1.0
    plain = picture_sheet(x, np.eye(10)[:1], NAMES).rgba.astype(int)
    hot = picture_sheet(x, np.eye(10)[:1], NAMES, heat).rgba.astype(int)
    k = scale((28, 28), PICTURE_PX)[0]
    r, g, b = hot[12 * k, 12 * k, :3]
    assert r > plain[12 * k, 12 * k, 0] and r > g + 50 and r > b + 50
    np.testing.assert_array_equal(hot[2 * k, 2 * k], plain[2 * k, 2 * k])   # cold: unchanged


def test_large_inputs_are_shrunk_to_about_the_target_size():
    x = images(1, c=3, hw=(224, 224))
    sheet = picture_sheet(x, np.eye(10)[:1], NAMES)
    h, w = cell_size((224, 224), PICTURE_PX)
    assert sheet.rgba.shape[:2] == (h + CAPTION, w + GAP)
    top = SimpleNamespace(images=images(7, c=3, hw=(224, 224)), values=np.arange(7.0)[::-1],
                          indices=np.arange(7), objective="unit(x, 1)")
    sheet = top_sheet(top, 48)
    h, w = cell_size((224, 224), SMALL_PX)
    assert h < 224 / 2 and sheet.rgba.shape[:2] == (CAPTION + 2 * (h + CAPTION),
                                                   TOP_COLUMNS * (w + GAP))


def test_the_top_images_are_in_rows_under_a_title_each_with_its_row_and_value():
    top = SimpleNamespace(images=images(7), values=np.array([9.0, 8, 7, 6, 5, 4, 3]),
                          indices=np.array([12, 3, 30, 5, 0, 1, 2]), objective="logit[4]")
    sheet = top_sheet(top, 40)
    h, w = cell_size((28, 28), SMALL_PX)
    k = scale((28, 28), SMALL_PX)[0]
    assert sheet.rgba.shape == (CAPTION + 2 * (h + CAPTION), TOP_COLUMNS * (w + GAP), 4)
    texts = [c.text for c in sheet.captions]
    assert texts[0] == "top 7 of 40 for logit[4]" and texts[1:3] == ["#12: 9", "#3: 8"]
    top6, left6 = corner(1, 1, (h, w), CAPTION)                # the 7th image: row 1, column 1
    np.testing.assert_array_equal(sheet.rgba[top6:top6 + h, left6:left6 + w],
                                  draw.upscale(draw.image(top.images[6]), k))
    assert sheet.captions[7].x == left6 and sheet.captions[7].y > top6 + h


def test_a_fooling_row_shows_start_end_difference_and_four_cams():
    start = images(3)
    end = np.clip(start + 0.2, 0, 1)
    cams = np.random.default_rng(3).random((3, 2, 28, 28))
    probs = np.zeros((2, 3, 10))
    probs[0, :, 1], probs[1, :, 4] = 0.8, 0.6
    f = SimpleNamespace(start=start, end=end, diff=np.sqrt(((end - start) ** 2).sum(1)),
                        cam_start=cams, cam_end=cams[:, ::-1], classes=(1, 4),
                        probabilities=probs)
    sheet = fooling_sheet(f, NAMES)
    h, w = cell_size((28, 28), SMALL_PX)
    assert sheet.rgba.shape == (CAPTION + 3 * (h + CAPTION), 7 * (w + GAP), 4)
    texts = [c.text for c in sheet.captions]
    assert texts[:3] == ["start", "end", "difference"] and texts[3].startswith("CAM start")
    assert texts[7:] == ["class 1 80% → class 4 60%"] * 3
