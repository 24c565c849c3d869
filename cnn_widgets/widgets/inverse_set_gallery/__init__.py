"""InverseSetGallery: the inverse-set paper (Hada & Carreira-Perpiñán) as a live view.

Pick a unit (an index, ``c:y:x``, or a class by name) and an activation range over its
histogram on the dataset (add more units for an intersection), choose K and n, Run: the K
seeds show as eq. 8 moves them into the range(s) (framed orange until inside, green then),
then the gallery fills as samples arrive, each labelled with its activation(s); a histogram of
the samples' values inside the range; the summary gives the steps, the diversity and the
naturalness numbers; click a sample to enlarge it next to its etalons.

The widget contract (CONTRIBUTING.md, "Jobs and widgets"): this module holds the state (the
validated traits ``constraints``, ``K``, ``n``, ``selected``), the one observer ``_on_state``,
the requests and what a result does; ``controls.py`` builds the controls, ``paint.py`` turns
results into RGBA sheets and texts, ``geometry.py`` is the layout math and the records.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import traitlets as T

from ...engine import Engine, InvalidArgument
from ...engine.core.chunks import spans
from ...engine.inverse_set.passes import default_range
from ...engine.inverse_set.sampling import SeedBatch
from .._base import JobWidget
from ..pickers import picked
from ..units import TopK, default_units, format_units, parse_units
from ..validate import InvalidTrait, Whole, finite, in_range
from .controls import build
from .geometry import (
    CELL,
    COLS,
    GAP,
    HEADER,
    MAX_K,
    MAX_N,
    MAX_SHOWN,
    Constraint,
    Detail,
    Samples,
    UnitValues,
    cell_at,
    picker_limits,
    range_lines,
)
from .paint import constraints_html, detail_html, detail_sheet, samples_sheet, seeds_sheet, summary_html

__all__ = ["InverseSetGallery", "Constraint", "Samples", "Detail", "UnitValues", "CELL", "COLS",
           "GAP", "HEADER", "MAX_SHOWN"]


def _unit_text(unit) -> str:
    return format_units([tuple(unit)])      # "3" or "5:4:4", as the unit box reads it


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
    judge: another network's Engine on the same inputs (the share of samples it calls the
    units' class). layer, unit: the first unit (default: the logits, unit 0); range: its
    (z1, z2) (default: the 70th-90th percentile of its values on the dataset); K, n: seeds
    and samples. The pictures are computed on the engine's worker: ``wait()`` in a script.
    """

    constraints = T.List(T.Instance(Constraint))   # at least one; the picker edits the last
    selected = Whole(allow_none=True, default_value=None)      # index into the samples
    K, n = Whole(10), Whole(100)
    # job key -> the state its result answers (shown only while that still holds)
    REQUESTS = {"values": ("picker_unit",), "run": ("units_and_ranges", "K", "n"),
                "detail": ("selected",)}

    def __init__(self, engine: Engine, generator=None, *, encoder=None, judge=None,
                 layer: str | None = None, unit=0, range=None, K: int = 10, n: int = 100):
        super().__init__(engine)
        self._ready = False
        self.add_class("cnnw-inverse-set")
        self.generator, self.encoder, self.judge = generator, encoder, judge
        self.result = self.seeds = None
        self.detail: Detail | None = None
        self.samples = self._no_samples(1)
        self.shown: list[int] = []             # sample index of each gallery cell
        self.unit_values: UnitValues | None = None     # of the picker's unit
        self._defaults: dict = {}              # (layer, unit) -> its default range, once known
        self.controls = c = build(engine, self.status_bar, self.error)
        self.children = c.children
        self.constraints = [self._constraint(layer, unit, range)]
        self.K, self.n = K, n
        self._fit_slider(exact=True)           # before the link shows the range on it
        self.link("K", c.K_box)
        self.link("n", c.n_box)
        self.link("constraints", c.layer_box, show=lambda cs: cs[-1].layer, take=self._with_layer)
        self.link("constraints", c.unit_box, show=lambda cs: _unit_text(cs[-1].unit),
                  take=self._with_unit)
        self.link("constraints", c.range_slider, take=self._with_range, show=lambda cs: (
            (cs[-1].lo, cs[-1].hi) if cs[-1].lo is not None else c.range_slider.value))
        c.class_box.observe(lambda change: self._picked(change["new"]), names="value")
        c.add_button.on_click(lambda _b: self.add_unit())
        c.remove_button.on_click(lambda _b: self.remove_unit())
        c.run_button.on_click(lambda _b: self.run())
        c.gallery_canvas.on_mouse_down(self._click)
        self._ready = True
        self._picker_changed()
        self._draw_gallery()
        self._show_detail(None)

    @property
    def images(self) -> np.ndarray:
        """(m, C, H, W): the samples so far."""
        return self.samples.images

    @property
    def activations(self) -> np.ndarray:
        """(m, P): their activations, one column per constraint."""
        return self.samples.activations

    # -- state: validated traits, one observer ----------------------------------------------
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

    @T.observe("constraints", "selected")
    def _on_state(self, change):
        if not self._ready:
            return
        if change["name"] == "selected":
            self._request_detail()
            return
        self._picker_changed()

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

    # -- the picker: one unit and its range; the constraints -------------------------------
    def _picker_changed(self):
        """What follows a change of the constraints: their list, the range picker, the
        default range once known, the picker unit's dataset values (a job)."""
        c = self.constraints[-1]
        self.controls.constraints_html.value = constraints_html(self.constraints)
        if c.lo is None and (c.layer, c.unit) in self._defaults:
            lo, hi = self._defaults[(c.layer, c.unit)]
            self.constraints = self.constraints[:-1] + [replace(c, lo=lo, hi=hi)]   # observed
            return
        self._fit_slider()
        self._request_values()
        self._draw_range_lines()

    def _with_layer(self, name: str) -> list[Constraint]:
        """The layer picker: the layer's first channel, centred (the constraints unchanged if
        it is the same layer)."""
        layer = self.engine.layer(name).name
        if layer == self.constraints[-1].layer:
            return self.constraints
        return self._with_unit_at(layer, default_units(self.engine.layer(layer).output_shape)[0])

    def _with_unit(self, text: str) -> list[Constraint]:
        """The unit box: one unit of the picker's layer ("3", "5:4:4"; empty: the first)."""
        layer = self.constraints[-1].layer
        units = parse_units(text)
        if isinstance(units, TopK):     # each input's own top k: the gallery has no input rows
            raise InvalidTrait(f"{text.strip()!r}: a constraint is one unit with its range, not "
                               f"each input's top k; type a unit (3, or c:y:x), pick a class "
                               f"by name, or Add unit for an intersection")
        if units is not None and len(units) > 1:
            raise InvalidTrait(f"{text.strip()!r}: one unit per constraint, got {len(units)}; "
                               f"Add unit makes an intersection")
        (unit,) = self.engine.resolve_units(layer, units or [0])
        return self._with_unit_at(layer, unit)

    def _with_unit_at(self, layer: str, unit: tuple[int, ...]) -> list[Constraint]:
        """The picker's constraint on ``layer`` ``unit``: its default range with a dataset,
        else the range it had."""
        old = self.constraints[-1]
        if (old.layer, old.unit) == (layer, unit):
            return self.constraints
        new = Constraint(layer, unit) if self.engine.dataset is not None else \
            replace(old, layer=layer, unit=unit)
        return self.constraints[:-1] + [new]

    def _with_range(self, value) -> list[Constraint]:
        lo, hi = value
        return self.constraints[:-1] + [replace(self.constraints[-1], lo=float(lo), hi=float(hi))]

    def _picked(self, text: str):
        """The class picker: an option ("index: name") makes that class the picker's unit."""
        if not text:
            return
        try:
            c = picked(self.controls.class_box.options, text)
        except InvalidTrait as exc:
            self.show_error(str(exc))
            return
        self.controls.class_box.value = ""
        self.show_error(None)
        self.pick_class(c)

    def pick_class(self, c: int) -> None:
        """Make class ``c``'s logit the unit the picker edits."""
        (unit,) = self.engine.resolve_units(self.engine.default_layer, [int(c)])
        self.constraints = self._with_unit_at(self.engine.default_layer, unit)

    def add_unit(self, layer: str | None = None, unit=0, range=None):
        """Add a unit to the intersection (default: a copy of the picker's); the picker then
        edits it."""
        new = self.constraints[-1] if layer is None else self._constraint(layer, unit, range)
        self.constraints = self.constraints + [new]

    def remove_unit(self):
        if len(self.constraints) > 1:
            self.constraints = self.constraints[:-1]

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

    def _fit_slider(self, exact: bool = False):
        """The range slider's limits around the picker's range and its unit's dataset values;
        ``exact`` only where the slider shows that range already (or is not linked yet),
        else they only widen (narrower limits would clip the range it shows)."""
        c, s, uv = self.constraints[-1], self.controls.range_slider, self.unit_values
        if c.lo is None:
            return
        known = uv is not None and (uv.layer, uv.unit) == (c.layer, c.unit)
        lo, hi, _ = picker_limits(uv.values if uv is not None and known else np.zeros(0), c.lo, c.hi)
        if not exact:
            lo, hi = min(lo, s.min), max(hi, s.max)
        if hi < s.min:
            s.min = lo
        s.max, s.min, s.step = hi, lo, (hi - lo) / 400

    def _draw_range_lines(self):
        c, lines = self.constraints[-1], self.controls.range_lines
        if c.lo is not None:
            with lines.hold_sync():
                lines.x, lines.y = range_lines(c.lo, c.hi,
                                               float(max(self.controls.data_bars.y.max(), 1)))

    # -- requests: every engine call runs on the worker ---------------------------------------
    def _request_values(self):
        """The picker unit's value on every dataset image (its histogram and default range),
        unless known or being computed (again after a Stop)."""
        (layer, unit), uv, engine = self.picker_unit, self.unit_values, self.engine
        if (engine.dataset is None or self.busy("values")
                or (uv is not None and (uv.layer, uv.unit) == (layer, unit))):
            return
        self.run_job("values", lambda control: _unit_values(engine, layer, unit, control),
                     self._show_values, label="the unit on the dataset", quiet=True)

    def run(self):
        """Sample the inverse set of the constraints on the worker thread: the seeds as they
        move, then the samples as they come (a range not known yet: the engine's default)."""
        constraints, K, n, engine = list(self.constraints), self.K, self.n, self.engine
        units = [(c.layer, c.unit) for c in constraints]
        ranges = [None if c.lo is None else (c.lo, c.hi) for c in constraints]

        def work(control):
            return engine.inverse_set(units, ranges, generator=self.generator,
                                      encoder=self.encoder, K=min(K, n), n=n, judge=self.judge,
                                      control=control)

        self._request_values()                    # if a Stop ended it: the histogram too
        with self.runner.lock:    # no partial of the last run lands between reset and submit
            self.result = self.seeds = None
            self.selected = None
            self.controls.summary.value = ""
            self.samples = self._no_samples(len(constraints))
            self._draw_gallery(f"sampling: the {min(K, n)} seeds first (eq. 8)…")
            return self.run_job("run", work, self._show_result, label="inverse set",
                                on_partial=self._show_live)

    def _request_detail(self):
        i, engine = self.selected, self.engine
        if i is None:
            self._show_detail(None)
            return
        x, constraints = self.images[i].copy(), list(self.constraints)

        def work(control):
            return Detail(i, x, tuple(engine.etalons(x, c.layer, [c.unit], control=control)
                                      for c in constraints[:3]))
        self.paint(self.controls.detail_canvas, f"computing the etalons of sample {i}…")
        self.run_job("detail", work, self._show_detail, label="etalon", quiet=True)

    # -- showing (worker thread, under the runner's lock; no engine calls) --------------------
    def _show_values(self, uv: UnitValues):
        """The picker unit's values on the dataset: its histogram and its default range."""
        self.unit_values = uv
        if len(uv.values):
            self._defaults[(uv.layer, uv.unit)] = default_range(uv.values.astype(np.float64))
            if self.constraints[-1].lo is None:
                self._picker_changed()               # fills the default range in
            self._fit_slider(exact=True)
            s = self.controls.range_slider
            _show_bars(self.controls.data_bars, uv.values, 40, (s.min, s.max))
        self._draw_range_lines()

    def _show_live(self, batch):
        """The seeds as they move (a ``SeedBatch``) or every sample so far (a
        ``SampleBatch``); the job throttles how often."""
        if isinstance(batch, SeedBatch):
            self.seeds = batch
        else:
            self.seeds, self.samples = None, Samples(batch.images, batch.activations)
        self._draw_gallery()

    def _show_result(self, res):
        self.result, self.seeds, self.samples = res, None, Samples(res.images, res.activations)
        self.controls.summary.value = summary_html(res)
        self._draw_gallery()

    def _draw_gallery(self, hint: str = "Run to sample the inverse set."):
        canvas = self.controls.gallery_canvas
        self.shown = []
        if self.seeds is not None:
            self.paint(canvas, seeds_sheet(self.seeds))
        elif len(self.images):
            sheet, self.shown = samples_sheet(self.images, self.activations)
            self.paint(canvas, sheet)
        else:
            self.paint(canvas, hint)
        self._draw_sample_hist()

    def _draw_sample_hist(self):
        c, p, acts = self.constraints[-1], len(self.constraints) - 1, self.activations
        if c.lo is None:
            return
        values = acts[:, p] if acts.ndim == 2 and acts.shape[1] > p else np.zeros(0)
        top = _show_bars(self.controls.sample_bars, values, 20, (c.lo, c.hi))
        self.controls.sample_scale.max = float(max(top, 1))

    def _show_detail(self, detail: Detail | None):
        self.detail, d, c = detail, detail, self.controls
        if d is None:
            c.detail_text.value = ""
            self.paint(c.detail_canvas, "Click a sample to enlarge it with its etalon.")
            return
        self.paint(c.detail_canvas, detail_sheet(d.sample, d.image, d.etalons))
        c.detail_text.value = detail_html(d.sample, d.etalons,
                                          [(k.lo, k.hi) for k in self.constraints])

    # -- events (kernel thread: quick, then hand work to the worker) -----------------------
    def _click(self, x, y):
        hit = cell_at(x, y, len(self.shown))
        if hit is not None:
            self.selected = self.shown[hit]

    def _no_samples(self, units: int) -> Samples:
        return Samples(np.zeros((0, *self.engine.input_shape), np.float32), np.zeros((0, units)))

def _unit_values(engine, layer: str, unit: tuple[int, ...], control) -> UnitValues:
    """The unit's value on every dataset image, a chunk at a time (the engine's chunks: from
    one image up, each within about CHUNK_S), so Stop and a run get the model in between."""
    images, parts = engine.dataset.images, []
    for s, e in spans(len(images), engine.batch_size):
        control.check()               # before the chunk: it may have waited for the model
        parts.append(engine.activation_histogram((layer, unit), data=images[s:e],
                                                 control=control).values)
    return UnitValues(layer, unit, np.concatenate(parts))


def _show_bars(bars, values: np.ndarray, bins: int, span: tuple[float, float]) -> int:
    """The histogram of ``values`` over ``span`` on bqplot ``bars``; returns its top count."""
    counts, edges = np.histogram(values, bins=bins, range=span)
    with bars.hold_sync():          # x and y in one message: bqplot needs both
        bars.x, bars.y = (edges[:-1] + edges[1:]) / 2, counts
        bars.visible = True
    return int(counts.max())
