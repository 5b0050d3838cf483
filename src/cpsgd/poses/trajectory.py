"""Camera trajectories: shared intrinsics plus one world-to-camera pose per frame (OpenCV axes)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def focal_of_fov(fov_deg: float) -> float:
    """Focal length, normalised by the image width, of a horizontal field of view (degrees)."""
    return float(0.5 / np.tan(np.radians(fov_deg) / 2))


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics normalised by image width (fx, cx) and height (fy, cy), as RealEstate10K."""

    fx: float
    fy: float
    cx: float = 0.5
    cy: float = 0.5

    def matrix(self, width: int, height: int) -> np.ndarray:
        """3x3 K in pixels for an image of the given size."""
        return np.array(
            [[self.fx * width, 0.0, self.cx * width], [0.0, self.fy * height, self.cy * height], [0.0, 0.0, 1.0]]
        )

    @classmethod
    def from_matrix(cls, k: np.ndarray, width: int, height: int) -> Intrinsics:
        return cls(k[0, 0] / width, k[1, 1] / height, k[0, 2] / width, k[1, 2] / height)


@dataclass
class Trajectory:
    """``world_to_camera[i]`` maps world points into camera i's frame: x_cam = R x_world + t."""

    intrinsics: Intrinsics
    world_to_camera: np.ndarray  # (N, 4, 4) float64

    def __post_init__(self) -> None:
        w2c = np.asarray(self.world_to_camera, dtype=np.float64)
        if w2c.ndim != 3 or w2c.shape[1:] != (4, 4):
            raise ValueError(f"world_to_camera must be (N, 4, 4), got {w2c.shape}")
        self.world_to_camera = w2c

    def __len__(self) -> int:
        return len(self.world_to_camera)

    @property
    def rotations(self) -> np.ndarray:
        return self.world_to_camera[:, :3, :3]

    @property
    def translations(self) -> np.ndarray:
        return self.world_to_camera[:, :3, 3]

    def camera_to_world(self) -> np.ndarray:
        return np.linalg.inv(self.world_to_camera)

    def relative_to_first(self) -> Trajectory:
        """Re-express the poses so that frame 0 is the identity (the paper's E'_i = E_1^-1 E_i on
        camera-to-world; here in world-to-camera form: w2c_i @ c2w_0)."""
        c2w0 = np.linalg.inv(self.world_to_camera[0])
        return Trajectory(self.intrinsics, self.world_to_camera @ c2w0)

    def slice(self, start: int, stop: int) -> Trajectory:
        return Trajectory(self.intrinsics, self.world_to_camera[start:stop].copy())

    @classmethod
    def identity(cls, n: int, intrinsics: Intrinsics) -> Trajectory:
        return cls(intrinsics, np.tile(np.eye(4), (n, 1, 1)))
