"""The default segmenter ("motion"): moving objects from camera-compensated optical flow.

1. Dense flow (OpenCV DIS) between neighbouring frames, at a reduced working resolution.
2. The camera's own motion is explained away by a homography fitted to the flow with RANSAC
   (exact for rotation, zoom and a static camera; a good approximation for a pan over a distant
   background). What the homography cannot explain is the residual motion.
3. Temporal consistency, twice, always along the flow and only where forward and backward
   flow agree (so what a moving object uncovers does not inherit its values): the residual
   displacements are summed with decay (an object's own motion adds up while flow noise
   cancels, so slow objects stand out), turned into a per-pixel score in [0, 1] against the
   frame's residual noise level, and the scores are averaged forwards and backwards (an object
   that pauses for a frame stays segmented).
4. A colour model learned from the confident pixels of the clip sharpens the motion blobs to the
   objects' edges, then the mask is cleaned: morphology, small components removed, holes filled.

All moving regions share label 1 (one foreground mask); objects do not get separate ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from cpsgd.errors import InputError
from cpsgd.masks.base import SEGMENTERS, Segmenter

_MIN_FLOW_SIDE = 32


@dataclass(frozen=True)
class MotionSegmenterConfig:
    work_size: int = 256  # long side of the analysis resolution, pixels
    ransac_threshold: float = 1.0  # homography inlier threshold, working-resolution pixels
    noise_floor: float = 0.3  # residual (pixels) never treated as motion, whatever the noise level
    noise_scale: float = 4.0  # residual at this many noise levels scores about 0.6
    memory: float = 0.6  # weight of the flow-propagated past in the temporal accumulation
    coherence: float = 0.5  # decay of the residual-displacement sum along the flow
    colour_weight: float = 0.5  # share of the colour model in the final score
    threshold: float = 0.6
    min_area: float = 0.003  # components smaller than this fraction of the frame are dropped


def _camera_residual(flow: np.ndarray, threshold: float, grid: np.ndarray) -> np.ndarray:
    """flow - flow of the best homography (the motion the camera does not explain), per pixel."""
    h, w = flow.shape[:2]
    step = max(4, min(h, w) // 48)
    ys, xs = np.mgrid[step // 2 : h : step, step // 2 : w : step]
    src = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
    dst = src + flow[ys.ravel(), xs.ravel()]
    homography, _ = cv2.findHomography(src, dst, cv2.RANSAC, threshold, maxIters=500, confidence=0.99)
    if homography is None:
        homography = np.eye(3)
    camera = cv2.perspectiveTransform(grid.reshape(-1, 1, 2), homography).reshape(h, w, 2) - grid
    return flow - camera


def _motion_score(residual: np.ndarray, config: MotionSegmenterConfig) -> np.ndarray:
    """Residual -> [0, 1]: scaled by the frame's noise level (median residual, which the
    background dominates), so that flow noise and small parallax stay near zero."""
    noise = max(float(np.median(residual)), config.noise_floor / config.noise_scale)
    x = residual / (config.noise_scale * noise)
    return 1.0 - np.exp(-(x**2))


def _warp(values: np.ndarray, flow: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Sample ``values`` (defined on the frame that ``flow`` points to) at grid + flow."""
    maps = grid + flow
    return cv2.remap(values, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _carry(values: np.ndarray, to_other: np.ndarray, from_other: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``values`` of a neighbouring frame brought along ``to_other`` (this frame -> that one),
    zero where the flow is not consistent both ways (occlusions: what an object uncovers must
    not inherit the object's values)."""
    back = _warp(from_other, to_other, grid)
    consistent = np.linalg.norm(to_other + back, axis=2) < 0.5 + 0.1 * np.linalg.norm(to_other, axis=2)
    moved = _warp(values, to_other, grid)
    return moved * (consistent[..., None] if moved.ndim == 3 else consistent)


def _accumulate(scores: np.ndarray, to_prev: list[np.ndarray], from_prev: list[np.ndarray], memory: float, grid: np.ndarray) -> np.ndarray:
    """Recursive average along the flow: acc_t = (1 - m) s_t + m carry(acc_{t-1})."""
    out = np.empty_like(scores)
    out[0] = scores[0]
    for t in range(1, len(scores)):
        out[t] = (1 - memory) * scores[t] + memory * _carry(out[t - 1], to_prev[t - 1], from_prev[t - 1], grid)
    return out


def _colour_probability(images: np.ndarray, score: np.ndarray, bins: int = 16) -> np.ndarray | None:
    """P(foreground | colour) from 3-D colour histograms of the confident pixels of the clip;
    None when the clip has no confident foreground or background to learn from."""
    idx = (images.astype(np.int32) * bins) // 256
    code = (idx[..., 0] * bins + idx[..., 1]) * bins + idx[..., 2]
    fg = np.bincount(code[score > 0.7], minlength=bins**3).astype(np.float64)
    bg = np.bincount(code[score < 0.2], minlength=bins**3).astype(np.float64)
    if fg.sum() == 0 or bg.sum() == 0:
        return None
    fg, bg = fg / fg.sum(), bg / bg.sum()
    prob = (fg + 1e-6) / (fg + bg + 2e-6)
    return prob[code].astype(np.float32)


def _clean(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    """Open/close, drop components under ``min_pixels``, fill holes."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = np.zeros(count, dtype=np.uint8)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_pixels
    mask = keep[labels]
    # Holes: background components that do not touch the border.
    inverse = (1 - mask).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(inverse, connectivity=4)
    h, w = mask.shape
    x, y, bw, bh = (stats[:, k] for k in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT))
    inner = (x > 0) & (y > 0) & (x + bw < w) & (y + bh < h)
    inner[0] = False
    return np.where(inner[labels], 1, mask).astype(np.uint8)


@SEGMENTERS.register("motion")
class MotionSegmenter(Segmenter):
    """Moving-object masks from camera-compensated flow; see the module docstring."""

    def __init__(self, config: MotionSegmenterConfig = MotionSegmenterConfig()) -> None:
        self.config = config

    def scores(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) RGB -> (N, h, w) float32 foreground scores at the working resolution
        (long side ``work_size``)."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
            raise InputError(f"frames must be a non-empty (N, H, W, 3) uint8 array, got {frames.dtype} {frames.shape}")
        n, height, width = frames.shape[:3]
        # Always work at one size, so that flow magnitudes (pixels) mean the same for any input.
        scale = self.config.work_size / max(height, width)
        # OpenCV's DIS flow crashes (segfault) on images 10-30 px on a side: very wide or tall
        # inputs get a short side of 32 px at the working resolution
        size = (max(_MIN_FLOW_SIDE, round(width * scale)), max(_MIN_FLOW_SIDE, round(height * scale)))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        small = np.stack([cv2.resize(f, size, interpolation=interpolation) for f in frames])
        if n == 1:
            return np.zeros(small.shape[:3], np.float32)
        gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in small])
        grid = np.dstack(np.meshgrid(np.arange(size[0]), np.arange(size[1]))).astype(np.float32)
        engine = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        forward = [engine.calc(gray[t], gray[t + 1], None) for t in range(n - 1)]
        backward = [engine.calc(gray[t + 1], gray[t], None) for t in range(n - 1)]
        # Residual displacements are summed along the flow (with decay): an object's own motion
        # adds up over frames while flow noise cancels, so slow objects stand out too.
        threshold, decay = self.config.ransac_threshold, self.config.coherence
        ahead = [_camera_residual(f, threshold, grid) for f in forward]  # frame t, towards t + 1
        back = [_camera_residual(f, threshold, grid) for f in backward]  # frame t + 1, towards t
        for t in range(1, n - 1):
            ahead[t] = ahead[t] + decay * _carry(ahead[t - 1], backward[t - 1], forward[t - 1], grid)
        for t in range(n - 3, -1, -1):
            back[t] = back[t] + decay * _carry(back[t + 1], forward[t + 1], backward[t + 1], grid)
        # Each frame's score: the mean over the directions it has (first and last: one).
        raw = np.zeros(small.shape[:3], np.float32)
        count = np.full(n, 2.0, np.float32)
        count[[0, -1]] = 1
        for t in range(n - 1):
            raw[t] += _motion_score(np.linalg.norm(ahead[t], axis=2), self.config)
            raw[t + 1] += _motion_score(np.linalg.norm(back[t], axis=2), self.config)
        raw /= count[:, None, None]
        memory = self.config.memory
        ahead = _accumulate(raw, backward, forward, memory, grid)
        behind = _accumulate(raw[::-1], forward[::-1], backward[::-1], memory, grid)[::-1]
        motion = 0.5 * (ahead + behind)
        colour = _colour_probability(small, motion)
        if colour is None:
            return motion.astype(np.float32)
        w = self.config.colour_weight
        # Colour only sharpens regions that move a little: alone it would pick up look-alikes.
        return ((1 - w) * motion + w * colour * (motion > 0.1)).astype(np.float32)

    def segment(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        score = self.scores(frames)
        height, width = frames.shape[1:3]
        min_pixels = max(1, int(self.config.min_area * score.shape[1] * score.shape[2]))
        masks = np.empty((len(frames), height, width), np.uint8)
        for t, s in enumerate(score):
            small = _clean((s >= self.config.threshold).astype(np.uint8), min_pixels)
            smooth = cv2.GaussianBlur(small.astype(np.float32), (0, 0), 1.0)
            masks[t] = cv2.resize(smooth, (width, height), interpolation=cv2.INTER_LINEAR) >= 0.5
        return masks
