"""Background motion: camera trajectories, their estimation, coding and accuracy metrics.

Backends: pose codecs "paper" (code 0) and "compact" (code 1) in POSE_CODECS, the "flow" estimator
in POSE_ESTIMATORS; each loads when first asked for, and the file formats on first use."""

from cpsgd.lazy import lazy_exports
from cpsgd.poses.base import POSE_CODECS, POSE_ESTIMATORS
from cpsgd.poses.trajectory import Intrinsics, Trajectory

__getattr__ = lazy_exports(__name__, {"load_poses": "formats", "save_poses": "formats"})

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
