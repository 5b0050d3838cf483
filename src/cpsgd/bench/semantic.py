"""Semantic fidelity without learned weights: does the decoded video keep the source's motion?

- camera: poses re-estimated on the decoded clip against those estimated on the source, mean
  rotation error in degrees (relative to frame 0, so the world frame does not matter);
- foreground: masks re-segmented on the decoded clip against the source's, mean J (IoU).

The reference is the same estimator run on the source with the same masks, so a perfect codec
scores 0 degrees and J = 1 whatever the estimator's own accuracy; annotations, where the dataset
has them, steer both pose fits (source and decoded clip) away from the foreground.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cpsgd.masks.base import SEGMENTERS, Segmenter
from cpsgd.masks.metrics import region_similarity
from cpsgd.poses.base import POSE_ESTIMATORS, PoseEstimator
from cpsgd.poses.metrics import rotation_errors_deg
from cpsgd.poses.trajectory import Trajectory

POSE_ESTIMATOR = "flow"
SEGMENTER = "motion"


def _load_backends() -> None:
    """Import the modules that register the CPU estimator and segmenter (absent in a partial build)."""
    import importlib

    for module in ("cpsgd.poses.flow", "cpsgd.masks.motion"):
        try:
            importlib.import_module(module)
        except ImportError:
            continue


def pose_estimator() -> PoseEstimator | None:
    _load_backends()
    return POSE_ESTIMATORS.get(POSE_ESTIMATOR)() if POSE_ESTIMATOR in POSE_ESTIMATORS else None


def segmenter() -> Segmenter | None:
    _load_backends()
    return SEGMENTERS.get(SEGMENTER)() if SEGMENTER in SEGMENTERS else None


@dataclass
class SemanticReference:
    """What the decoded clips of one sequence are compared with (computed once per sequence)."""

    estimator: PoseEstimator | None
    segmenter: Segmenter | None
    trajectory: Trajectory | None
    masks: np.ndarray | None
    annotations: np.ndarray | None = None  # given to both pose fits

    @classmethod
    def of(
        cls, frames: np.ndarray, annotations: np.ndarray | None = None, poses: bool = True, masks: bool = True
    ) -> SemanticReference:
        """``poses`` / ``masks`` False leave that comparison out (pose estimation is slow on CPU)."""
        estimator = pose_estimator() if poses else None
        seg = segmenter() if masks else None
        trajectory = estimator.estimate(frames, masks=annotations) if estimator else None
        return cls(estimator, seg, trajectory, seg.segment(frames) if seg else None, annotations)

    def notes(self, poses: bool = True, masks: bool = True) -> list[str]:
        missing = []
        if poses and self.estimator is None:
            missing.append(f"rot_err_deg skipped: pose estimator {POSE_ESTIMATOR!r} is not available")
        if masks and self.segmenter is None:
            missing.append(f"mask_j skipped: segmenter {SEGMENTER!r} is not available")
        return missing

    def scores(self, decoded: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.estimator is not None and self.trajectory is not None:
            estimate = self.estimator.estimate(decoded, masks=self.annotations)
            out["rot_err_deg"] = float(np.mean(rotation_errors_deg(estimate, self.trajectory)))
        if self.segmenter is not None and self.masks is not None:
            out["mask_j"] = float(np.mean(region_similarity(self.segmenter.segment(decoded), self.masks)))
        return out
