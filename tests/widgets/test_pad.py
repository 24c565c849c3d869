"""DrawingPad alone: simulated mouse events ink its image; callbacks hear strokes and clears."""
import numpy as np

from cnn_widgets.widgets import draw
from cnn_widgets.widgets.pad import DrawingPad


def event(canvas, kind, x, y):
    canvas._handle_frontend_event(None, {"event": kind, "x": x, "y": y}, [])


def test_a_drag_inks_the_segment_and_pen_up_stops_the_ink():
    pad = DrawingPad((1, 12, 10), scale=4)
    heard = []
    pad.on_change(heard.append)
    assert (pad.canvas.width, pad.canvas.height) == (40, 48)
    assert "cnnw-pad" in pad.canvas._dom_classes and "cnnw-clear" in pad.clear_button._dom_classes
    event(pad.canvas, "mouse_move", 10, 10)                    # pen up: no ink
    assert pad.image.sum() == 0 and heard == []
    event(pad.canvas, "mouse_down", 10, 10)
    event(pad.canvas, "mouse_move", 10, 38)
    event(pad.canvas, "mouse_up", 10, 38)
    event(pad.canvas, "mouse_move", 30, 10)                    # pen up again
    assert heard == ["stroke", "stroke"]
    want = np.zeros((1, 12, 10), dtype=np.float32)
    draw.ink(want, (2.0, 2.0), (2.0, 2.0), pad.sigma)
    draw.ink(want, (2.0, 2.0), (9.0, 2.0), pad.sigma)
    np.testing.assert_array_equal(pad.image, want)
    assert pad.image.dtype == np.float32 and pad.image.max() <= 1.0
    pad.clear_button.click()
    assert pad.image.sum() == 0 and heard[-1] == "clear"
