"""Pose accuracy: per-frame rotation and translation-direction errors, ATE and RPE after a Sim(3)
(Umeyama) alignment. Both trajectories are first made relative to their first frame, so the
errors say how well the camera *motion* within the GoP is kept, whatever the world frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cpsgd.poses.geometry import camera_centres, rotation_angle_deg
from cpsgd.poses.trajectory import Trajectory


def _check_pair(estimate: Trajectory, reference: Trajectory) -> None:
    if len(estimate) != len(reference):
        raise ValueError(f"trajectories differ in length: {len(estimate)} vs {len(reference)}")


def rotation_errors_deg(estimate: Trajectory, reference: Trajectory) -> np.ndarray:
    """(N,) angle of R_est R_ref^T per frame, poses relative to frame 0 (frame 0 is always 0)."""
    _check_pair(estimate, reference)
    a = estimate.relative_to_first().rotations
    b = reference.relative_to_first().rotations
    return rotation_angle_deg(a @ np.swapaxes(b, 1, 2))


def translation_direction_errors_deg(
    estimate: Trajectory, reference: Trajectory, min_fraction: float = 1e-3
) -> np.ndarray:
    """(N,) angle between the camera positions (in the first camera's frame) of both trajectories.

    Monocular scale is arbitrary, so only the direction counts. Frames whose reference position is
    shorter than ``min_fraction`` of the longest one (frame 0, a static camera) have no direction:
    NaN."""
    _check_pair(estimate, reference)
    a = camera_centres(estimate.relative_to_first().world_to_camera)
    b = camera_centres(reference.relative_to_first().world_to_camera)
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    valid = nb > min_fraction * max(nb.max(), 1e-12)
    cos = np.einsum("ni,ni->n", a, b) / np.maximum(na * nb, 1e-300)
    angle = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    angle[na == 0] = 90.0  # a lost translation is as wrong as an orthogonal one
    return np.where(valid, angle, np.nan)


def umeyama_alignment(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) minimising sum |target - (s R source + t)|^2 (Umeyama 1991).
    source, target: (N, 3). A degenerate source (all points equal) gets s = 1, R = I."""
    mu_s = source.mean(axis=0)
    mu_t = target.mean(axis=0)
    xs = source - mu_s
    xt = target - mu_t
    var_s = (xs**2).sum() / len(source)
    if var_s < 1e-24:
        return 1.0, np.eye(3), mu_t - mu_s
    cov = xt.T @ xs / len(source)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1.0
    r = u @ sign @ vt
    s = float(np.trace(np.diag(d) @ sign) / var_s)
    return s, r, mu_t - s * r @ mu_s


def absolute_trajectory_error(estimate: Trajectory, reference: Trajectory) -> float:
    """RMSE of the camera positions after Sim(3) alignment of the estimate onto the reference,
    in the reference's units."""
    _check_pair(estimate, reference)
    a = camera_centres(estimate.relative_to_first().world_to_camera)
    b = camera_centres(reference.relative_to_first().world_to_camera)
    s, r, t = umeyama_alignment(a, b)
    aligned = s * a @ r.T + t
    return float(np.sqrt(((aligned - b) ** 2).sum(axis=1).mean()))


def relative_pose_error(estimate: Trajectory, reference: Trajectory, delta: int = 1) -> tuple[float, float]:
    """(translation RMSE in reference units, rotation RMSE in degrees) of the motion between frames
    i and i + delta, the estimate scaled by the Sim(3) alignment's scale."""
    _check_pair(estimate, reference)
    if len(estimate) <= delta:
        return 0.0, 0.0
    a = estimate.relative_to_first().world_to_camera
    b = reference.relative_to_first().world_to_camera
    s, _, _ = umeyama_alignment(camera_centres(a), camera_centres(b))
    a = a.copy()
    a[:, :3, 3] *= s
    step_a = a[delta:] @ np.linalg.inv(a[:-delta])
    step_b = b[delta:] @ np.linalg.inv(b[:-delta])
    err = step_a @ np.linalg.inv(step_b)
    trans = np.sqrt((np.linalg.norm(err[:, :3, 3], axis=1) ** 2).mean())
    rot = np.sqrt((rotation_angle_deg(err[:, :3, :3]) ** 2).mean())
    return float(trans), float(rot)


def focal_error(estimate: Trajectory, reference: Trajectory) -> float:
    """Relative error of the horizontal focal length, |fx_est / fx_ref - 1|."""
    return abs(estimate.intrinsics.fx / reference.intrinsics.fx - 1.0)


@dataclass(frozen=True)
class PoseErrors:
    rotation_mean_deg: float
    rotation_median_deg: float
    rotation_max_deg: float
    translation_direction_mean_deg: float  # NaN when the reference does not move
    ate: float
    rpe_translation: float
    rpe_rotation_deg: float
    focal_error: float


def pose_errors(estimate: Trajectory, reference: Trajectory) -> PoseErrors:
    """All the metrics above in one record; rotation statistics skip frame 0 (identity by design)."""
    rot = rotation_errors_deg(estimate, reference)[1:]
    trans = translation_direction_errors_deg(estimate, reference)
    rpe_t, rpe_r = relative_pose_error(estimate, reference)
    rot = rot if len(rot) else np.zeros(1)
    return PoseErrors(
        rotation_mean_deg=float(rot.mean()),
        rotation_median_deg=float(np.median(rot)),
        rotation_max_deg=float(rot.max()),
        translation_direction_mean_deg=float(np.nanmean(trans)) if np.isfinite(trans).any() else float("nan"),
        ate=absolute_trajectory_error(estimate, reference),
        rpe_translation=rpe_t,
        rpe_rotation_deg=rpe_r,
        focal_error=focal_error(estimate, reference),
    )
