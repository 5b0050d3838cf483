"""What a viewer sees beyond frame averages: ghosts, flicker and tearing, pops at GoP starts.

- *Disocclusion fidelity*: PSNR and RGB MS-SSIM inside the background that the annotated object
  uncovers after frame 0 (pixels masked in frame 0 and not masked in frame i, from the dataset's
  masks). A ghost, the object's texture left behind on the background, lives there.
- *Temporal consistency*: the flow-compensated warping error between consecutive frames. Flow is
  computed once on the SOURCE frames (OpenCV DIS, i -> i-1), decoded frame i-1 is warped onto
  frame i with it and compared with decoded frame i (RGB RMSE over the pixels where the forward
  and backward flows agree, so occlusions are left out). The same figure on the source itself is
  subtracted: ``warp_err_excess`` is 0 for a clip as steady as the source, positive for flicker,
  tearing and popping, slightly negative for a clip smoother than the source (blur).
- *GoP-start pop*: the absolute PSNR jump (dB) from the frame before to the first frame of each
  GoP after the first, averaged over those GoPs. Anchors code 25-frame clips with one keyframe,
  so they are measured at the frame indices where cpsgd starts its GoPs on the same clip (what a
  viewer compares), see ``cpsgd.bench.report``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from cpsgd.bench.metrics import ms_ssim_rgb
from cpsgd.quality import PSNR_CAP

# Where a run saves the strip frames of each cpsgd point, so that the report need not decode again.
DECODED_DIR = "decoded"
# Fewer uncovered pixels than this over the clip: too few to score (a mask's edge jitter).
MIN_UNCOVERED_PIXELS = 64
# Forward-backward flow disagreement (px) beyond which a pixel counts as occluded.
FLOW_CONSISTENCY_PX = 1.0


def strip_frames(count: int) -> tuple[int, ...]:
    """The frames a side-by-side strip shows: 0, 12 and 24 of a 25-frame clip (and of longer
    ones); the first, middle and last of a shorter one."""
    return (0, 12, 24) if count >= 25 else tuple(dict.fromkeys((0, count // 2, count - 1)))


def uncovered_regions(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) bool: pixels the object covers in frame 0 and no longer covers in frame i."""
    first = masks[0].astype(bool)
    return first[None] & ~masks.astype(bool)


def region_psnr(reference: np.ndarray, decoded: np.ndarray, regions: np.ndarray) -> float:
    """PSNR (dB) of the pixels inside ``regions`` pooled over all frames (capped at ``PSNR_CAP``)."""
    diff = reference[regions].astype(np.float64) - decoded[regions].astype(np.float64)
    mse = float(np.mean(diff**2))
    return PSNR_CAP if mse == 0 else min(10.0 * np.log10(255.0**2 / mse), PSNR_CAP)


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def _sample_points(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs + flow[..., 0], ys + flow[..., 1]


def source_flows(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair (i-1, i): the sampling maps (N-1, 2, H, W) that pull frame i-1 onto frame i, and
    the (N-1, H, W) bool pixels where that flow is trusted (inside the frame, consistent)."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    h, w = frames.shape[1:3]
    maps, valid = [], []
    for prev, cur in zip(frames[:-1], frames[1:], strict=True):
        g_prev, g_cur = _gray(prev), _gray(cur)
        back = dis.calc(g_cur, g_prev, None)  # cur(x) ~ prev(x + back(x))
        fwd = dis.calc(g_prev, g_cur, None)
        map_x, map_y = _sample_points(back)
        fwd_at = cv2.remap(fwd, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        agree = np.linalg.norm(back + fwd_at, axis=-1) <= FLOW_CONSISTENCY_PX
        inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
        maps.append(np.stack([map_x, map_y]))
        valid.append(agree & inside)
    return np.array(maps).reshape(-1, 2, h, w), np.array(valid, dtype=bool).reshape(-1, h, w)


def warp_error(frames: np.ndarray, maps: np.ndarray, valid: np.ndarray) -> float | None:
    """RGB RMSE between each frame and its predecessor warped onto it, over the trusted pixels;
    None without flows (one frame, or temporal consistency not asked for)."""
    total, count = 0.0, 0
    for i in range(1, len(maps) + 1):
        warped = cv2.remap(frames[i - 1], maps[i - 1, 0], maps[i - 1, 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        diff = warped[valid[i - 1]].astype(np.float64) - frames[i][valid[i - 1]].astype(np.float64)
        total += float(np.sum(diff**2))
        count += diff.size
    return float(np.sqrt(total / count)) if count else None


def gop_pop(frame_psnr: list[float], starts: list[int]) -> float | None:
    """Mean absolute PSNR jump (dB) into each GoP start after frame 0; None with one GoP."""
    jumps = [abs(frame_psnr[s] - frame_psnr[s - 1]) for s in starts if 0 < s < len(frame_psnr)]
    return float(np.mean(jumps)) if jumps else None


@dataclass
class ViewerReference:
    """What the viewer metrics compare each decoded clip of one sequence with (computed once)."""

    frames: np.ndarray
    uncovered: np.ndarray | None  # None: the dataset has no masks, or the object uncovers too little
    maps: np.ndarray
    valid: np.ndarray
    source_warp_err: float | None

    @classmethod
    def of(cls, frames: np.ndarray, masks: np.ndarray | None, temporal: bool = True) -> ViewerReference:
        uncovered = uncovered_regions(masks) if masks is not None else None
        if uncovered is not None and uncovered.sum() < MIN_UNCOVERED_PIXELS:
            uncovered = None
        h, w = frames.shape[1:3]
        if temporal and len(frames) > 1:
            maps, valid = source_flows(frames)
        else:
            maps, valid = np.zeros((0, 2, h, w), np.float32), np.zeros((0, h, w), bool)
        return cls(frames, uncovered, maps, valid, warp_error(frames, maps, valid))

    def notes(self, disocclusion: bool, temporal: bool) -> list[str]:
        notes = []
        if disocclusion and self.uncovered is None:
            notes.append("disocclusion skipped on sequences without masks or where the object uncovers "
                         f"under {MIN_UNCOVERED_PIXELS} pixels")
        if temporal and self.source_warp_err is None:
            notes.append("warp_err_excess skipped on one-frame sequences")
        return notes

    def scores(self, decoded: np.ndarray, disocclusion: bool = True, temporal: bool = True) -> dict[str, float]:
        out: dict[str, float] = {}
        if disocclusion and self.uncovered is not None:
            out["disocc_psnr"] = region_psnr(self.frames, decoded, self.uncovered)
            score = ms_ssim_rgb(self.frames, decoded, self.uncovered)
            if score is not None:
                out["disocc_ms_ssim"] = score
        if temporal and self.source_warp_err is not None:
            err = warp_error(decoded, self.maps, self.valid)
            if err is not None:
                out["warp_err_excess"] = err - self.source_warp_err
        return out
