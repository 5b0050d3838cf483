"""Background motion: camera trajectories, their estimation, coding and accuracy metrics."""

from cpsgd.poses.trajectory import Intrinsics, Trajectory

__all__ = ["Intrinsics", "Trajectory"]
