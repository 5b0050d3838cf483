"""Warp generator against hold (every frame = the intra frame) at a fixed intra size.

Synthetic scenes use their exact poses and masks; DAVIS clips use the annotation masks and a
trajectory from a registered pose estimator ("flow" by default) or, with ``--poses homography``,
a quick rotation-only trajectory from background homographies (computed here). Every variant
codes its intra image with the same AVIF byte budget: hold and "warp" code frame 0, "warp+mosaic"
codes the mosaic (with the strip of background hidden behind frame 0's objects when enough of it
was seen; then "warp+mosaic-nostrip" is the mosaic without that strip).

    python benchmarks/warp_generator.py [--synth pan,dolly,orbit,shake,static] [--davis DIR]
        [--intra-bytes 1200] [--size 512] [--frames 25] [--poses flow|homography]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from cpsgd.bench.metrics import ms_ssim, psnr
from cpsgd.generators.base import GopConditions
from cpsgd.generators.warp import WarpGenerator
from cpsgd.geometry import GEOMETRY_CODECS, MosaicConfig, build_mosaic, fit_geometry
from cpsgd.intra.budget import encode_intra
from cpsgd.masks.davis import davis_sequences, load_davis_clip
from cpsgd.poses import POSE_ESTIMATORS
from cpsgd.poses.geometry import nearest_rotation
from cpsgd.poses.trajectory import Intrinsics, Trajectory

DEFAULT_DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016"


def rotation_only_trajectory(frames: np.ndarray, masks: np.ndarray, focal: float = 1.0) -> Trajectory:
    """Fallback while no pose estimator is registered: R_i = K^-1 H_i K from background homographies."""
    n, h, w = frames.shape[:3]
    k = Intrinsics(focal, focal).matrix(w, h)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    w2c = np.tile(np.eye(4), (n, 1, 1))
    total = np.eye(3)
    for i in range(1, n):
        bg = np.where(cv2.dilate(masks[i - 1], np.ones((15, 15), np.uint8)) > 0, 0, 255).astype(np.uint8)
        pts = cv2.goodFeaturesToTrack(gray[i - 1], 800, 0.01, 7, mask=bg)
        nxt, st, _ = cv2.calcOpticalFlowPyrLK(gray[i - 1], gray[i], pts, None)
        good = st[:, 0] == 1
        hom, _ = cv2.findHomography(pts[good], nxt[good], cv2.RANSAC, 2.0)
        total = nearest_rotation(np.linalg.inv(k) @ hom @ k) @ total
        w2c[i, :3, :3] = total
    return Trajectory(Intrinsics(focal, focal), w2c)


def estimate_trajectory(frames: np.ndarray, masks: np.ndarray, estimator: str) -> Trajectory:
    if estimator == "homography":
        return rotation_only_trajectory(frames, masks)
    return POSE_ESTIMATORS.get(estimator)().estimate(frames, masks)


def evaluate(
    name: str, frames: np.ndarray, masks: np.ndarray, trajectory: Trajectory, intra_bytes: int
) -> None:
    n, h, w = frames.shape[:3]
    t0 = time.perf_counter()
    geometry = fit_geometry(frames, trajectory, masks)
    mosaic = build_mosaic(frames, trajectory, masks, geometry)
    encode_s = time.perf_counter() - t0
    codec = GEOMETRY_CODECS.get("grid8")()
    plain = encode_intra(frames[0], "avif", budget_bytes=intra_bytes)
    variants = [("warp", plain.decoded, geometry)]
    mosaics = [("warp+mosaic", mosaic)]
    if mosaic.layout.under:
        mosaics.append(
            (
                "warp+mosaic-nostrip",
                build_mosaic(frames, trajectory, masks, geometry, MosaicConfig(under=False)),
            )
        )
    for label, m in mosaics:
        variants.append(
            (
                label,
                encode_intra(m.image, "avif", budget_bytes=intra_bytes).decoded,
                geometry.with_layout(m.layout),
            )
        )
    shape = "x".join(map(str, geometry.inverse_depth.shape))
    print(
        f"{name:16s} grid {shape} (max {geometry.inverse_depth.max():.3g})  "
        f"mosaic {mosaic.image.shape[1]}x{mosaic.image.shape[0]}"
        f"{' with strip' if mosaic.layout.under else ''}  fit+mosaic {encode_s:.2f} s"
    )
    hold = np.repeat(plain.decoded[None], n, 0)
    print(f"    {'hold':20s} PSNR {psnr(frames, hold):6.2f} dB  MS-SSIM {ms_ssim(frames, hold):.4f}")
    generator = WarpGenerator()
    for label, intra, geo in variants:
        payload = codec.compress(geo)
        cond = GopConditions(
            n, h, w, intra, trajectory, masks, side_channels={"geometry": codec.decompress(payload)}
        )
        t0 = time.perf_counter()
        out = generator.generate(cond)
        dt = time.perf_counter() - t0
        print(
            f"    {label:20s} PSNR {psnr(frames, out):6.2f} dB  MS-SSIM {ms_ssim(frames, out):.4f}  "
            f"geometry {len(payload)} B  decode {dt:.2f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--synth", default="static,pan,dolly,orbit,shake")
    parser.add_argument("--objects", type=int, default=1)
    parser.add_argument("--davis", type=Path, default=DEFAULT_DAVIS)
    parser.add_argument("--intra-bytes", type=int, default=1200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--poses", default="flow", help="DAVIS poses: a registered estimator or 'homography'")
    args = parser.parse_args()
    print(f"intra budget {args.intra_bytes} bytes (AVIF), {args.frames} frames of {args.size}x{args.size}")
    if args.synth:
        from cpsgd.synth.scene import SceneConfig, make_scene

        for traj in args.synth.split(","):
            clip = make_scene(
                SceneConfig(
                    traj=traj, objects=args.objects, num_frames=args.frames, width=args.size, height=args.size
                )
            )
            evaluate(f"synth-{traj}", clip.frames, clip.masks, clip.trajectory, args.intra_bytes)
    if args.davis.is_dir():
        for seq in davis_sequences(args.davis):
            frames, masks = load_davis_clip(args.davis, seq, args.frames, args.size)
            trajectory = estimate_trajectory(frames, masks, args.poses)
            evaluate(f"{seq} ({args.poses})", frames, masks, trajectory, args.intra_bytes)
    else:
        print(f"DAVIS clips skipped: {args.davis} not found")


if __name__ == "__main__":
    main()
