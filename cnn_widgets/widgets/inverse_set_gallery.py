"""InverseSetGallery: the inverse-set paper (Hada & Carreira-Perpiñán) as a live view.

Pick a unit and an activation range over its histogram on the dataset (add more units for an
intersection), choose K and n, Run: seeds then sampling on the worker thread, the gallery fills
as samples arrive, each labelled with its activation(s); a histogram of the samples'
activations inside the range; click a sample to enlarge it next to its etalons.

State: ``constraints``, ``K``, ``n`` and ``selected`` are traits (validated); :meth:`_changed`
derives what is shown. Every engine call runs as a job; live samples arrive through
``control.partial``. A result (live or final) is shown only while the constraints, K and n it
was asked with are still the gallery's (the runner drops those of a superseded run).
"""
from __future__ import annotations

import html
from dataclasses import replace

import ipywidgets as W
import numpy as np
import traitlets as T

from ..engine import Engine, InvalidArgument
from . import draw
from ._base import JobWidget, drawing, paint_sheet, placeholder, put_rgba, resize_canvas
from .inverse_set_controls import build
from .layout.inverse_set_gallery import (
    COLS,
    DETAIL_SCALE,
    GAP,
    MAX_K,
    MAX_N,
    Constraint,
    Detail,
    Samples,
    UnitValues,
    cell_at,
    cell_boxes,
    default_range,
    picker_limits,
    range_lines,
    shown_indices,
)
from .units import default_units, format_units, parse_units
from .validate import InvalidTrait, Whole, finite, in_range


def _unit_text(unit) -> str:
    return format_units([tuple(unit)])


def _valid_range(lo, hi, what: str) -> tuple[float, float]:
    """(lo, hi) as floats if both are finite numbers and lo < hi (the engine's z1 < z2), else
    an InvalidTrait naming ``what``."""
    lo, hi = finite(f"{what} z1", lo), finite(f"{what} z2", hi)
    if not lo < hi:
        raise InvalidTrait(f"{what} must be (z1, z2) with z1 < z2; got ({lo:g}, {hi:g})")
    return lo, hi


