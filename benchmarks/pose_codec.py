"""Bits per GoP and pose errors of the pose codecs ("paper", "compact") on real and synthetic
trajectories.

    python benchmarks/pose_codec.py [--data ../shared/data] [--gop 25]

Trajectory sets: RealEstate10K files (16-pose originals and 25-pose `_svdxt` resamplings), TUM
fr1/xyz cut into windows of --gop poses, and the camera paths of cpsgd.synth (every moving kind,
8 seeds; shake also at twice its motion).
Errors are those of cpsgd.poses.metrics: rotation error (degrees, frame 0 excluded), translation
direction error (degrees, camera positions in the first camera's frame), ATE after Sim(3)
alignment relative to the length of the path.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from cpsgd.poses import POSE_CODECS, Intrinsics, Trajectory, load_poses
from cpsgd.poses.formats import read_tum
from cpsgd.poses.geometry import camera_centres
from cpsgd.poses.metrics import pose_errors
from cpsgd.synth.trajectories import TRAJECTORIES, camera_to_world

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def trajectory_sets(data: Path, gop: int) -> dict[str, list[Trajectory]]:
    sets: dict[str, list[Trajectory]] = {}
    re10k = sorted((data / "poses" / "re10k").glob("*.txt"))
    sets["re10k 16-pose"] = [load_poses(p) for p in re10k if not p.stem.endswith("_svdxt")]
    sets["re10k 25-pose"] = [load_poses(p) for p in re10k if p.stem.endswith("_svdxt")]
    tum_path = data / "poses" / "tum" / "freiburg1_xyz-groundtruth.txt"
    if tum_path.is_file():
        # fr1 camera: fx 517.3, fy 516.5, cx 318.6, cy 255.3 at 640x480.
        tum, _ = read_tum(tum_path, Intrinsics(517.3 / 640, 516.5 / 480, 318.6 / 640, 255.3 / 480))
        sets[f"tum fr1/xyz {gop}-pose windows"] = [tum.slice(s, s + gop) for s in range(0, len(tum) - gop + 1, gop)]
    for kind in TRAJECTORIES:
        if kind == "static":
            continue
        for motion in (1.0, 2.0) if kind == "shake" else (1.0,):
            c2ws = [camera_to_world(kind, gop, motion, np.random.default_rng(seed)) for seed in range(8)]
            trajectories = [Trajectory(Intrinsics(0.866, 0.866), np.linalg.inv(c)) for c in c2ws]
            sets[f"synthetic {kind} x{motion:g} (8 seeds)"] = trajectories
    return {name: trajs for name, trajs in sets.items() if trajs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--gop", type=int, default=25)
    args = parser.parse_args()
    print(f"command: python benchmarks/pose_codec.py --data {args.data} --gop {args.gop}")
    header = (
        f"{'set':40s} {'codec':8s} {'n':>4s} {'bits/GoP':>9s} {'max':>5s} {'>500':>4s} {'rot mean':>9s} {'worst traj':>10s} "
        f"{'rot max':>8s} {'tdir mean':>9s} {'worst traj':>10s} {'ATE/path':>9s} {'ms/GoP':>7s}"
    )
    print(header)
    for name, trajectories in trajectory_sets(args.data, args.gop).items():
        for codec_name in ("paper", "compact"):
            bits, rot_mean, rot_max, tdir, ate, table_bits, code_bits = [], [], [], [], [], [], []
            start = time.perf_counter()
            for trajectory in trajectories:
                codec = POSE_CODECS.get(codec_name)()
                data = codec.compress(trajectory)
                decoded = POSE_CODECS.by_code(codec.code)().decompress(data, len(trajectory))
                errors = pose_errors(decoded, trajectory)
                centres = camera_centres(trajectory.relative_to_first().world_to_camera)
                path = np.linalg.norm(np.diff(centres, axis=0), axis=1).sum()
                bits.append(8 * len(data))
                rot_mean.append(errors.rotation_mean_deg)
                rot_max.append(errors.rotation_max_deg)
                tdir.append(errors.translation_direction_mean_deg)
                ate.append(errors.ate / path if path > 0 else 0.0)
                if codec_name == "paper":
                    table_bits.append(codec.last_table_bits)
                    code_bits.append(codec.last_code_bits)
            elapsed = (time.perf_counter() - start) / len(trajectories) * 1000
            moving = np.isfinite(tdir)  # a pure rotation has no translation direction
            tdir_moving = np.array(tdir)[moving]
            tdir_mean, tdir_max = (tdir_moving.mean(), tdir_moving.max()) if moving.any() else (np.nan, np.nan)
            print(
                f"{name:40s} {codec_name:8s} {len(trajectories):4d} {np.mean(bits):9.0f} {max(bits):5d} "
                f"{sum(b > 500 for b in bits):4d} "
                f"{np.mean(rot_mean):9.4f} {max(rot_mean):10.4f} {max(rot_max):8.4f} {tdir_mean:9.3f} "
                f"{tdir_max:10.3f} {np.mean(ate):9.5f} {elapsed:7.1f}"
            )
            if codec_name == "paper":
                print(
                    f"{'':40s} {'':8s} paper bits split: intrinsics 64, scale+bias 384, Huffman table "
                    f"{np.mean(table_bits):.0f}, Huffman code words {np.mean(code_bits):.0f} (mean)"
                )
    print(">500: GoPs over 500 bits; rot mean: mean over trajectories of the per-trajectory mean rotation error (deg); worst traj: the "
          "largest per-trajectory mean; rot max: largest single-frame error; tdir: translation-direction error "
          "(deg); ATE/path: ATE after Sim(3) alignment divided by the path length.")


if __name__ == "__main__":
    main()
