"""Accuracy and speed of the "flow" pose estimator: synthetic scenes against their exact poses,
and plausibility on the DAVIS clips (breakdance's camera is static).

    python benchmarks/pose_estimation.py [--size 512] [--seeds 1] [--data ../shared/data] [--no-davis]
        [--kinds static,pan,dolly,orbit,shake] [--fovs 60,45,75,90]

Synthetic scenes: every trajectory kind, without objects and with two moving objects (with their
masks given to the estimator, as the pipeline does, and without them), at the estimator's prior
field of view (60 degrees) and at 45, 75 and 90 degrees (so that the focal length must come from
the tracks, except in forward motions, where it is held at the prior). Real clips: the four DAVIS
ones (with and without their annotations) and ../shared/data/more (tennis with its dilated masks,
bedroom and lady-running without): no exact poses there, so the final rotation, the focal length
and whether the camera came out static are printed as plausibility checks.
Timings are wall-clock and CPU (this process) seconds per 25-frame GoP; other processes share the
machine, so the load average is printed at the start and the end: on a busy machine the CPU times
are closer to what an idle one would take.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from cpsgd.poses import POSE_ESTIMATORS
from cpsgd.poses.metrics import pose_errors, rotation_errors_deg
from cpsgd.synth import SceneConfig, make_scene
from cpsgd.synth.trajectories import TRAJECTORIES

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def synthetic(size: int, seeds: int, kinds: list[str], fovs: list[float]) -> None:
    estimator = POSE_ESTIMATORS.get("flow")()
    print(f"{'scene':34s} {'rot med':>8s} {'rot max':>8s} {'tdir':>7s} {'focal err':>9s} {'static?':>7s} {'s/GoP':>6s} {'cpu s':>6s}")
    medians, unmasked, focal_errors, times, cpu_times = [], [], [], [], []
    per_kind: dict[str, list[float]] = {}
    for fov in fovs:
        for kind in kinds:
            for objects, use_masks in ((0, False), (2, True), (2, False)):
                for seed in range(seeds):
                    clip = make_scene(
                        SceneConfig(traj=kind, objects=objects, width=size, height=size, seed=seed, fov_deg=fov)
                    )
                    start, cpu_start = time.perf_counter(), time.process_time()
                    estimate = estimator.estimate(clip.frames, clip.masks if use_masks else None)
                    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
                    errors = pose_errors(estimate, clip.trajectory)
                    is_static = np.allclose(estimate.world_to_camera, np.eye(4))
                    label = f"{kind} fov{fov:.0f} obj{objects}{' masked' if use_masks else ''} s{seed}"
                    print(
                        f"{label:34s} {errors.rotation_median_deg:8.3f} {errors.rotation_max_deg:8.3f} "
                        f"{errors.translation_direction_mean_deg:7.2f} {100 * errors.focal_error:8.1f}% "
                        f"{'yes' if is_static else 'no':>7s} {elapsed:6.2f} {cpu:6.2f}"
                    )
                    times.append(elapsed)
                    cpu_times.append(cpu)
                    per_kind.setdefault(f"{kind} fov{fov:.0f}", []).append(errors.rotation_median_deg)
                    if objects == 0 or use_masks:
                        medians.append(errors.rotation_median_deg)
                        # The focal length cannot be seen without motion or in a pure forward motion.
                        if kind not in ("static", "dolly"):
                            focal_errors.append(errors.focal_error)
                    else:
                        unmasked.append(errors.rotation_median_deg)
    for name, values in per_kind.items():
        print(f"worst median rotation error, {name} (all objects and masks): {max(values):.3f} deg")
    print(
        f"summary without objects or with masks: median rotation error {np.median(medians):.3f} deg (worst scene "
        f"{max(medians):.3f}), focal error (pan, orbit, shake) median {100 * np.median(focal_errors or [0]):.1f}% (worst "
        f"{100 * max(focal_errors, default=0):.1f}%); time per {size}x{size} GoP median {np.median(times):.2f} s, "
        f"max {max(times):.2f} s (CPU median {np.median(cpu_times):.2f} s, max {max(cpu_times):.2f} s)"
    )
    print(
        f"summary with unmasked moving objects (robustness): median rotation error {np.median(unmasked or [0]):.3f} deg, "
        f"{sum(e >= 0.5 for e in unmasked)} of {len(unmasked)} scenes at 0.5 deg or more (worst {max(unmasked, default=0):.3f})"
    )


def davis(data: Path, size: int) -> None:
    from cpsgd.video import open_video

    estimator = POSE_ESTIMATORS.get("flow")()
    root = data / "davis2016"
    print(f"{'DAVIS clip (first 25 frames)':34s} {'masks':>5s} {'final rot':>9s} {'max t':>6s} {'fx':>6s} {'static?':>7s} {'s/GoP':>6s} {'cpu s':>6s}")
    for sequence in ("breakdance", "blackswan", "car-roundabout", "dog"):
        frames = np.stack(list(open_video(root / "JPEGImages" / sequence, size=size, max_frames=25).iter_frames()))
        masks = np.stack(
            [m[:, :, 0] > 127 for m in open_video(root / "Annotations" / sequence, size=size, max_frames=25).iter_frames()]
        ).astype(np.uint8)
        estimates = []
        for fg in (None, masks):
            start, cpu_start = time.perf_counter(), time.process_time()
            estimate = estimator.estimate(frames, fg)
            estimates.append(estimate)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            angle = np.degrees(np.linalg.norm(Rotation.from_matrix(estimate.rotations[-1]).as_rotvec()))
            is_static = np.allclose(estimate.world_to_camera, np.eye(4))
            print(
                f"{sequence:34s} {'yes' if fg is not None else 'no':>5s} {angle:8.2f}d "
                f"{np.abs(estimate.translations).max():6.3f} {estimate.intrinsics.fx:6.3f} "
                f"{'yes' if is_static else 'no':>7s} {elapsed:6.2f} {cpu:6.2f}"
            )
        # `cpsgd bench`'s pose fidelity compares an estimate with the annotations on the source
        # with one without masks on the decoded clip: this is its value for a lossless codec.
        disagreement = np.mean(rotation_errors_deg(estimates[0], estimates[1]))
        print(f"{sequence:34s} without vs with masks: mean rotation error {disagreement:.2f} deg")


def more_clips(data: Path, size: int) -> None:
    """../shared/data/more: tennis with its (dilated) masks, the others without."""
    from cpsgd.masks.io import read_mask_dir
    from cpsgd.video import open_video

    estimator = POSE_ESTIMATORS.get("flow")()
    print(
        f"{'more/ clip (first 25 frames)':34s} {'masks':>5s} {'final rot':>9s} {'max t':>6s} {'fx':>6s} "
        f"{'static?':>7s} {'s/GoP':>6s}"
    )
    for clip in ("tennis", "bedroom", "lady-running"):
        folder = data / "more" / clip
        if not (folder / "frames").is_dir():
            continue
        frames = np.stack(list(open_video(folder / "frames", size=size, max_frames=25).iter_frames()))
        masks = None
        if (folder / "masks").is_dir():
            masks = (read_mask_dir(folder / "masks", size=size)[: len(frames)] > 0).astype(np.uint8)
        start = time.perf_counter()
        estimate = estimator.estimate(frames, masks)
        angle = np.degrees(np.linalg.norm(Rotation.from_matrix(estimate.rotations[-1]).as_rotvec()))
        print(
            f"{clip:34s} {'yes' if masks is not None else 'no':>5s} {angle:8.2f}d {np.abs(estimate.translations).max():6.3f} "
            f"{estimate.intrinsics.fx:6.3f} {'yes' if np.allclose(estimate.world_to_camera, np.eye(4)) else 'no':>7s} "
            f"{time.perf_counter() - start:6.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--no-davis", action="store_true", help="no real clips (DAVIS, more/)")
    parser.add_argument("--kinds", default=",".join(TRAJECTORIES))
    parser.add_argument("--fovs", default="60,45,75,90")
    args = parser.parse_args()
    print(f"command: python benchmarks/pose_estimation.py --size {args.size} --seeds {args.seeds} --data {args.data}"
          f" --kinds {args.kinds} --fovs {args.fovs}" + (" --no-davis" if args.no_davis else ""))
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    synthetic(args.size, args.seeds, args.kinds.split(","), [float(f) for f in args.fovs.split(",")])
    if not args.no_davis and (args.data / "davis2016").is_dir():
        davis(args.data, args.size)
    if not args.no_davis and (args.data / "more").is_dir():
        more_clips(args.data, args.size)
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
