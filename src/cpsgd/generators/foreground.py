"""Foreground transport: move the intra frame's object texture along the decoded masks.

For each object, a per-frame affine map from frame i's mask to frame 0's mask is fitted: a
similarity from the masks' centroids and areas, refined by ECC alignment of the blurred masks
(which also recovers rotation, anisotropic scale and shear of non-rigid shapes)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WORK_SIZE = 96  # masks are aligned at about this size: shapes, not details, decide the fit


@dataclass(frozen=True)
class MaskShape:
    """What the fit needs of one object's mask in one frame."""

    area: float
    centroid: np.ndarray  # (x, y) in pixel indices
    small: np.ndarray  # blurred float32 mask at work size
    scale: tuple[float, float]  # work size / full size, per axis

    @classmethod
    def of(cls, mask: np.ndarray) -> MaskShape | None:
        m = cv2.moments(mask.astype(np.uint8), binaryImage=True)
        if m["m00"] < 1:
            return None
        h, w = mask.shape
        s = min(1.0, WORK_SIZE / max(h, w))
        size = (max(8, round(w * s)), max(8, round(h * s)))
        small = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), 1.5)
        return cls(m["m00"], np.array([m["m10"], m["m01"]]) / m["m00"], small, (size[0] / w, size[1] / h))


def fit_mask_transform(shape_i: MaskShape, shape_0: MaskShape, refine: bool = True) -> np.ndarray:
    """2x3 affine A with ``frame0_point = A @ [x, y, 1]`` for a point of frame i (pixel indices)."""
    s = float(np.sqrt(shape_0.area / shape_i.area))
    t = shape_0.centroid - s * shape_i.centroid
    init = np.array([[s, 0.0, t[0]], [0.0, s, t[1]]])
    if not refine:
        return init
    scale = np.diag([*shape_i.scale, 1.0])
    warp = (scale @ np.vstack([init, [0, 0, 1]]) @ np.linalg.inv(scale))[:2].astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 1e-4)
    try:
        _, warp = cv2.findTransformECC(
            shape_i.small, shape_0.small, warp, cv2.MOTION_AFFINE, criteria, None, 1
        )
    except cv2.error:
        return init  # ECC did not converge (degenerate shapes): keep the similarity
    refined = np.linalg.inv(scale) @ np.vstack([warp.astype(np.float64), [0, 0, 1]]) @ scale
    # reject a refinement that collapses or explodes the shape
    ratio = np.linalg.det(refined[:2, :2]) / (s * s)
    return refined[:2] if 0.5 < ratio < 2.0 else init


def transport(texture: np.ndarray, transform: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The frame-0 ``texture`` seen through ``transform`` (frame i -> frame 0) over the frame-i
    box (x, y, w, h)."""
    x, y, w, h = box
    a = transform.copy()
    a[:, 2] += a[:, :2] @ [x, y]
    return cv2.warpAffine(
        texture, a, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )
