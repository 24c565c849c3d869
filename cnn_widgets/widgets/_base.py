"""What every widget shares: a status bar (progress, status line, Stop, Save, error box), the
job runner of its engine, requests (a result is shown only while the state it answers is still
the widget's), the one link of a trait with its control, painting a paint module's sheets (kept
as what each canvas shows, ``pictures.py``), closing every widget inside."""
from __future__ import annotations

import dataclasses
import functools
import html
import sys
import threading
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any, ClassVar

import ipywidgets as W
import traitlets as T
from ipycanvas import Canvas

from ..jobs import Job, JobRunner, runner_for
from . import pictures
from .canvas import drawing, paint_sheet, placeholder, redraw_on_reconnect
from .requests import Request, frozen
from .sheets import Sheet
from .snapshot import Snapshots
from .validate import ENGINE_ERRORS

MAX_ERROR_CHARS = 2000   # a message longer than this is cut (a 44 MB error string is no help)


def error_html(error: BaseException | str, detail: str | None = None) -> str:
    """The one error display: ``Type: message`` (or the text), then an optional ``detail``
    (a traceback) below; every string escaped and each cut to :data:`MAX_ERROR_CHARS`."""
    head = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    parts = [f"<div style='color:#a00'>{html.escape(_truncate(head))}</div>"]
    if detail:
        parts.append(f"<pre style='white-space:pre-wrap;color:#a00'>"
                     f"{html.escape(_truncate(detail))}</pre>")
    return "".join(parts)


