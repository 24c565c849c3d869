"""The typed engine contract: every public parameter of the facade, the model host and the paper
functions the facade binds is annotated, with the names of engine/core/types.py; the facade's
annotations resolve (``typing.get_type_hints``), so ``help(engine.etalons)`` names real types
(a paper function may name a class above it for the checker only, under TYPE_CHECKING)."""
import inspect
import typing

import cnn_widgets.engine.engine as facade
from cnn_widgets.engine import Engine
from cnn_widgets.engine.core import types
from cnn_widgets.engine.core.model import ModelHost


def _public_methods(cls):
    for name, fn in inspect.getmembers(cls, inspect.isfunction):
        if not name.startswith("_") or name in ("__init__", "__enter__", "__exit__"):
            yield f"{cls.__name__}.{name}", fn


def _bound_functions():
    """The paper (and core) functions the facade calls by name."""
    for name, fn in vars(facade).items():
        if inspect.isfunction(fn) and fn.__module__ != facade.__name__:
            yield f"{fn.__module__}.{name}", fn


def _unannotated(named):
    return [f"{n}: {p.name}" for n, fn in named for p in inspect.signature(fn).parameters.values()
            if p.name != "self" and p.annotation is p.empty]


def test_every_public_parameter_is_annotated():
    named = [*_public_methods(Engine), *_public_methods(ModelHost), *_bound_functions()]
    assert len(named) > 60
    assert not _unannotated(named)


def test_annotations_resolve_to_types():
    bad = []
    for name, fn in [*_public_methods(Engine), *_public_methods(ModelHost)]:
        try:
            typing.get_type_hints(fn)
        except Exception as e:  # noqa: BLE001 - any failure to resolve is the finding
            bad.append(f"{name}: {type(e).__name__}: {e}")
    assert not bad


def test_help_shows_the_alias_names():
    params = inspect.signature(Engine.etalons).parameters
    assert (params["x"].annotation, params["units"].annotation) == ("Images", "Units")
    assert typing.get_type_hints(Engine.etalons)["x"] == types.Images
    assert set(types.__all__) <= set(vars(types))
