"""Background motion: camera trajectories, their estimation, coding and accuracy metrics.

Importing the package registers the backends: pose codecs "paper" (code 0) and "compact" (code 1)
in POSE_CODECS, the "flow" estimator in POSE_ESTIMATORS."""

from cpsgd.poses import codec_compact, codec_paper, flow  # noqa: F401  (register the backends)
from cpsgd.poses.base import POSE_CODECS, POSE_ESTIMATORS
from cpsgd.poses.formats import load_poses, save_poses
from cpsgd.poses.trajectory import Intrinsics, Trajectory

DEFAULT_POSE_CODEC = "compact"

__all__ = [
    "DEFAULT_POSE_CODEC",
    "POSE_CODECS",
    "POSE_ESTIMATORS",
    "Intrinsics",
    "Trajectory",
    "load_poses",
    "save_poses",
]
