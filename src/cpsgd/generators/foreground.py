"""Foreground transport: move the intra frame's object texture along the decoded masks.

For each object and frame, a map from frame i's pixels to frame 0's is fitted in up to three steps:

1. an affine map between the two masks: a similarity from their centroids and areas, refined by ECC
   alignment of the blurred masks (which also recovers rotation, anisotropic scale and shear);
2. ``method="tps"``: a smoothed thin-plate spline between outline correspondences, of two kinds:
   arc-length samples of both outer contours, cyclically shifted to best match the affine-mapped
   frame-i samples (right for similar shapes), and closest points refined ICP-style (right when
   the decoded masks grow or lose whole parts, as motion masks at these rates do). Each spline is
   evaluated on a coarse grid and interpolated; the one that sends most of the mask inside the
   frame-0 object without folding replaces the affine map, if it beats it;
3. ``snap``: mask pixels that still land outside the frame-0 object read from inside it instead:
   their read point mirrored across the nearest inner pixel (which keeps some texture) or, where
   that is outside too, the nearest inner pixel itself. The object is never filled with frame 0's
   background.

When the encoder sent the object's motion (``cpsgd.objects``), its map replaces steps 1 and 2.

On the DAVIS clips through the real codec (benchmarks/foreground_transport.py) snapping gives most
of the gain in re-segmented mask J; the spline adds a little more on top of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.interpolate import RBFInterpolator
from scipy.ndimage import distance_transform_edt

WORK_SIZE = 96  # masks are aligned at about this size: shapes, not details, decide the fit
METHODS = ("affine", "tps")
MIN_PERIMETER = 16.0  # pixels: smaller outlines are not bent
OUTLINE_DENSITY = 4  # frame 0's outline is sampled this many times more densely, for closest points

Box = tuple[int, int, int, int]  # x, y, w, h in frame pixels
Maps = tuple[np.ndarray, np.ndarray]  # float32 (h, w) remap tables into frame 0


@dataclass(frozen=True)
class ForegroundConfig:
    method: str = "tps"  # "affine" or "tps" (see the module docstring)
    refine: bool = True  # ECC refinement of the affine fit
    contour_points: int = 64  # outline samples of frame i (frame 0 keeps OUTLINE_DENSITY times more)
    smoothing: float = 20.0  # spline smoothing; coordinates are in units of the object's size
    iterations: int = 3  # closest-point correspondence rounds
    grid_step: int = 8  # the spline is evaluated every grid_step pixels, then interpolated
    snap: bool = True  # mask pixels mapped outside the frame-0 object read from inside it
    snap_inset: int = 2  # pixels: snapped reads stay this far inside the frame-0 outline

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"foreground method {self.method!r}: expected one of {METHODS}")
        if self.iterations < 1 or self.contour_points < 8 or self.grid_step < 1 or self.smoothing < 0:
            raise ValueError(f"foreground config out of range: {self}")


@dataclass(frozen=True)
class MaskShape:
    """What the affine fit needs of one object's mask in one frame."""

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


@dataclass(frozen=True)
class SourceObject:
    """One object of the intra frame, prepared once per GoP."""

    mask: np.ndarray  # (H, W) bool
    shape: MaskShape
    outline: np.ndarray | None  # (OUTLINE_DENSITY * K, 2) outer contour samples; None if too small
    inner: np.ndarray | None  # (H, W) bool, the mask shrunk by snap_inset (for snapping)
    nearest: np.ndarray | None  # (2, H, W) row and column of the nearest ``inner`` pixel

    @classmethod
    def of(cls, mask: np.ndarray, config: ForegroundConfig) -> SourceObject | None:
        mask = mask.astype(bool)
        shape = MaskShape.of(mask)
        if shape is None:
            return None
        outline = None
        if config.method == "tps":
            outline = sample_outline(mask, OUTLINE_DENSITY * config.contour_points)
        inner = nearest = None
        if config.snap:
            disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * config.snap_inset + 1,) * 2)
            inner = cv2.erode(mask.astype(np.uint8), disk) > 0
            inner = inner if inner.any() else mask
            nearest = distance_transform_edt(~inner, return_distances=False, return_indices=True)
            nearest = nearest.astype(np.int32)
        return cls(mask, shape, outline, inner, nearest)


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


