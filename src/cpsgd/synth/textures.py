"""Photographic textures (shipped with scikit-image, no downloads) and mip-mapped sampling."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
from skimage import data as skdata

# name -> (skimage loader, RGB tint for grey images, texture size (width, height); powers of two so
# that every mip level is an exact half of the one above and mirror tiling stays seamless).
_PHOTOS: dict[str, tuple[str, tuple[float, float, float], tuple[int, int]]] = {
    "grass": ("grass", (0.55, 0.75, 0.35), (512, 512)),
    "brick": ("brick", (0.85, 0.55, 0.45), (512, 512)),
    "gravel": ("gravel", (0.75, 0.70, 0.62), (512, 512)),
    "astronaut": ("astronaut", (1.0, 1.0, 1.0), (512, 512)),
    "coffee": ("coffee", (1.0, 1.0, 1.0), (512, 256)),
    "chelsea": ("chelsea", (1.0, 1.0, 1.0), (512, 256)),
    "rocket": ("rocket", (1.0, 1.0, 1.0), (512, 256)),
    "ihc": ("immunohistochemistry", (1.0, 1.0, 1.0), (256, 256)),
    "hubble": ("hubble_deep_field", (1.0, 1.0, 1.0), (256, 256)),
    "camera": ("camera", (0.8, 0.85, 1.0), (256, 256)),
}


@dataclass(frozen=True)
class MipTexture:
    """A float32 RGB image in [0, 1] and its pyramid (level k is 2**k times smaller)."""

    levels: tuple[np.ndarray, ...]


def texture_size(name: str) -> tuple[int, int]:
    """(width, height) of the level-0 texture."""
    return _PHOTOS[name][2]


@functools.lru_cache(maxsize=None)
def load_texture(name: str) -> MipTexture:
    """Decode, tint, resize and mip-map one photo. Memoised: decoding is most of the cost of a
    short clip, and the result is read-only constant data, so sharing it changes no output."""
    loader, tint, size = _PHOTOS[name]
    image = np.asarray(getattr(skdata, loader)())
    image = image.astype(np.float32) / 255.0
    if image.ndim == 2:
        # grey material photos are dull; stretch them to full contrast so features stand out
        low, high = np.percentile(image, [1, 99])
        image = np.repeat(np.clip((image - low) / (high - low), 0, 1)[..., None], 3, axis=2)
    rgb = image[..., :3] * np.asarray(tint, dtype=np.float32)
    rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    levels = [rgb]
    while min(levels[-1].shape[:2]) > 4:
        levels.append(cv2.pyrDown(levels[-1]))
    for level in levels:
        level.flags.writeable = False
    return MipTexture(tuple(levels))


def _bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample ``image`` at M points of an endlessly mirror-tiled plane (OpenCV's reflected border
    folds coordinates however far out they lie); cv2.remap limits the map's width, so fold M into
    rows."""
    m = x.size
    cols = 1024
    rows = -(-m // cols)
    maps = np.zeros((2, rows * cols), np.float32)
    maps[0, :m] = x
    maps[1, :m] = y
    maps = maps.reshape(2, rows, cols)
    out = cv2.remap(image, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out.reshape(-1, 3)[:m]


def sample(texture: MipTexture, x: np.ndarray, y: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Trilinear sampling: bilinear in the two mip levels around ``level`` (texels per pixel, log2),
    blended linearly. ``x``, ``y`` are level-0 texel coordinates; returns (M, 3) float32."""
    top = len(texture.levels) - 1
    level = np.clip(level, 0.0, top)
    base = np.minimum(np.floor(level).astype(np.int64), max(top - 1, 0))
    frac = (level - base).astype(np.float32)[:, None]
    out = np.empty((x.size, 3), np.float32)
    for k in range(int(base.min()), int(base.max()) + 1):
        pick = base == k
        if not pick.any():
            continue
        colours = []
        for lev in (k, min(k + 1, top)):
            scale = 0.5**lev
            # level-l texel centre j sits at level-0 coordinate (j + 0.5) * 2**l - 0.5
            colours.append(
                _bilinear(texture.levels[lev], (x[pick] + 0.5) * scale - 0.5, (y[pick] + 0.5) * scale - 0.5)
            )
        out[pick] = colours[0] + (colours[1] - colours[0]) * frac[pick]
    return out
