"""scikit-image's bundled colour photographs as an ImageNet-style image set (no download)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
# Loaders that ship inside the scikit-image wheel (others are fetched with pooch on first use).
PHOTO_NAMES: tuple[str, ...] = ("chelsea", "astronaut", "coffee", "rocket",
                                "immunohistochemistry", "hubble_deep_field", "camera", "coins")


def photos(size: int = 224, names: tuple[str, ...] = PHOTO_NAMES) -> tuple[torch.Tensor, tuple[str, ...]]:
    """(N, 3, size, size) float32 in [0, 1] (grey photographs repeated over RGB) and their names.
    Each photo is resized so its short side is ``size`` (bilinear, antialiased), then centre-cropped,
    as torchvision's ImageNet evaluation transform does. ``chelsea`` is a cat."""
    import skimage.data

    out = []
    for name in names:
        im = np.asarray(getattr(skimage.data, name)(), dtype=np.float32) / 255.0
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=2)
        x = torch.from_numpy(np.ascontiguousarray(im[..., :3])).permute(2, 0, 1)[None]
        h, w = x.shape[-2:]
        scale = size / min(h, w)
        x = F.interpolate(x, size=(max(size, round(h * scale)), max(size, round(w * scale))),
                          mode="bilinear", align_corners=False, antialias=True)
        top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
        out.append(x[0, :, top:top + size, left:left + size].clamp(0.0, 1.0))
    return torch.stack(out).contiguous(), tuple(names)