def sample_outline(mask: np.ndarray, count: int) -> np.ndarray | None:
    """``count`` points (x, y) evenly spaced by arc length along the largest outer contour."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)[:, 0].astype(np.float64)
    closed = np.vstack([contour, contour[:1]])
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(closed, axis=0).T))])
    if len(contour) < 3 or arc[-1] < MIN_PERIMETER:  # a speck: nothing to bend
        return None
    at = np.arange(count) * (arc[-1] / count)
    return np.stack([np.interp(at, arc, closed[:, 0]), np.interp(at, arc, closed[:, 1])], axis=1)


def match_outline(moved: np.ndarray, outline_0: np.ndarray) -> np.ndarray:
    """``outline_0`` cyclically shifted so that point k corresponds to ``moved[k]`` (least squares).
    Both come from OpenCV's outer contours, hence run the same way round."""
    shifts = np.arange(len(outline_0))[:, None] + np.arange(len(outline_0))[None, :]
    candidates = outline_0[shifts % len(outline_0)]  # (shift, k, 2)
    cost = ((candidates - moved[None]) ** 2).sum(axis=(1, 2))
    return candidates[int(np.argmin(cost))]


def nearest_on(points: np.ndarray, outline: np.ndarray) -> np.ndarray:
    """For each point, the closest point of ``outline``."""
    distances = ((points[:, None] - outline[None]) ** 2).sum(axis=-1)
    return outline[distances.argmin(axis=1)]


class Spline:
    """Smoothed thin-plate spline frame i -> frame 0; coordinates are scaled by the object's size
    so that the smoothing does not depend on it."""

    def __init__(self, points_i: np.ndarray, points_0: np.ndarray, size: float, smoothing: float) -> None:
        self.centre, self.size = points_i.mean(axis=0), size
        self.rbf = RBFInterpolator(
            (points_i - self.centre) / size, points_0, kernel="thin_plate_spline", smoothing=smoothing
        )

    def __call__(self, points: np.ndarray) -> np.ndarray:
        return self.rbf((points - self.centre) / self.size)


def spline_candidates(
    outline_i: np.ndarray, transform: np.ndarray, source: SourceObject, config: ForegroundConfig
) -> list[Spline]:
    """Splines from two kinds of outline correspondences: arc-length (the same part of the outline,
    right for similar shapes) and closest points refined ICP-style (right when the decoded masks
    grow or lose whole parts)."""
    assert source.outline is not None
    size = float(np.sqrt(source.shape.area))
    moved = outline_i @ transform[:, :2].T + transform[:, 2]
    candidates = []
    try:
        arc = match_outline(moved, source.outline[::OUTLINE_DENSITY])
        candidates.append(Spline(outline_i, arc, size, config.smoothing))
        current = moved
        for _ in range(config.iterations):
            spline = Spline(outline_i, nearest_on(current, source.outline), size, config.smoothing)
            current = spline(outline_i)
        candidates.append(spline)
    except (np.linalg.LinAlgError, ValueError):
        pass  # a singular system (collinear points): the candidates so far stand
    return candidates


