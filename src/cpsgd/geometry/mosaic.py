"""Encoder side: the GoP's background accumulated in frame 0's coordinates (MPEG-4 sprite style).

The mosaic image sent in the intra section is a canvas that holds frame 0 unchanged (foreground
included: it is the foreground layer's texture) inside the background that the other frames see
around it; optionally, below the canvas, a half-resolution strip with the background hidden behind
frame 0's foreground (seen in later frames once the object has moved). Each canvas pixel takes the
background of the earliest frame that sees it (short baselines warp most accurately); pixels no
frame saw are inpainted so that the intra codec spends nothing on edges that carry no content.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from cpsgd.geometry.fill import fill_holes
from cpsgd.geometry.model import MosaicLayout, SceneGeometry, project, relative_poses
from cpsgd.poses.trajectory import Trajectory


@dataclass(frozen=True)
class MosaicConfig:
    max_extent: float = 0.5  # the canvas reaches at most this fraction of the frame beyond each side
    min_extent: int = 4  # pixels: a smaller margin on a side is not worth coding
    under: bool | None = None  # store the background seen behind frame 0's foreground (None: when enough)
    min_under_seen: float = 0.3  # auto mode: fraction of that area some frame must see
    hide_radius: int = 4  # pixels: frame-0 foreground dilation (matches the decoder's WarpConfig)
    step: int = 8  # projection nodes every step pixels, interpolated between


@dataclass(frozen=True)
class Mosaic:
    image: np.ndarray  # (rows, cols, 3) uint8: what the intra section codes
    layout: MosaicLayout


def _layout(
    geometry: SceneGeometry, poses: np.ndarray, k: np.ndarray, height: int, width: int, cfg: MosaicConfig
) -> MosaicLayout:
    """The smallest canvas (within the allowed extent) holding every node that some frame sees."""
    ex, ey = int(np.ceil(cfg.max_extent * width)), int(np.ceil(cfg.max_extent * height))
    gx, gy = np.meshgrid(
        np.arange(-ex, width + ex + 1, cfg.step, dtype=np.float64),
        np.arange(-ey, height + ey + 1, cfg.step, dtype=np.float64),
    )
    seen = np.zeros(gx.shape, bool)
    for pose in poses:
        fx, fy, front = project(geometry, pose, k, gx, gy, width, height)
        seen |= front & (fx >= 0) & (fx <= width) & (fy >= 0) & (fy <= height)
    lo = np.minimum([gx[seen].min(), gy[seen].min()], 0) if seen.any() else np.zeros(2)
    hi = (
        np.maximum([gx[seen].max(), gy[seen].max()], [width, height])
        if seen.any()
        else np.array([width, height])
    )

    def margin(v: float) -> int:
        m = int(np.ceil(max(v, 0.0)))
        return m if m >= cfg.min_extent else 0

    left, top, right, bottom = margin(-lo[0]), margin(-lo[1]), margin(hi[0] - width), margin(hi[1] - height)
    return MosaicLayout(width + left + right, height + top + bottom, left, top)


def _sample_nodes(
    geometry: SceneGeometry,
    pose: np.ndarray,
    k: np.ndarray,
    height: int,
    width: int,
    rows: int,
    cols: int,
    origin: tuple[int, int],
    step: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Remap tables (canvas of rows x cols -> frame pixels) for one pose, computed on nodes."""
    nx, ny = -(-(cols - 1) // step) + 1, -(-(rows - 1) // step) + 1
    gx, gy = np.meshgrid(np.arange(nx) * step + 0.5 - origin[0], np.arange(ny) * step + 0.5 - origin[1])
    fx, fy, front = project(geometry, pose, k, gx, gy, width, height)
    far = -1e4  # behind the camera: a position no remap reads from
    nodes = np.stack([np.where(front, fx - 0.5, far), np.where(front, fy - 0.5, far)], -1).astype(np.float32)
    ux, uy = np.meshgrid(np.arange(cols, dtype=np.float32) / step, np.arange(rows, dtype=np.float32) / step)
    full = cv2.remap(nodes, ux, uy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return full[..., 0], full[..., 1]


def build_mosaic(
    frames: np.ndarray,
    trajectory: Trajectory | None,
    masks: np.ndarray | None,
    geometry: SceneGeometry,
    config: MosaicConfig | None = None,
) -> Mosaic:
    """The mosaic image and its layout; send ``geometry.with_layout(mosaic.layout)`` in the
    geometry section and ``mosaic.image`` through the intra codec."""
    cfg = config or MosaicConfig()
    n, h, w = frames.shape[:3]
    if trajectory is None:
        return Mosaic(frames[0].copy(), MosaicLayout(w, h, 0, 0))
    poses = relative_poses(trajectory, n)
    k = trajectory.intrinsics.matrix(w, h)
    layout = _layout(geometry, poses, k, h, w, cfg)
    rows, cols, x0, y0 = layout.height, layout.width, layout.x0, layout.y0

    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * cfg.hide_radius + 1,) * 2)
    fg = (
        np.zeros((n, h, w), bool)
        if masks is None
        else np.stack([cv2.dilate((m > 0).astype(np.uint8), kernel) > 0 for m in masks])
    )

    canvas = np.zeros((rows, cols, 3), np.uint8)
    seen = np.zeros((rows, cols), bool)
    frame0 = (slice(y0, y0 + h), slice(x0, x0 + w))
    canvas[frame0] = frames[0]
    seen[frame0] = True
    hidden = np.zeros((rows, cols), bool)  # frame 0's foreground: its background goes to the strip
    hidden[frame0] = fg[0]
    behind = np.zeros_like(canvas)
    behind_seen = np.zeros((rows, cols), bool)
    for i in range(1, n):
        want = ~seen | (hidden & ~behind_seen)
        if not want.any():
            break
        mx, my = _sample_nodes(geometry, poses[i], k, h, w, rows, cols, (x0, y0), cfg.step)
        bg_i = np.where(fg[i], 0, 255).astype(np.uint8)
        ok = cv2.remap(bg_i, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0
        ok &= want
        if not ok.any():
            continue
        pixels = cv2.remap(frames[i], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        new_outer = ok & ~seen
        canvas[new_outer] = pixels[new_outer]
        seen |= new_outer
        new_behind = ok & hidden & ~behind_seen
        behind[new_behind] = pixels[new_behind]
        behind_seen |= new_behind
    canvas = fill_holes(canvas, ~seen)

    under = None
    useful = hidden & behind_seen  # background behind frame 0's objects that some frame saw
    enough = useful.sum() >= cfg.min_under_seen * hidden.sum()
    if useful.any() and (enough if cfg.under is None else cfg.under):
        bx, by, bw, bh = cv2.boundingRect(useful[frame0].astype(np.uint8))
        under = (bx, by, bw, bh)
    if under is None:
        return Mosaic(canvas, layout)
    bx, by, bw, bh = under
    layout = MosaicLayout(cols, rows, x0, y0, under)
    box = (slice(y0 + by, y0 + by + bh), slice(x0 + bx, x0 + bx + bw))
    strip = np.where(hidden[box][..., None], behind[box], canvas[box])
    strip = fill_holes(strip, hidden[box] & ~behind_seen[box])
    strip_rows, strip_cols = layout.strip_shape
    strip = cv2.resize(strip, (strip_cols, strip_rows), interpolation=cv2.INTER_AREA)
    # the rest of the strip's rows repeat its last column: flat, so nearly free to code
    strip = cv2.copyMakeBorder(strip, 0, 0, 0, cols - strip_cols, cv2.BORDER_REPLICATE)
    return Mosaic(np.concatenate([canvas, strip]), layout)
