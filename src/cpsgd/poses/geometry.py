"""Rotation helpers shared by the pose codecs, metrics and estimator (SciPy's Rotation underneath)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation, Slerp


def nearest_rotation(m: np.ndarray) -> np.ndarray:
    """Project (..., 3, 3) matrices onto SO(3) (closest in Frobenius norm, determinant +1)."""
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))
    d = np.where(d == 0, 1.0, d)
    u = u.copy()
    u[..., :, 2] *= d[..., None]
    return u @ vt


def rotation_angle_deg(r: np.ndarray) -> np.ndarray:
    """Angle in degrees of (..., 3, 3) rotation matrices (robust near 0 and 180 degrees)."""
    return np.degrees(np.linalg.norm(Rotation.from_matrix(r.reshape(-1, 3, 3)).as_rotvec(), axis=-1)).reshape(
        r.shape[:-2]
    )


def slerp_rotation(r0: np.ndarray, r1: np.ndarray, t: float) -> np.ndarray:
    """Spherical linear interpolation between two rotation matrices along the shorter arc
    (paper Eq. 2 with Omega = arccos(q0 . q1)); t = 0 gives r0, t = 1 gives r1."""
    return Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([r0, r1])))([t]).as_matrix()[0]


def camera_centres(world_to_camera: np.ndarray) -> np.ndarray:
    """(N, 3) camera positions in world coordinates: c = -R^T t."""
    r = world_to_camera[:, :3, :3]
    t = world_to_camera[:, :3, 3]
    return -np.einsum("nji,nj->ni", r, t)


def compose_world_to_camera(rotations: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(N, 4, 4) world-to-camera matrices from rotations (N, 3, 3) and camera centres (N, 3)."""
    w2c = np.tile(np.eye(4), (len(rotations), 1, 1))
    w2c[:, :3, :3] = rotations
    w2c[:, :3, 3] = -np.einsum("nij,nj->ni", rotations, centres)
    return w2c
