"""Interfaces and registries of the pose stage: estimators (frames -> trajectory) and codecs."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from cpsgd.poses.trajectory import Trajectory
from cpsgd.registry import Registry


class PoseEstimator(ABC):
    """Estimates intrinsics and one world-to-camera pose per frame; frame 0 is the identity."""

    name: str

    @abstractmethod
    def estimate(self, frames: np.ndarray, masks: np.ndarray | None = None) -> Trajectory:
        """frames: (N, H, W, 3) uint8 RGB; masks: (N, H, W) uint8 labels, non-zero = foreground
        (left out of the fit)."""


class PoseCodec(ABC):
    """Codes one GoP's trajectory. ``decompress`` runs on a default-constructed instance:
    everything the decoder needs beyond the frame count is in the payload."""

    name: str
    code: int

    @abstractmethod
    def compress(self, trajectory: Trajectory) -> bytes: ...

    @abstractmethod
    def decompress(self, data: bytes, num_frames: int) -> Trajectory: ...


POSE_ESTIMATORS: Registry[PoseEstimator] = Registry("pose estimator", {"flow": "cpsgd.poses.flow"})
POSE_CODECS: Registry[PoseCodec] = Registry(
    "pose codec", {"paper": "cpsgd.poses.codec_paper", "compact": "cpsgd.poses.codec_compact"}
)
