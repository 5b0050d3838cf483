"""Encoder side: each object's affine motion, fitted on the source frames' texture.

Per object and frame, ECC alignment (OpenCV's pyramid ECC) of frame i's object region onto frame
0's, started from the previous frame's map (objects move smoothly) and from the map the decoder
would fit between the mask shapes; of those two and the shape fit itself, the map that copies the
object's texture with the least error is kept."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from cpsgd.generators.foreground import MaskShape, fit_mask_transform
from cpsgd.objects.model import ObjectMotion, homogeneous, object_labels


@dataclass(frozen=True)
class ObjectFitConfig:
    work_size: int = 256  # fit on frames at most this wide (the maps are scaled back): 4x faster
                          # than at 512 for the same rendering quality on DAVIS
    pyramid_levels: int = 3
    iterations: int = 40  # per pyramid level
    erosion: int = 1  # working pixels trimmed off the masks: coarse masks are wrong at the edges
    min_area: int = 64  # pixels; a smaller object keeps the previous frame's map
    max_scale_change: float = 4.0  # a fit scaling the object's area by more than this is refused


def fit_object_motion(frames: np.ndarray, masks: np.ndarray, config: ObjectFitConfig | None = None) -> ObjectMotion:
    """The motion of the objects of ``masks[0]`` (labels, up to MAX_OBJECTS) over ``frames``."""
    config = config or ObjectFitConfig()
    height, width = frames.shape[1:3]
    shrink = min(1.0, config.work_size / width)
    size = (max(16, round(width * shrink)), max(16, round(height * shrink)))
    gray = [cv2.resize(cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA)
            for f in frames]
    masks = np.stack([cv2.resize(m, size, interpolation=cv2.INTER_NEAREST) for m in masks])
    transforms = {}
    for label in object_labels(masks[0]):
        first = masks[0] == label
        shape_0 = MaskShape.of(first)
        region_0 = _core(first, config)
        current = np.eye(3)[:2]
        maps = [current]
        for i in range(1, len(frames)):
            region = masks[i] == label
            if region.sum() >= config.min_area and shape_0 is not None:
                # Candidates: the decoder's own fit between the mask shapes, and ECC refinements
                # from it and from the previous frame's map; the one that copies the texture best.
                region_i = _core(region, config)
                shape_fit = fit_mask_transform(MaskShape.of(region), shape_0)  # type: ignore[arg-type]
                candidates = [shape_fit]
                for start in (current, shape_fit):
                    fitted = _align(gray[i], gray[0], region_i, region_0, start, config)
                    if fitted is not None:
                        candidates.append(fitted)
                current = min(candidates, key=lambda a: _texture_error(gray[i], gray[0], region, a))
            maps.append(current)
        transforms[label] = _to_full_size(np.stack(maps), size, (width, height))
    return ObjectMotion(transforms)


def _to_full_size(maps: np.ndarray, size: tuple[int, int], full: tuple[int, int]) -> np.ndarray:
    """(N, 2, 3) maps between working-size pixel indices as maps between full-size ones:
    T A T^-1, with T the working -> full index map (pixel areas aligned: x -> (x + 0.5) k - 0.5)."""
    k = np.array(full, dtype=np.float64) / size
    to_full = np.array([[k[0], 0, 0.5 * k[0] - 0.5], [0, k[1], 0.5 * k[1] - 0.5], [0, 0, 1.0]])
    return (to_full @ homogeneous(maps) @ np.linalg.inv(to_full))[:, :2]


def _core(mask: np.ndarray, config: ObjectFitConfig) -> np.ndarray:
    """The mask less its edge, as a 0/255 image (ECC's pyramid needs 255 for valid pixels); the
    whole mask when too little would be left."""
    size = 2 * config.erosion + 1
    core = cv2.erode(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    return 255 * (core if core.sum() >= config.min_area else mask.astype(np.uint8))


def _texture_error(frame: np.ndarray, first: np.ndarray, region: np.ndarray, transform: np.ndarray) -> float:
    """Mean squared error over ``region`` of ``frame`` against the first frame seen through ``transform``."""
    h, w = frame.shape
    seen = cv2.warpAffine(
        first, transform, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )
    diff = frame[region].astype(np.float64) - seen[region]
    return float(np.mean(diff * diff))


def _align(
    frame: np.ndarray, first: np.ndarray, region: np.ndarray, first_region: np.ndarray, start: np.ndarray,
    config: ObjectFitConfig,
) -> np.ndarray | None:
    """The affine map frame -> first that best aligns ``region`` of ``frame`` with the first frame
    (its ``first_region``), from ``start``; None when ECC fails or the result is implausible."""
    params = cv2.ECCParameters()
    params.motionType = cv2.MOTION_AFFINE
    params.nlevels = config.pyramid_levels
    params.criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, config.iterations, 1e-5)
    try:
        _, warp = cv2.findTransformECCMultiScale(frame, first, start.astype(np.float32), params, region, first_region)
    except cv2.error:
        return None
    warp = warp.astype(np.float64)
    scale = abs(np.linalg.det(warp[:, :2]))
    if not (np.isfinite(warp).all() and 1 / config.max_scale_change < scale < config.max_scale_change):
        return None
    return warp
