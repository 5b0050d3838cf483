"""Per-pixel Plücker ray embeddings of a camera trajectory (CameraCtrl's standard form).

The paper's Eq. 4 adds the translation to the ray direction, which gives a point on the ray, not a
direction; we use the standard embedding instead (see the reading notes of the paper): with the
camera-to-world pose (R, t) relative to the first frame, o = t, d = normalize(R K^-1 [u+.5, v+.5, 1]^T)
and the 6 channels are (o x d, d), moment first.
"""

from __future__ import annotations

import numpy as np

from cpsgd.poses.trajectory import Trajectory


def plucker_embedding(
    trajectory: Trajectory,
    height: int,
    width: int,
    grid_height: int | None = None,
    grid_width: int | None = None,
) -> np.ndarray:
    """Return (N, 6, grid_height, grid_width) float32 embeddings.

    ``height``/``width`` give the image size the normalised intrinsics refer to; the grid may be larger
    (a frame padded on the right and bottom keeps the same pixel coordinates), and defaults to it.
    """
    grid_height = height if grid_height is None else grid_height
    grid_width = width if grid_width is None else grid_width
    cam_to_world = np.linalg.inv(trajectory.relative_to_first().world_to_camera)
    k_inv = np.linalg.inv(trajectory.intrinsics.matrix(width, height))
    u, v = np.meshgrid(np.arange(grid_width) + 0.5, np.arange(grid_height) + 0.5)
    pixels = np.stack([u.ravel(), v.ravel(), np.ones(u.size)])  # (3, P)
    directions = cam_to_world[:, :3, :3] @ (k_inv @ pixels)  # (N, 3, P)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    origins = np.broadcast_to(cam_to_world[:, :3, 3, None], directions.shape)
    moments = np.cross(origins, directions, axis=1)
    embedding = np.concatenate([moments, directions], axis=1)
    return embedding.reshape(len(trajectory), 6, grid_height, grid_width).astype(np.float32)
