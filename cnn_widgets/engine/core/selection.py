"""One rule for default layers, shared by every capability that needs a (C, H, W) layer.

A layer is *spatial* when its output is (C, H, W) with more than one position (H * W > 1): a
global average pool's (C, 1, 1) is not, so a ResNet's Grad-CAM and category tree default to
its last stage, not to ``avgpool`` (where every Grad-CAM map would be constant).
"""
from __future__ import annotations

from collections.abc import Sequence

from .errors import InvalidArgument, NoSuitableLayer
from .model import ModelHost


def is_spatial(shape: Sequence[int]) -> bool:
    """A (C, H, W) output with more than one position."""
    return len(shape) == 3 and shape[1] * shape[2] > 1


def spatial_layers(host, kinds: Sequence[str] | None = None) -> list:
    """Names of the spatial layers (:func:`is_spatial`), in forward order; ``kinds``: only
    these module kinds (e.g. ``("Conv2d",)``)."""
    return [i.name for i in host.layers
            if is_spatial(i.output_shape) and (kinds is None or i.kind in kinds)]


def _last_before_flat(host) -> list:
    """[the last (C, H, W) layer before the first flat one] (a LeNet's conv stage's output,
    not a later reshape), or []."""
    name = None
    for info in host.layers:
        if len(info.output_shape) == 3:
            name = info.name
        elif name is not None:
            break
    return [name] if name is not None else []


def default_spatial_layer(host, purpose: str, layer: str | None = None, *,
                          kinds: Sequence[str] | None = None, before_flat: bool = False,
                          require: bool = False) -> str:
    """``layer`` checked, or the default: the last spatial layer (of ``kinds`` only, if
    given); ``before_flat``: see :func:`_last_before_flat`. ``require``: a given ``layer``
    must be spatial too. Raises :class:`NoSuitableLayer` naming ``purpose`` and the layers
    that would do (or all layers, if none would)."""
    found = _last_before_flat(host) if before_flat else spatial_layers(host, kinds)
    if layer is not None:
        name = host.layer(layer).name
        if require and name not in found:
            shape = host.layer(name).output_shape
            raise NoSuitableLayer(f"{purpose} needs a spatial layer, a (C, h, w) output with "
                                  f"more than one position; {name!r} has shape {shape}. "
                                  f"Spatial layers: {', '.join(found) or 'none'}")
        return name
    if not found:
        what = f"a {'/'.join(kinds)} layer" if kinds else "a layer"
        raise NoSuitableLayer(f"{purpose} needs {what} with a (C, H, W) output of more than "
                              f"one position; this model's layers are "
                              f"{', '.join(host.layer_names)}")
    return found[-1]


# what each view asks of its layer: (what the error calls it, module kinds, before_flat,
# whether a given layer must be spatial too)
_PURPOSES = {
    "gradcam": ("Grad-CAM", None, False, True),
    "features": ("the category tree and prediction tree", None, False, False),
    "probing": ("FOVExplorer", ("Conv2d",), False, False),
    "encoder": ("the inverse set's encoder E", None, True, False),
}


def default_layer_for(host: ModelHost, purpose: str, layer: str | None = None) -> str:
    """The default layer of one view (``purpose`` in :data:`_PURPOSES`), or ``layer`` checked
    (Grad-CAM refuses a layer that is not spatial, naming those that are). For ``"probing"``
    a model card's ``paper_layer_13`` (VGG-16's ``features.28``) wins."""
    if purpose not in _PURPOSES:
        raise InvalidArgument(f"purpose must be one of {sorted(_PURPOSES)}; got {purpose!r}")
    if layer is None and purpose == "probing":
        card = getattr(host, "model_card", None) or {}
        if card.get("paper_layer_13") in host.layer_names:
            return card["paper_layer_13"]
    what, kinds, before_flat, require = _PURPOSES[purpose]
    return default_spatial_layer(host, what, layer, kinds=kinds, before_flat=before_flat,
                                 require=require)
