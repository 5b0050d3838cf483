"""What the object motion side channel carries: per object and frame, an affine map that the warp
generator uses to carry the intra frame's object texture, in place of the map it would otherwise
fit between the decoded masks' shapes (the shapes of coarse masks place texture a few pixels off,
which costs most of the foreground's quality)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MIN_REFERENCE_SIDE = 8  # pixels: the reference triangle stays well conditioned for tiny objects
MAX_OBJECTS = 16  # objects carried per GoP (the first labels of the first mask)


@dataclass(frozen=True)
class ObjectMotion:
    """label -> (N, 2, 3) affine maps A_i with ``frame0_point = A_i @ [x, y, 1]`` for a point of
    frame i (pixel indices); A_0 is the identity."""

    transforms: dict[int, np.ndarray]

    def frames(self, picks: np.ndarray) -> ObjectMotion:
        """The same objects on the frames ``picks`` of the GoP (the rate control renders subsets)."""
        return ObjectMotion({label: t[picks] for label, t in self.transforms.items()})


def object_labels(first_mask: np.ndarray) -> list[int]:
    """The objects a GoP carries: the labels of its first mask, at most MAX_OBJECTS, in order."""
    return [int(v) for v in np.unique(first_mask) if v][:MAX_OBJECTS]


def homogeneous(maps: np.ndarray) -> np.ndarray:
    """(N, 2, 3) affine maps as (N, 3, 3) matrices."""
    return np.concatenate([maps, np.tile([[[0.0, 0.0, 1.0]]], (len(maps), 1, 1))], axis=1)


def reference_points(mask: np.ndarray) -> np.ndarray:
    """(3, 2) frame-0 points whose positions in each frame stand for an object's affine map: three
    corners of the object's bounding box in ``mask`` (what the decoder has: the first decoded mask)."""
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    w, h = max(w, MIN_REFERENCE_SIDE), max(h, MIN_REFERENCE_SIDE)
    return np.array([[x, y], [x + w, y], [x, y + h]], dtype=np.float64)


def positions_in_frames(transforms: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 3, 2): where the frame-0 ``points`` are in each frame, under (N, 2, 3) frame-i -> frame-0 maps."""
    inverse = np.linalg.inv(homogeneous(transforms))
    return np.einsum("nij,kj->nki", inverse[:, :2, :2], points) + inverse[:, None, :2, 2]


def transforms_from_positions(positions: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    """(N, 2, 3) frame-i -> frame-0 maps that take ``positions`` (N, 3, 2) to ``points`` (3, 2);
    None when a frame's three positions are (nearly) collinear."""
    source = np.concatenate([positions, np.ones((len(positions), 3, 1))], axis=2)  # (N, 3, 3)
    if np.any(np.abs(np.linalg.det(source)) < 1e-6):
        return None
    # source @ A^T = points, per frame
    return np.swapaxes(np.linalg.solve(source, np.broadcast_to(points, (len(positions), 3, 2))), 1, 2)