def _truncate(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


class JobWidget(Snapshots, W.VBox):
    """A VBox with a status bar, wired to the engine's job runner.

    Subclasses call :meth:`run_job`; the Stop button stops every job they started. Every job
    key has its entry in :attr:`REQUESTS`: a result (and a live partial) is shown only while
    the widget's state still answers the request it was computed for.
    """

    #: job key -> the attributes (traits, properties, dotted paths) its result depends on
    REQUESTS: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None:
            @functools.wraps(init)
            def guarded(self, *args, **kw):
                try:
                    init(self, *args, **kw)
                except BaseException:      # a refused argument leaves no widget models behind
                    self.close()
                    raise
            cls.__init__ = guarded

    def __init__(self, engine, **kwargs):
        self._closed = False
        super().__init__(**kwargs)
        self.engine = engine
        self.progress = W.FloatProgress(value=0.0, min=0.0, max=1.0,
                                        layout=W.Layout(width="220px"))
        self.status = W.Label("ready")
        self.stop_button = W.Button(description="Stop", icon="stop", disabled=True,
                                    layout=W.Layout(width="80px"))
        self.save_button = self._save_button()       # snapshot.py
        self.error = W.HTML("")
        for w, cls in ((self.progress, "cnnw-progress"), (self.status, "cnnw-status"),
                       (self.stop_button, "cnnw-stop"), (self.error, "cnnw-error")):
            w.add_class(cls)
        self.stop_button.on_click(lambda _b: self.stop())
        self.status_bar = W.HBox([self.progress, self.stop_button, self.save_button, self.status])
        self._keys: set = set()        # every job key this widget used (runner keys)
        self._long_keys: set = set()   # those of jobs that drive the progress bar and Stop
        self._jobs: dict = {}          # runner key -> the latest job (closing drops them)
        self._shown: dict = {}         # canvas -> the Sheet (or hint) it shows (`paint`)

    @property
    def runner(self) -> JobRunner:
        """The engine's job runner (a fresh one if the engine was closed meanwhile)."""
        return runner_for(self.engine)

    def _runner_key(self, key: str) -> str:
        """Widgets sharing an engine share its runner: keep their requests apart."""
        return f"{type(self).__name__}-{id(self)}:{key}"

    def job(self, key: str) -> Job | None:
        """The latest job this widget started under ``key``."""
        return self.runner.latest(self._runner_key(key))

    # -- requests --------------------------------------------------------------------------
    def request(self, key: str) -> Request:
        """The request a job under ``key`` would answer if it were asked now."""
        return Request(key, tuple(frozen(attrgetter(name)(self)) for name in self.REQUESTS[key]))

    def answers(self, request: Request) -> bool:
        """Whether a result computed for ``request`` may be shown: the widget is open and its
        state is still the one that was asked about."""
        return not self._closed and self.request(request.key) == request

    def _moved_on(self, request: Request) -> str:
        """What changed since ``request`` was asked, in words."""
        if self._closed:
            return "the widget was closed"
        now = self.request(request.key).state
        names = [n.lstrip("_").replace("_", " ") for n, a, b
                 in zip(self.REQUESTS[request.key], request.state, now) if a != b]
        return f"{', '.join(names)} changed since it was asked"

    def busy(self, key: str) -> bool:
        """Whether a job under ``key`` is pending or running and its request still holds."""
        job = self.job(key)
        return (job is not None and job.state in ("pending", "running")
                and self.answers(job.request))

    # -- controls ----------------------------------------------------------------------------
    def link(self, name: str, control: W.ValueWidget, *, show: Callable[[Any], Any] | None = None,
             take: Callable[[Any], Any] | None = None) -> None:
        """The one way a control follows a trait: ``control.value`` shows trait ``name`` (set
        from code or by another control, it follows), and a change the user makes to the
        control sets the trait, which validates it. ``show``: trait value -> control value;
        ``take``: control value -> trait value (it may raise on a typo); both default to the
        value itself. A value refused (by ``take`` or the trait) is shown in the error box and
        stays in the control for the user to fix; the trait keeps its value."""
        show = show or (lambda value: value)
        take = take or (lambda value: value)
        echo = threading.local()          # set while the trait is being shown on the control

        def to_control(_change=None):
            value = show(getattr(self, name))
            if control.value != value:
                echo.on = True
                try:
                    control.value = value
                finally:
                    echo.on = False

        def to_trait(change):
            if getattr(echo, "on", False):
                return
            try:
                setattr(self, name, take(change["new"]))
            except (T.TraitError, *ENGINE_ERRORS) as exc:
                self.show_error(exc)      # a typo is shown, never raised into the void
                return
            self.show_error(None)

        self.observe(to_control, names=name)
        control.observe(to_trait, names="value")
        to_control()

    # -- canvases ----------------------------------------------------------------------------
    def paint(self, canvas: Canvas, sheet: Sheet | str) -> None:
        """Show ``sheet`` on ``canvas`` (sized to it): a paint module's :class:`Sheet` (RGBA
        and its captions), or a hint text on an empty canvas. Kept as what the canvas shows
        (:meth:`_sheets`) and painted again for every new front end."""
        if canvas not in self._shown:
            redraw_on_reconnect(canvas, lambda: self._paint_now(canvas, self._shown[canvas]))
        self._shown[canvas] = sheet
        self._paint_now(canvas, sheet)

    @staticmethod
    def _paint_now(canvas: Canvas, sheet: Sheet | str) -> None:
        if isinstance(sheet, str):
            placeholder(canvas, sheet)
            return
        with drawing():
            paint_sheet(canvas, sheet.rgba, font=sheet.font)
            for c in sheet.captions:
                canvas.fill_text(c.text, c.x, c.y)
        pictures.keep(canvas, pictures.with_captions(sheet.rgba, sheet.captions, sheet.font))

    def _sheets(self) -> dict[Canvas, Sheet]:
        """What each canvas shows now, as the widget's paint module made it: canvas -> its
        :class:`Sheet` (RGBA and captions; canvases showing a hint are left out). The pictures
        of :meth:`snapshot` come from here."""
        return {c: s for c, s in self._shown.items() if isinstance(s, Sheet)}

    # -- jobs --------------------------------------------------------------------------------
    def run_job(self, key: str, fn: Callable, on_result: Callable[[Any], None], *,
                label: str, quiet: bool = False,
                on_partial: Callable[[Any], None] | None = None,
                lane: str | None = None) -> Job:
        """Run ``fn(control)`` on a worker; ``on_result(result)`` runs there when it ends
        and ``on_partial(value)`` for each ``control.partial(value)`` on the way, unless a
        newer job with the same key superseded it or the widget's state no longer answers
        the job's request (``REQUESTS[key]``, taken now): then the job is stopped and its
        values are dropped. ``quiet`` jobs (live updates while drawing) leave the progress
        bar alone and speak only on error. ``lane``: "long" or "interactive" (default:
        "interactive" for quiet jobs, else "long"); an interactive job never queues behind a
        long one."""
        request = self.request(key)
        key = self._runner_key(key)
        runner = self.runner
        self._keys.add(key)
        if not quiet:
            self._long_keys.add(key)
            with runner.lock:
                self.progress.bar_style, self.progress.value = "", 0.0
                self.status.value, self.error.value = f"{label}…", ""
                self.stop_button.disabled = False
        job: Job | None = None

        def current() -> bool:
            """The request still holds; else the job is stopped (its values are no use)."""
            if self.answers(request):
                return True
            if job is not None:                 # (always: set before the worker can run this)
                job.stop()
            return False

        def progress(done, total, message):
            if not quiet and current():
                self.progress.value = done / max(total, 1)
                self.status.value = f"{label}: {done}/{total}"

        def partial(value):
            if current():
                on_partial(value)

        def result(value):
            if not current():
                dropped(f"not shown: {self._moved_on(request)}")
                return
            on_result(value)
            if not quiet:
                self.progress.value = 1.0
                self.status.value = f"{label}: done in {runner.latest(key).seconds:.2f} s"
            self._update_stop_button()

        def stopped():
            if not self.answers(request):
                dropped(f"stopped: {self._moved_on(request)}")
                return
            if not quiet:             # a quiet job's stop is no news (Stop stopped it too)
                self.status.value = f"{label}: stopped at {self.progress.value:.0%}"
            self._update_stop_button()

        def dropped(why: str):
            if not self._closed:
                if not quiet:
                    self.status.value = f"{label}: {why}"
                self._update_stop_button()

        def failed(exc, tb):
            if not current():         # an error about a state the user has left
                dropped(f"stopped: {self._moved_on(request)}")
                return
            self.show_failure(label, exc, tb)
            self._update_stop_button()

        with runner.lock:            # no callback runs before `job` is known
            job = runner.submit(fn, key=key, lane=lane or ("interactive" if quiet else "long"),
                                on_progress=progress, on_result=result, on_stopped=stopped,
                                on_error=failed, on_partial=on_partial and partial)
            job.request = request     # what its results answer
            self._jobs[key] = job
        return job

    def show_error(self, error: BaseException | str | None, detail: str | None = None) -> None:
        """Show ``error`` (and a ``detail`` such as a traceback) in the error box, escaped and
        truncated; None clears it."""
        self.error.value = "" if error is None else error_html(error, detail)

    def show_failure(self, label: str, error: BaseException, detail: str | None = None) -> None:
        """What ``label`` failed with: the error box, a red bar and the status line."""
        self.progress.bar_style = "danger"
        self.show_error(error, detail)
        self.status.value = _truncate(f"{label}: {type(error).__name__}: {error}", 200)

    def _update_stop_button(self) -> None:
        jobs = (self.runner.latest(k) for k in self._long_keys)
        self.stop_button.disabled = not any(j is not None and j.state in ("pending", "running")
                                            for j in jobs)

    def stop(self) -> None:
        """Stop every job this widget started (the Stop button)."""
        for key in self._keys:
            self.runner.stop(key)
        if not self.stop_button.disabled:
            self.status.value = "stopping…"

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until this widget's jobs have finished (scripts, tests, headless notebooks)."""
        return all(job.wait(timeout) for key in list(self._keys)   # a result may start a job
                   if (job := self.runner.latest(key)) is not None)

    def close(self) -> None:
        """Stop this widget's jobs (nothing they send is shown any more) and close it with
        every widget inside it: boxes, layouts, styles, canvases, bqplot figures with their
        scales, axes and marks (their handlers hold this widget, hence the engine, in
        ipywidgets' registry until closed)."""
        self._closed = True
        for key, job in list(getattr(self, "_jobs", {}).items()):
            job.runner.forget(key)   # stopped, and its result is not kept for a closed widget
        if not sys.is_finalizing():
            inside = _descendants(self, [v for k, v in vars(self).items() if k != "_trait_values"])
            for w in inside:
                manager = getattr(w, "_canvas_manager", None)
                if manager is not None and manager._current_canvas in inside:
                    manager._current_canvas = None    # the shared manager remembers the last one
                w.close()
        super().close()


def painted(canvas: str, part: str = "rgba") -> property:
    """A read-only property of a widget: ``part`` ("rgba" or "captions") of the :class:`Sheet`
    its ``controls.<canvas>`` shows, as painted (:meth:`JobWidget.paint`); None (captions: [])
    while that canvas shows a hint or nothing."""
    def get(self):
        sheet = self._sheets().get(getattr(self.controls, canvas))
        if part == "captions":
            return [] if sheet is None else list(sheet.captions)
        return None if sheet is None else sheet.rgba
    return property(get, doc=f"The {part} painted on controls.{canvas} (None: a hint).")


# traits holding a widget that is not part of this one: ipycanvas's one manager of all canvases
_SHARED_TRAITS = frozenset({"_canvas_manager"})


def _descendants(root: W.Widget, attributes: Sequence = ()) -> list[W.Widget]:
    """Every widget ``root`` holds, directly or through others, in any trait (children,
    layout, style, a MultiCanvas's layers, a figure's marks, axes and scales, a mark's
    scales and tooltip) or in its ``attributes`` (what a constructor built before it failed),
    ``root`` and the kernel's shared canvas manager excluded."""
    out, seen, stack = [], {id(root)}, [root]
    found = _widgets_in(list(attributes))
    while True:
        for child in found:
            if id(child) not in seen:
                seen.add(id(child))
                out.append(child)
                stack.append(child)
        if not stack:
            return out
        values = stack.pop()._trait_values      # set values only: no default is made here
        found = _widgets_in([v for k, v in values.items() if k not in _SHARED_TRAITS])


def _widgets_in(value) -> list[W.Widget]:
    """The widgets in a trait value (a widget, or lists, tuples and dicts of them) or in a
    frozen controls record (a dataclass of them)."""
    if isinstance(value, W.Widget):
        return [value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = [getattr(value, f.name) for f in dataclasses.fields(value)]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [w for v in value for w in _widgets_in(v)]
    return []
