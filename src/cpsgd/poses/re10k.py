"""RealEstate10K camera files: line 1 a URL (or any text), then one line per frame:
``timestamp_us fx fy cx cy 0 0`` and the 12 numbers of the 3x4 world-to-camera matrix, row-major."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpsgd.errors import InputError
from cpsgd.poses.trajectory import Intrinsics, Trajectory


def read_re10k(path: str | Path) -> tuple[Trajectory, np.ndarray]:
    """Return the trajectory and the timestamps (microseconds). Intrinsics come from the first pose."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read pose file {path}: {exc}") from None
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.split()]
        except ValueError:
            raise InputError(f"{path}:{number}: not a RealEstate10K pose line") from None
        if len(values) != 19 or not np.all(np.isfinite(values)):
            raise InputError(f"{path}:{number}: expected 19 finite numbers, got {len(values)}")
        rows.append(values)
    if not rows:
        raise InputError(f"{path}: no poses (RealEstate10K files start with a URL line)")
    table = np.array(rows)
    w2c = np.tile(np.eye(4), (len(table), 1, 1))
    w2c[:, :3, :4] = table[:, 7:19].reshape(-1, 3, 4)
    intrinsics = Intrinsics(*table[0, 1:5])
    return Trajectory(intrinsics, w2c), table[:, 0].astype(np.int64)


def write_re10k(
    path: str | Path,
    trajectory: Trajectory,
    fps: float = 25.0,
    header: str = "cpsgd",
    timestamps_us: np.ndarray | None = None,
) -> None:
    """``timestamps_us``: each pose's time (default: frame i at i / fps)."""
    k = trajectory.intrinsics
    lines = [header]
    for i, pose in enumerate(trajectory.world_to_camera):
        stamp = int(round(i * 1e6 / fps)) if timestamps_us is None else int(timestamps_us[i])
        numbers = " ".join(f"{v:.9g}" for v in pose[:3, :4].ravel())
        lines.append(f"{stamp} {k.fx:.9g} {k.fy:.9g} {k.cx:.9g} {k.cy:.9g} 0 0 {numbers}")
    Path(path).write_text("\n".join(lines) + "\n")
