"""Camera paths, as camera-to-world matrices with frame 0 at the world origin (OpenCV axes:
x right, y down, z forward).

Motions follow sines whose slope at frame 0 is the nominal per-frame speed: over a default clip
they are close to uniform, and long clips swing back instead of leaving the scene.
"""

from __future__ import annotations

import numpy as np

TRAJECTORIES = ("static", "pan", "dolly", "orbit", "shake")

PAN_DEG_PER_FRAME = 0.45
PAN_MAX_DEG = 20.0
DOLLY_UNITS_PER_FRAME = 0.07
DOLLY_MAX_UNITS = 2.5
ORBIT_PIVOT_DEPTH = 6.0
ORBIT_DEG_PER_FRAME = 0.6
ORBIT_MAX_DEG = 25.0
SHAKE_ROT_DEG = 0.6
SHAKE_TRANS_UNITS = 0.05


def rotation_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rotation_from_vector(rvec: np.ndarray) -> np.ndarray:
    """Rodrigues' formula (axis * angle -> matrix)."""
    angle = float(np.linalg.norm(rvec))
    if angle < 1e-12:
        return np.eye(3)
    x, y, z = rvec / angle
    cross = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def _swing(frames: np.ndarray, speed: float, limit: float) -> np.ndarray:
    """limit * sin(speed * t / limit): starts at ``speed`` per frame, never exceeds ``limit``."""
    return limit * np.sin(frames * speed / limit)


def _smooth_noise(rng: np.random.Generator, frames: np.ndarray, dims: int) -> np.ndarray:
    """(N, dims) band-limited noise in about [-1, 1]: a few random sines per dimension, like the
    low-frequency wobble of a hand-held camera."""
    waves = 3
    freq = rng.uniform(0.03, 0.25, size=(dims, waves))  # cycles per frame
    phase = rng.uniform(0, 2 * np.pi, size=(dims, waves))
    amp = rng.uniform(0.5, 1.0, size=(dims, waves))
    amp /= amp.sum(axis=1, keepdims=True)
    arg = 2 * np.pi * freq[None] * frames[:, None, None] + phase[None]
    return (amp[None] * np.sin(arg)).sum(axis=2)


def camera_to_world(traj: str, num_frames: int, motion: float, rng: np.random.Generator) -> np.ndarray:
    """(N, 4, 4) camera-to-world poses; frame 0 is exactly the identity."""
    t = np.arange(num_frames, dtype=np.float64)
    poses = np.tile(np.eye(4), (num_frames, 1, 1))
    if traj == "static":
        pass
    elif traj == "pan":  # pure rotation about the camera centre
        yaw = _swing(t, np.radians(PAN_DEG_PER_FRAME) * motion, np.radians(PAN_MAX_DEG))
        poses[:, :3, :3] = [rotation_y(a) for a in yaw]
    elif traj == "dolly":  # straight forward
        poses[:, 2, 3] = _swing(t, DOLLY_UNITS_PER_FRAME * motion, DOLLY_MAX_UNITS)
    elif traj == "orbit":  # circle around a pivot on the initial optical axis, looking at it
        angle = _swing(t, np.radians(ORBIT_DEG_PER_FRAME) * motion, np.radians(ORBIT_MAX_DEG))
        pivot = np.array([0.0, 0.0, ORBIT_PIVOT_DEPTH])
        for pose, a in zip(poses, angle):
            pose[:3, :3] = rotation_y(a)
            pose[:3, 3] = pivot - ORBIT_PIVOT_DEPTH * pose[:3, 2]
    elif traj == "shake":  # small smooth random rotations and translations
        noise = _smooth_noise(rng, t, 6)
        noise -= noise[0]  # frame 0 at the origin
        rvecs = noise[:, :3] * np.radians(SHAKE_ROT_DEG) * motion
        poses[:, :3, :3] = [rotation_from_vector(r) for r in rvecs]
        poses[:, :3, 3] = noise[:, 3:] * SHAKE_TRANS_UNITS * motion
    else:
        raise ValueError(f"unknown trajectory {traj!r}")
    return poses