class InverseSetGallery(JobWidget):
    """Live inverse-set sampler for an :class:`~cnn_widgets.Engine`.

    generator: G (codes -> images, with ``code_dim``), e.g. ``zoo.digits_generator()``; None
    samples in pixel space. encoder: E for diversity (default: the model's conv layers).
    layer, unit: the first unit (default: the logits, unit 0); range: its (z1, z2) (default:
    the 70th-90th percentile of its values on the dataset); K, n: seeds and samples.
    """

    constraints = T.List(T.Instance(Constraint))   # at least one; the picker edits the last
    selected = Whole(allow_none=True, default_value=None)      # index into the samples
    K, n = Whole(10), Whole(100)
    # job key -> the state its result answers (shown only while that still holds)
    REQUESTS = {"values": ("picker_unit",), "run": ("units_and_ranges", "K", "n"),
                "detail": ("selected",)}

    def __init__(self, engine: Engine, generator=None, *, encoder=None, layer: str | None = None,
                 unit=0, range=None, K: int = 10, n: int = 100):
        super().__init__(engine)
        self.add_class("cnnw-inverse-set")
        self.generator, self.encoder = generator, encoder
        self.k = max(1, 56 // max(engine.input_shape[1:]))
        self.cell = (engine.input_shape[1] * self.k, engine.input_shape[2] * self.k)
        self.result = None
        self.samples = Samples(np.zeros((0, *engine.input_shape), np.float32), np.zeros((0, 0)))
        self.shown: list[int] = []          # sample index of each drawn cell
        self.gallery_rgba = self.detail_rgba = None
        self.labels: list[str] = []
        self.unit_values: UnitValues | None = None     # of the picker's unit
        self._defaults: dict = {}          # (layer, unit) -> its default range, once known
        self.detail: Detail | None = None
        self._syncing = False
        build(self)
        self.constraints = [self._constraint(layer, unit, range)]
        self.K, self.n = int(K), int(n)
        W.link((self, "K"), (self.K_box, "value"))
        W.link((self, "n"), (self.n_box, "value"))
        self.observe(self._changed, names=["constraints", "selected"])
        self._after_constraints()
        self._load_picker()
        self._draw_gallery()
        self._show_detail(None)

    @property
    def images(self) -> np.ndarray:
        return self.samples.images

    @property
    def activations(self) -> np.ndarray:
        return self.samples.activations

    # -- traits ----------------------------------------------------------------------------------
    @T.validate("K", "n")
    def _valid_count(self, proposal):
        name = proposal.trait.name
        return in_range(name, proposal.value, 1, MAX_K if name == "K" else MAX_N)

    @T.validate("constraints")
    def _valid_constraints(self, proposal):
        if not proposal.value:
            raise InvalidTrait("constraints must hold at least one unit and its range; got []")
        for c in proposal.value:
            if c.lo is not None or c.hi is not None:
                _valid_range(c.lo, c.hi, f"the range of {c.layer} unit {_unit_text(c.unit)}")
        return proposal.value

    @T.validate("selected")
    def _valid_selected(self, proposal):
        i, m = proposal.value, len(self.images)
        if i is not None and not 0 <= i < m:
            valid = f"in 0..{m - 1} (the samples)" if m else "None (no samples yet)"
            raise InvalidTrait(f"selected must be {valid}; got {i!r}")
        return i

    def _changed(self, change):
        if change["name"] == "selected":
            self._request_detail()
            return
        self._after_constraints()
        if self._syncing:                   # the range slider moved: it shows the range already
            self._draw_range_lines()
        else:
            self._load_picker()

    # -- the unit picker and the constraints ----------------------------------------------------
    def _unit_values(self, layer, unit) -> np.ndarray:
        """On the worker: the unit's value on every dataset image (empty without a dataset)."""
        if self.engine.dataset is None:
            return np.zeros(0)
        return self.engine.activation_histogram((layer, unit)).values

    def _load_picker(self):
        """Show the last constraint in the picker; its dataset values come from a job."""
        c, uv = self.constraints[-1], self.unit_values
        known = uv is not None and (uv.layer, uv.unit) == (c.layer, c.unit)
        if known and c.lo is None:                   # the default range, now that it is known
            lo, hi = self._defaults[(c.layer, c.unit)]
            self.constraints = self.constraints[:-1] + [replace(c, lo=lo, hi=hi)]
            return
        self._syncing = True
        try:
            self.layer_box.value, self.unit_box.value = c.layer, _unit_text(c.unit)
            if c.lo is not None:
                lo_lim, hi_lim, step = picker_limits(uv.values if known else np.zeros(0),
                                                     c.lo, c.hi)
                s = self.range_slider
                s.min, s.max = -1e30, 1e30           # widen first: min/max validate against value
                s.value = (c.lo, c.hi)
                s.min, s.max, s.step = lo_lim, hi_lim, step
        finally:
            self._syncing = False
        if not known:
            self._request_values(c)
            return
        if len(uv.values) and c.lo is not None:
            counts, edges = np.histogram(uv.values, bins=40, range=(self.range_slider.min,
                                                                    self.range_slider.max))
            with self.data_bars.hold_sync():
                self.data_bars.x, self.data_bars.y = (edges[:-1] + edges[1:]) / 2, counts
                self.data_bars.visible = True
        self._draw_range_lines()

    def _request_values(self, c: Constraint):
        self.run_job("values", lambda control: UnitValues(c.layer, c.unit,
                                                          self._unit_values(c.layer, c.unit)),
                     self._show_values, label="the unit on the dataset", quiet=True)

    @property
    def picker_unit(self) -> tuple[str, tuple[int, ...]]:
        """(layer, unit) of the constraint the picker edits (the last)."""
        c = self.constraints[-1]
        return c.layer, c.unit

    @property
    def units_and_ranges(self) -> tuple[Constraint, ...]:
        """The constraints as a run asks for them: a range at its default is the default
        (None), so filling it in once the dataset values arrive changes nothing."""
        return tuple(replace(c, lo=None, hi=None)
                     if self._defaults.get((c.layer, c.unit)) == (c.lo, c.hi) else c
                     for c in self.constraints)

    def _show_values(self, uv: UnitValues):
        self.unit_values = uv
        if len(uv.values):
            self._defaults[(uv.layer, uv.unit)] = default_range(uv.values)
        self._load_picker()

    def _draw_range_lines(self):
        c = self.constraints[-1]
        if c.lo is not None:
            with self.range_lines.hold_sync():
                self.range_lines.x, self.range_lines.y = range_lines(
                    c.lo, c.hi, float(max(self.data_bars.y.max(), 1)))

    def _on_picker(self, change):
        if self._syncing:
            return
        try:
            layer = self.engine.layer(self.layer_box.value).name
            if change["owner"] is self.layer_box:    # a new layer: its first channel, centred
                units = default_units(self.engine.layer(layer).output_shape)
            else:
                units = parse_units(self.unit_box.value) or [0]
            (unit,) = self.engine.resolve_units(layer, units[:1])
        except Exception as exc:  # noqa: BLE001 - a typo is shown, never raised into the void
            self.show_error(exc)
            return
        self.show_error(None)
        old = self.constraints[-1]
        new = Constraint(layer, unit) if self.engine.dataset is not None else \
            replace(old, layer=layer, unit=unit)
        self.constraints = self.constraints[:-1] + [new]

    def _on_range(self, change):
        if self._syncing:
            return
        lo, hi = change["new"]
        self._syncing = True        # the slider shows the new range already
        try:
            self.constraints = self.constraints[:-1] + [replace(self.constraints[-1],
                                                                lo=float(lo), hi=float(hi))]
        finally:
            self._syncing = False

    def add_unit(self, layer: str | None = None, unit=0, range=None):
        """Add a unit to the intersection (default: a copy of the picker's); the picker then
        edits it."""
        new = self.constraints[-1] if layer is None else self._constraint(layer, unit, range)
        self.constraints = self.constraints + [new]

    def _constraint(self, layer, unit, range) -> Constraint:
        """The constraint of a layer name (None: the logits), a unit (an index or a tuple)
        and a range (None: the default range, computed on the worker)."""
        layer = self.engine.layer(layer).name
        (u,) = self.engine.resolve_units(layer, [unit] if isinstance(unit, (int, np.integer))
                                         else [tuple(unit)])
        if range is None:
            if self.engine.dataset is None:
                raise InvalidArgument("the engine has no dataset to place a default range: "
                                      "pass range=(z1, z2)")
            return Constraint(layer, u)
        if not isinstance(range, (tuple, list, np.ndarray)) or len(range) != 2:
            raise InvalidTrait(f"range must be (z1, z2) with z1 < z2; got {range!r}")
        lo, hi = range
        return Constraint(layer, u, *_valid_range(lo, hi, "range"))

    def remove_unit(self):
        if len(self.constraints) > 1:
            self.constraints = self.constraints[:-1]

    def _after_constraints(self):
        rows = "".join(f"<li>{html.escape(c.layer)} unit {_unit_text(c.unit)}: "
                       + (f"[{c.lo:.2f}, {c.hi:.2f}]" if c.lo is not None else "[…]") + "</li>"
                       for c in self.constraints)
        word = "intersection of" if len(self.constraints) > 1 else "inverse set of"
        self.constraints_html.value = f"<b>{word}</b><ul style='margin:0'>{rows}</ul>"

    # -- running (the worker thread) --------------------------------------------------------------
    def run(self):
        """Sample the inverse set of the constraints on the worker thread."""
        constraints, K, n = list(self.constraints), self.K, self.n

        def work(control):
            ranges = [(c.lo, c.hi) if c.lo is not None
                      else default_range(self._unit_values(c.layer, c.unit)) for c in constraints]
            return self.engine.inverse_set([(c.layer, c.unit) for c in constraints], ranges,
                                           generator=self.generator, encoder=self.encoder,
                                           K=min(K, n), n=n, control=control)

        with self.runner.lock:    # no partial of the last run lands between reset and submit
            self.result, self.selected, self.summary.value = None, None, ""
            self.samples = Samples(np.zeros((0, *self.engine.input_shape), np.float32),
                                   np.zeros((0, len(constraints))))
            self._draw_gallery()
            return self.run_job("run", work, self._show_result, label="inverse set",
                                on_partial=self._show_live)

    def _show_live(self, batch):
        """Every sample so far (the engine's ``SampleBatch``; the job throttles how often)."""
        self.samples = Samples(batch.images, batch.activations)
        self._draw_gallery()

    def _show_result(self, res):
        self.result, self.samples = res, Samples(res.images, res.activations)
        self.summary.value = (
            f"{res.n} samples, all inside their range(s); gradient steps: {res.steps_seeds} for "
            f"the {res.K} seeds, {res.steps_sampling} for the other {res.n - res.K}; diversity "
            f"(mean distance in E's space) {res.diversity:.2f}"
            + (f"<br>{html.escape(res.report)}" if res.report else ""))
        self._draw_gallery()

    # -- drawing -------------------------------------------------------------------------------
    def _draw_gallery(self):
        images, acts = self.samples.images, self.samples.activations
        self.shown = shown_indices(len(images))
        self.labels = [" / ".join(f"{v:.2f}" for v in acts[i]) for i in self.shown]
        cells = [[draw.upscale(draw.image(images[i]), self.k) for i in self.shown[r:r + COLS]]
                 for r in range(0, len(self.shown), COLS)]
        sheet, _ = draw.tile(cells, self.cell, GAP)
        self.gallery_rgba = sheet
        with drawing():
            c = self.gallery_canvas
            resize_canvas(c, c.width, max(sheet.shape[0], 40))
            c.clear()
            if self.shown:
                put_rgba(c, sheet)
            c.fill_style, c.font = "#222", "10px sans-serif"
            for (top, left, h, _w), text in zip(cell_boxes(len(self.shown), self.cell), self.labels):
                c.fill_text(text, left + 1, top + h + 11)
            if not self.shown:
                c.fill_text("Run to sample the inverse set.", 4, 20)
        self._draw_sample_hist(acts)

    def _draw_sample_hist(self, acts):
        c, p = self.constraints[-1], len(self.constraints) - 1
        if c.lo is None:
            return
        values = acts[:, p] if acts.ndim == 2 and acts.shape[1] > p else np.zeros(0)
        counts, edges = np.histogram(values, bins=20, range=(c.lo, c.hi))
        with self.sample_bars.hold_sync():
            self.sample_bars.x, self.sample_bars.y = (edges[:-1] + edges[1:]) / 2, counts
            self.sample_bars.visible = True
        self.sample_y.max = float(max(counts.max(), 1))

    def _click(self, x, y):
        hit = cell_at(x, y, len(self.shown), self.cell)
        if hit is not None:
            self.selected = self.shown[hit]

    def _request_detail(self):
        i = self.selected
        if i is None:
            self._show_detail(None)
            return
        x, constraints = self.images[i].copy(), list(self.constraints)

        def work(control):
            return Detail(i, x, tuple(self.engine.etalons(x, c.layer, [c.unit], control=control)
                                      for c in constraints[:3]))
        self.run_job("detail", work, self._show_detail, label="etalon", quiet=True)

    def _show_detail(self, detail: Detail | None):
        self.detail = detail
        self._paint_detail()

    def _paint_detail(self):
        d, c = self.detail, self.detail_canvas
        if d is None:
            self.detail_rgba, self.detail_text.value = None, ""
            placeholder(c, "Click a sample to enlarge it with its etalon.")
            return
        s = DETAIL_SCALE
        panels = [draw.upscale(draw.image(d.image), s)]
        panels += [draw.upscale(draw.signed(et.W[0, 0]), s) for et in d.etalons]
        sheet, corners = draw.tile([panels], panels[0].shape[:2], (0, 8), origin=(18, 0))
        self.detail_rgba = sheet
        with drawing():
            paint_sheet(c, sheet, font="12px sans-serif", resize=False)
            titles = [f"sample {d.sample}"] + [f"etalon {et.layer}:{_unit_text(et.units[0])}"
                                               for et in d.etalons]
            for (_top, left), title in zip(corners[0], titles):
                c.fill_text(title, left + 2, 13)
        rows = "".join(f"<br>{html.escape(et.layer)} unit {_unit_text(et.units[0])}: f = "
                       f"{et.out[0, 0]:.3f} (range [{k.lo:.2f}, {k.hi:.2f}]; etalon "
                       f"{'exact' if et.exact else 'Jacobian'})"
                       for et, k in zip(d.etalons, self.constraints) if k.lo is not None)
        self.detail_text.value = f"<b>sample {d.sample}</b>{rows}"
