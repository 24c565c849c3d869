"""InverseSetGallery's pictures and texts (pure: records in, RGBA sheets, captions and HTML
out; no widget)."""
from types import SimpleNamespace

import numpy as np

from cnn_widgets.engine.inverse_set.naturalness import Naturalness
from cnn_widgets.widgets.inverse_set_gallery.geometry import CELL, HEADER, PANEL, cell_corner, label_at
from cnn_widgets.widgets.inverse_set_gallery.paint import (
    FRAME_IN,
    FRAME_OUT,
    detail_html,
    detail_sheet,
    gallery_sheet,
    naturalness_html,
    samples_sheet,
    seeds_sheet,
    summary_html,
)


def cell(sheet, i):
    top, left = cell_corner(i)
    return sheet.rgba[top:top + CELL, left:left + CELL].astype(int)


def test_a_cell_shows_its_image_and_its_values_below():
    images = np.zeros((3, 1, 28, 28), np.float32)
    images[1, 0, :14] = 1.0                                  # top half white
    acts = np.array([[1.234, -5.0], [0.5, 2.0], [7.0, 8.0]])
    sheet = gallery_sheet(images, acts, "title")
    c = cell(sheet, 1)
    assert (c[:CELL // 2 - 1, :, :3] == 255).all() and (c[CELL // 2 + 1:, :, :3] == 0).all()
    texts = [(k.text, k.x, k.y) for k in sheet.captions]
    assert texts[0] == ("title", 2, HEADER - 5)
    assert texts[1:] == [("1.23/-5.00", *label_at(0)), ("0.50/2.00", *label_at(1)),
                         ("7.00/8.00", *label_at(2))]


def test_photos_shrink_by_block_means_into_a_cell():
    images = np.zeros((1, 3, 224, 224), np.float32)
    images[0, 0, :, ::2] = 1.0                               # red on every other column
    c = cell(gallery_sheet(images, np.zeros((1, 1)), "t"), 0)
    assert np.abs(c[..., 0] - 128).max() <= 1 and (c[..., 1:3] == 0).all()   # the mean, not stripes


def test_seeds_are_framed_by_whether_they_are_inside_yet():
    images = np.full((3, 1, 28, 28), 0.5, np.float32)
    batch = SimpleNamespace(images=images, activations=np.zeros((3, 1)),
                            inside=np.array([True, False, True]), step=7)
    sheet = seeds_sheet(batch)
    assert sheet.captions[0].text == "seeds (eq. 8), step 7: 2 of 3 inside the range(s) (green)"
    for i, color in enumerate([FRAME_IN, FRAME_OUT, FRAME_IN]):
        c = cell(sheet, i)
        assert tuple(c[0, CELL // 2]) == color and tuple(c[CELL // 2, 0]) == color
        assert tuple(c[CELL // 2, CELL // 2]) == (128, 128, 128, 255)       # the image inside
    start = seeds_sheet(SimpleNamespace(images=images, activations=np.zeros((3, 1)),
                                        inside=None, step=0))
    assert start.captions[0].text.startswith("the 3 seeds at their start (eq. 8)")
    assert tuple(cell(start, 0)[0, CELL // 2]) == (128, 128, 128, 255)     # no frame yet


def test_samples_are_spread_evenly_and_unframed():
    images = np.zeros((120, 1, 28, 28), np.float32)
    acts = np.arange(120.0)[:, None]
    sheet, shown = samples_sheet(images, acts)
    assert len(shown) == 50 and shown[0] == 0 and shown[-1] == 119
    assert sheet.captions[0].text == "120 samples inside the range(s), 50 shown (evenly spread)"
    assert [k.text for k in sheet.captions[1:]] == [f"{v:.2f}" for v in acts[shown, 0]]
    assert (cell(sheet, 0)[..., :3] == 0).all()
    few, shown = samples_sheet(images[:3], acts[:3])
    assert shown == [0, 1, 2] and few.captions[0].text == "3 samples inside the range(s)"


def test_the_detail_is_the_sample_and_each_units_etalon():
    image = np.zeros((1, 28, 28), np.float32)
    W = np.zeros((1, 1, 1, 28, 28), np.float32)
    W[..., :14, :] = 1.0
    W[..., 14:, :] = -1.0
    et = SimpleNamespace(W=W, layer="fc3", units=[(3,)], out=np.array([[2.5]]), exact=True)
    sheet = detail_sheet(4, image, [et, et])
    assert [k.text for k in sheet.captions] == ["sample 4", "etalon fc3:3", "etalon fc3:3"]
    assert sheet.rgba.shape[0] == HEADER + PANEL
    left = sheet.captions[1].x - 2
    top_half = sheet.rgba[HEADER + 2, left + PANEL // 2, :3].astype(int)
    bottom = sheet.rgba[HEADER + PANEL - 2, left + PANEL // 2, :3].astype(int)
    assert top_half[0] > top_half[2] and bottom[2] > bottom[0]       # red > 0, blue < 0
    text = detail_html(4, [et], [(2.0, 3.0)])
    assert text == "<b>sample 4</b><br>fc3 unit 3: f = 2.500 (range [2.00, 3.00]; etalon exact)"


def natural(**kw):
    base = dict(code_norm=None, prior_norm=None, prior_interval=None, typical=None, judged=None,
                classes=(), judge=None, in_range=1.0)
    return Naturalness(**{**base, **kw})


def test_the_summary_gives_the_naturalness_numbers():
    gen = natural(code_norm=2.5, prior_norm=2.8, prior_interval=(1.5, 4.0), typical=0.9,
                  judged=0.75, classes=(3,), judge="<b>ResNet</b>")
    text = naturalness_html(gen)
    assert ("median code norm 2.50 (the prior's 2.80, 95 % within 1.50–4.00; 90% of the codes "
            "there)") in text
    assert "75% called the units' class by the judge (&lt;b&gt;ResNet&lt;/b&gt;)" in text
    assert "100% inside on a fresh pass" in text
    assert "pixel space" in naturalness_html(natural())
    assert "no judge" in naturalness_html(natural(classes=(3,)))
    res = SimpleNamespace(n=10, K=2, steps_seeds=30, steps_sampling=8, diversity=1.5,
                          report="<i>stalled</i>", naturalness=gen)
    summary = summary_html(res)
    assert summary.startswith("10 samples, all inside their range(s); gradient steps: 30 for "
                              "the 2 seeds, 8 for the other 8")
    assert "&lt;i&gt;stalled&lt;/i&gt;" in summary and "<b>naturalness</b>" in summary
