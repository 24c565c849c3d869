"""One rule for default layers, shared by every capability that needs a (C, H, W) layer."""
from __future__ import annotations

from collections.abc import Sequence

from .errors import InvalidArgument, NoSuitableLayer


def spatial_layers(host, kinds: Sequence[str] | None = None) -> list:
    """Names of the layers with a (C, H, W) output, in forward order; ``kinds``: only these
    module kinds (e.g. ``("Conv2d",)``)."""
    return [i.name for i in host.layers
            if len(i.output_shape) == 3 and (kinds is None or i.kind in kinds)]


def default_spatial_layer(host, purpose: str, layer: str | None = None, *,
                          kinds: Sequence[str] | None = None,
                          before_flat: bool = False) -> str:
    """``layer`` checked, or the default: the last layer with a (C, H, W) output (of
    ``kinds`` only, if given). ``before_flat``: the last such layer before the first flat one
    (the output of a LeNet's conv stage, not a later reshape). Raises :class:`NoSuitableLayer`
    naming ``purpose`` and the layers there are."""
    if layer is not None:
        return host.layer(layer).name
    if before_flat:
        name = None
        for info in host.layers:
            if len(info.output_shape) == 3:
                name = info.name
            elif name is not None:
                break
        found = [name] if name is not None else []
    else:
        found = spatial_layers(host, kinds)
    if not found:
        what = f"a {'/'.join(kinds)} layer" if kinds else "a layer"
        raise NoSuitableLayer(f"{purpose} needs {what} with a (C, H, W) output; this model's "
                              f"layers are {', '.join(host.layer_names)}")
    return found[-1]


# what each view asks of its default layer: (what the error calls it, module kinds, before_flat)
_PURPOSES = {
    "gradcam": ("Grad-CAM", None, False),
    "features": ("the category tree and prediction tree", None, False),
    "probing": ("FOVExplorer", ("Conv2d",), False),
    "encoder": ("the inverse set's encoder E", None, True),
}


def default_layer_for(host, purpose: str, layer: str | None = None) -> str:
    """The default layer of one view (``purpose`` in :data:`_PURPOSES`), or ``layer`` checked.
    For ``"probing"`` a model card's ``paper_layer_13`` (VGG-16's ``features.28``) wins."""
    if purpose not in _PURPOSES:
        raise InvalidArgument(f"purpose must be one of {sorted(_PURPOSES)}; got {purpose!r}")
    if layer is None and purpose == "probing":
        card = getattr(host, "model_card", None) or {}
        if card.get("paper_layer_13") in host.layer_names:
            return card["paper_layer_13"]
    what, kinds, before_flat = _PURPOSES[purpose]
    return default_spatial_layer(host, what, layer, kinds=kinds, before_flat=before_flat)
