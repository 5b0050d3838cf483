"""Proof that a clip's ground truth is exact: lift the pixels of a reference frame to 3D with its
depth map, move them with the poses into frame k, and compare colours (and depths) there."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from cpsgd.poses.trajectory import Trajectory
from cpsgd.synth.render import pixel_rays
from cpsgd.synth.scene import SyntheticClip

_DEPTH_TOLERANCE = 0.01  # relative; wider than rounding, far narrower than any depth step in the scene


@dataclass(frozen=True)
class FrameCheck:
    frame: int
    colour_error: float  # mean |reference - warped frame k| over valid pixels, grey levels (0-255)
    depth_error: float  # median relative error of the projected depth vs frame k's depth map
    valid_fraction: float  # share of reference pixels that are static, in view and not occluded in k


@dataclass(frozen=True)
class ReprojectionReport:
    frames: tuple[FrameCheck, ...]

    @property
    def colour_error(self) -> float:
        """Mean colour error over the checked frames (nan for a one-frame clip)."""
        if not self.frames:
            return float("nan")
        return float(np.mean([f.colour_error for f in self.frames]))

    @property
    def max_depth_error(self) -> float:
        if not self.frames:
            return float("nan")
        return float(np.max([f.depth_error for f in self.frames]))


def _gather(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return image[np.clip(y, 0, image.shape[0] - 1), np.clip(x, 0, image.shape[1] - 1)]


def _project(
    clip: SyntheticClip, trajectory: Trajectory, k: int, reference: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each reference pixel's 3D point lands in frame k: (u, v, depth in k), float64 (H, W)."""
    height, width = clip.masks.shape[1:]
    kmat = trajectory.intrinsics.matrix(width, height)
    depth_ref = clip.depths[reference].astype(np.float64)
    depth_ref = np.where(np.isfinite(depth_ref), depth_ref, np.nan)
    points = pixel_rays(kmat, width, height) * depth_ref[..., None]
    relative = trajectory.world_to_camera[k] @ np.linalg.inv(trajectory.world_to_camera[reference])
    moved = points @ relative[:3, :3].T + relative[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        px = moved @ kmat.T
        return px[..., 0] / px[..., 2], px[..., 1] / px[..., 2], moved[..., 2]


def rigid_flow(clip: SyntheticClip, k: int, reference: int = 0) -> np.ndarray:
    """True optical flow (H, W, 2) from the reference frame to frame k of the static scene (camera
    motion only; object pixels get the flow of a static surface there, so mask them out). NaN
    where the reference pixel sees nothing."""
    u, v, _ = _project(clip, clip.trajectory, k, reference)
    height, width = u.shape
    cols, rows = np.meshgrid(np.arange(width), np.arange(height))
    return np.stack([u - cols, v - rows], axis=-1)


def check_frame(
    clip: SyntheticClip, k: int, reference: int = 0, trajectory: Trajectory | None = None
) -> FrameCheck:
    """Warp frame ``k`` onto the reference frame through the reference depth and ``trajectory``
    (default: the clip's own) and measure the colour error on static, unoccluded pixels."""
    traj = clip.trajectory if trajectory is None else trajectory
    height, width = clip.masks.shape[1:]
    u, v, z = _project(clip, traj, k, reference)
    depth_ref = clip.depths[reference]
    inside = (z > 1e-3) & (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1)
    valid = inside & np.isfinite(depth_ref) & (clip.masks[reference] == 0)
    u = np.where(inside, u, 0.0)
    v = np.where(inside, v, 0.0)

    # Bilinear sampling reads a 2x2 neighbourhood: all four pixels must be static and on the
    # surface the point lies on (same depth), otherwise the point is occluded or on an edge in k.
    x0, y0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    depth_k = clip.depths[k].astype(np.float64)
    for dx in (0, 1):
        for dy in (0, 1):
            neighbour = _gather(depth_k, x0 + dx, y0 + dy)
            with np.errstate(invalid="ignore"):
                rel = np.abs(neighbour - z) / z
            valid &= (rel < _DEPTH_TOLERANCE) & (_gather(clip.masks[k], x0 + dx, y0 + dy) == 0)
    # Every surface is planar and inverse depth is affine in the image across a plane, so its
    # bilinear interpolation is exact inside surfaces: the error left is floating-point rounding.
    inverse_k = np.where(np.isfinite(depth_k), 1.0 / depth_k, 0.0).astype(np.float32)
    sampled = cv2.remap(inverse_k, u.astype(np.float32), v.astype(np.float32), cv2.INTER_LINEAR)
    visible = inside & np.isfinite(depth_ref) & (clip.masks[reference] == 0)
    depth_rel = np.abs(sampled * z - 1.0)
    # occluded pixels and surface edges legitimately disagree; the median measures the geometry
    depth_error = float(np.median(depth_rel[visible])) if visible.any() else float("nan")

    warped = cv2.remap(
        clip.frames[k].astype(np.float32), u.astype(np.float32), v.astype(np.float32), cv2.INTER_LINEAR
    )
    diff = np.abs(warped - clip.frames[reference].astype(np.float32)).mean(axis=-1)
    colour_error = float(diff[valid].mean()) if valid.any() else float("nan")
    return FrameCheck(k, colour_error, depth_error, float(valid.mean()))


def reprojection_check(
    clip: SyntheticClip, reference: int = 0, trajectory: Trajectory | None = None
) -> ReprojectionReport:
    """Check every other frame against ``reference``. With the clip's own poses the colour error is
    at the level of sensor noise plus resampling blur (a few grey levels); a pose that is off by a
    fraction of a degree or a few centimetres gives a clearly larger error. Passing an estimated
    ``trajectory`` (same frame count, frame 0 = identity, true scale) scores it photometrically."""
    others = [i for i in range(len(clip.frames)) if i != reference]
    return ReprojectionReport(tuple(check_frame(clip, k, reference, trajectory) for k in others))