def grid_nodes(box: Box, step: int) -> np.ndarray:
    """(ny, nx, 2) frame coordinates of the coarse nodes that cover ``box`` every ``step`` pixels."""
    x, y, w, h = box
    nx, ny = -(-(w - 1) // step) + 1, -(-(h - 1) // step) + 1
    xs, ys = np.meshgrid(x + np.arange(nx) * step, y + np.arange(ny) * step)
    return np.stack([xs, ys], axis=-1).astype(np.float64)


def node_lookup(width: int, height: int, step: int) -> Maps:
    """For each pixel of a ``width`` x ``height`` box, its position in the grid of ``grid_nodes``
    (pixel u reads node coordinate u / step: exact linear interpolation between nodes)."""
    return tuple(np.meshgrid(np.arange(width, dtype=np.float32) / step, np.arange(height, dtype=np.float32) / step))


def densify(nodes: np.ndarray, lookup: Maps) -> Maps:
    """Per-pixel tables from (ny, nx, 2) node values, read at ``lookup`` (``node_lookup``)."""
    full = cv2.remap(nodes.astype(np.float32), *lookup, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return full[..., 0], full[..., 1]


def folds(nodes: np.ndarray, inside: np.ndarray) -> bool:
    """Whether the node map turns over (non-positive Jacobian) in any grid cell touching ``inside``."""
    du = nodes[:-1, 1:] - nodes[:-1, :-1]
    dv = nodes[1:, :-1] - nodes[:-1, :-1]
    det = du[..., 0] * dv[..., 1] - du[..., 1] * dv[..., 0]
    touched = inside[:-1, :-1] | inside[1:, :-1] | inside[:-1, 1:] | inside[1:, 1:]
    return bool((det[touched] <= 0).any())


def lands_inside(x: np.ndarray, y: np.ndarray, mask_0: np.ndarray) -> np.ndarray:
    """Per point (frame-0 coordinates x, y): is its nearest pixel inside ``mask_0``?"""
    h, w = mask_0.shape
    xi, yi = np.rint(x).astype(np.int64), np.rint(y).astype(np.int64)
    ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    ok[ok] = mask_0[yi[ok], xi[ok]]
    return ok


def object_maps(
    mask_i: np.ndarray, source: SourceObject, box: Box, config: ForegroundConfig, sent: np.ndarray | None = None
) -> Maps:
    """Remap tables over ``box`` that carry ``source`` onto the (non-empty) frame-i mask ``mask_i``
    (full frame, bool). ``sent``: the encoder's affine map for this object and frame (the object
    motion side channel), fitted on the texture; it replaces steps 1 and 2, which only see shapes."""
    if sent is not None:
        transform = sent
    else:
        shape_i = MaskShape.of(mask_i)
        assert shape_i is not None, "object_maps needs a non-empty mask"
        transform = fit_mask_transform(shape_i, source.shape, config.refine)
    grid = grid_nodes(box, config.grid_step)
    nodes = grid @ transform[:, :2].T + transform[:, 2]
    if sent is None and config.method == "tps" and source.outline is not None:
        nodes = _bend(mask_i, grid, nodes, source, transform, config)
    maps = densify(nodes, node_lookup(box[2], box[3], config.grid_step))
    if config.snap and source.nearest is not None:
        x, y, w, h = box
        _snap(maps, mask_i[y : y + h, x : x + w] & ~lands_inside(*maps, source.mask), source)
    return maps


def _snap(maps: Maps, stray: np.ndarray, source: SourceObject) -> None:
    """Send the ``stray`` reads of ``maps`` inside the frame-0 object, in place: mirrored across
    the nearest inner pixel (which keeps some texture) or, where that is outside too, to it."""
    if not stray.any():
        return
    assert source.nearest is not None and source.inner is not None
    h, w = source.mask.shape
    sx = np.clip(np.rint(maps[0][stray]), 0, w - 1).astype(np.int64)
    sy = np.clip(np.rint(maps[1][stray]), 0, h - 1).astype(np.int64)
    qx = source.nearest[1, sy, sx].astype(np.float32)
    qy = source.nearest[0, sy, sx].astype(np.float32)
    rx, ry = 2 * qx - maps[0][stray], 2 * qy - maps[1][stray]
    mirrored = lands_inside(rx, ry, source.inner)
    maps[0][stray] = np.where(mirrored, rx, qx)
    maps[1][stray] = np.where(mirrored, ry, qy)


def _bend(
    mask_i: np.ndarray, grid: np.ndarray, nodes: np.ndarray, source: SourceObject, transform: np.ndarray,
    config: ForegroundConfig,
) -> np.ndarray:
    """The spline's node values that send most of the mask inside the frame-0 object without
    folding, if any does better than the affine ``nodes``; else ``nodes``."""
    outline_i = sample_outline(mask_i, config.contour_points)
    if outline_i is None:
        return nodes
    h, w = mask_i.shape
    inside = mask_i[np.minimum(grid[..., 1], h - 1).astype(int), np.minimum(grid[..., 0], w - 1).astype(int)]
    if not inside.any():
        return nodes

    def coverage(values: np.ndarray) -> float:
        return float(lands_inside(values[..., 0][inside], values[..., 1][inside], source.mask).mean())

    best, best_coverage = nodes, coverage(nodes)
    for spline in spline_candidates(outline_i, transform, source, config):
        bent = spline(grid.reshape(-1, 2)).reshape(grid.shape)
        if not np.isfinite(bent).all() or folds(bent, inside):
            continue
        if (score := coverage(bent)) > best_coverage:
            best, best_coverage = bent, score
    return best


def transport(texture: np.ndarray, maps: Maps) -> np.ndarray:
    """The frame-0 ``texture`` read through remap tables (frame-0 pixel coordinates)."""
    return cv2.remap(texture, maps[0], maps[1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)  # as the background
