"""Mask video coding: bits per 25-frame GoP against DAVIS J/F, ours ("cabac") against x265.

Data: the DAVIS-2016 annotations in ../shared/data (paper protocol: first 25 frames, centre
crop, 512x512), the tennis clip's masks in ../shared/data/more (dilated object-removal regions,
coded as given), and synthetic scenes' exact masks at 512x512 (every camera motion, one or two
objects). For each downscale factor of the cabac codec (default tolerance) and for the J target
(`cpsgd masks compress`'s default, 0.92) it prints bits per GoP, J, F and coding times; then the
x265 baseline (the mask video as grey frames through PyAV/libx265, downscaled like ours and
upsampled the same way), at the x265 point with the best J that spends no more bits than our
default factor.

    python benchmarks/mask_codec.py [--data ../shared/data] [--no-synthetic] [--no-x265] [--j-target 0.92]
"""

from __future__ import annotations

import argparse
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from cpsgd.masks.codec import ContextMaskCodec, upscale_smooth
from cpsgd.masks.metrics import contour_accuracy, region_similarity

FACTORS = (1, 2, 4, 8, 10, 12, 16)
DEFAULT_FACTOR = ContextMaskCodec().factor
X265_SCALES = (4, 8, 12, 16)
X265_QPS = (20, 30, 38, 44, 51)


def load_clips(data: Path, synthetic: bool) -> dict[str, np.ndarray]:
    from cpsgd.masks.davis import davis_sequences, load_davis_clip

    clips = {}
    root = data / "davis2016"
    if root.is_dir():
        for name in davis_sequences(root):
            clips[name] = load_davis_clip(root, name)[1]
    tennis = data / "more" / "tennis" / "masks"
    if tennis.is_dir():
        from cpsgd.masks.io import read_mask_dir

        clips["more/tennis (dilated)"] = (read_mask_dir(tennis, size=512)[:25] > 0).astype(np.uint8)
    if synthetic:
        from cpsgd.synth import SceneConfig, make_scene
        from cpsgd.synth.trajectories import TRAJECTORIES

        for traj in TRAJECTORIES:
            for objects in (1, 2):
                scene = make_scene(SceneConfig(traj=traj, objects=objects, width=512, height=512, seed=0))
                clips[f"synth-{traj}-{objects}obj"] = scene.masks
    return clips


def x265_code(masks: np.ndarray, scale: int, qp: int) -> tuple[int, np.ndarray]:
    """Foreground as a grey video at 1/scale size through libx265 (GoP of 25, no SEI info);
    returns (bits of all packets, decoded binary masks at full size)."""
    h, w = masks.shape[1:]
    lh, lw = -(-h // scale), -(-w // scale)
    small = [cv2.resize((m > 0).astype(np.float32), (lw, lh), interpolation=cv2.INTER_AREA) for m in masks]
    encoder = av.CodecContext.create("libx265", "w")
    encoder.width, encoder.height, encoder.pix_fmt = lw, lh, "gray"
    encoder.time_base, encoder.framerate = Fraction(1, 25), Fraction(25)
    encoder.options = {"x265-params": f"qp={qp}:keyint=25:info=0:log-level=none", "preset": "medium"}
    packets = []
    for i, frame in enumerate(small):
        picture = av.VideoFrame.from_ndarray(np.round(frame * 255).astype(np.uint8), format="gray")
        picture.pts = i
        packets += encoder.encode(picture)
    packets += encoder.encode(None)
    decoder = av.CodecContext.create("hevc", "r")
    decoded = []
    for packet in [*packets, None]:
        decoded += [f.to_ndarray(format="gray") for f in decoder.decode(packet)]
    out = np.stack(
        [upscale_smooth((d >= 128).astype(np.uint8), h, w, scale) >= 0.5 for d in decoded]
    ).astype(np.uint8)
    return 8 * sum(p.size for p in packets), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--no-synthetic", action="store_true")
    parser.add_argument("--no-x265", action="store_true")
    parser.add_argument("--j-target", type=float, default=0.92)
    args = parser.parse_args()
    print(f"command: python benchmarks/mask_codec.py --data {args.data} --j-target {args.j_target}"
          + (" --no-synthetic" if args.no_synthetic else "") + (" --no-x265" if args.no_x265 else ""))
    clips = load_clips(args.data, not args.no_synthetic)
    if not clips:
        raise SystemExit(f"no DAVIS data under {args.data} and synthetic scenes disabled")

    print(f"cabac mask codec, tolerance {ContextMaskCodec().tolerance}; bits per 25-frame GoP at 512x512")
    print(f"{'sequence':24s} {'factor':>6s} {'bits':>7s} {'bpp':>9s} {'J':>6s} {'Jmin':>6s} {'F':>6s} {'enc s':>6s} {'dec s':>6s}")
    summary: dict[int, list[tuple[float, float, float]]] = {f: [] for f in FACTORS}
    ours_default = {}
    ours_points: dict[str, list[tuple[int, float, int]]] = {}
    for name, masks in clips.items():
        for factor in FACTORS:
            codec = ContextMaskCodec(factor=factor)
            t0 = time.perf_counter()
            data = codec.compress(masks)
            t1 = time.perf_counter()
            decoded = ContextMaskCodec().decompress(data, *masks.shape)
            t2 = time.perf_counter()
            if factor == 1 and not np.array_equal(decoded, masks):
                raise SystemExit(f"{name}: lossless round trip failed")
            j = region_similarity(decoded, masks)
            f = contour_accuracy(decoded, masks)
            bits = 8 * len(data)
            summary[factor].append((bits, j.mean(), f.mean()))
            ours_points.setdefault(name, []).append((bits, j.mean(), factor))
            if factor == DEFAULT_FACTOR:
                ours_default[name] = (bits, j.mean())
            print(
                f"{name:24s} {factor:6d} {bits:7d} {bits / masks.size:9.2e} {j.mean():6.3f} {j.min():6.3f} "
                f"{f.mean():6.3f} {t1 - t0:6.2f} {t2 - t1:6.2f}"
            )
    print(f"\nJ target {args.j_target} (factor and tolerance chosen per GoP)")
    targeted = []
    for name, masks in clips.items():
        t0 = time.perf_counter()
        data = ContextMaskCodec(j_target=args.j_target).compress(masks)
        elapsed = time.perf_counter() - t0
        decoded = ContextMaskCodec().decompress(data, *masks.shape)
        j, f = region_similarity(decoded, masks), contour_accuracy(decoded, masks)
        targeted.append((name, 8 * len(data), j.mean()))
        print(f"{name:24s} {data[0]:6d} {8 * len(data):7d} {8 * len(data) / masks.size:9.2e} {j.mean():6.3f} "
              f"{j.min():6.3f} {f.mean():6.3f} {elapsed:6.2f}")
    for label, rows in (("DAVIS", [r for r in targeted if "/" not in r[0] and not r[0].startswith("synth")]),
                        ("all clips", targeted)):
        if rows:
            print(f"J target, {label}: mean {np.mean([r[1] for r in rows]):.0f} bits/GoP (max {max(r[1] for r in rows)}), "
                  f"mean J {np.mean([r[2] for r in rows]):.3f}, worst clip {min(r[2] for r in rows):.3f}")

    print("\nmean over sequences")
    for factor, rows in summary.items():
        bits, j, f = np.mean(rows, axis=0)
        marker = "  <- default" if factor == DEFAULT_FACTOR else ""
        print(f"factor {factor:3d}: {bits:8.0f} bits/GoP  J {j:.3f}  F {f:.3f}{marker}")

    if args.no_x265:
        return
    print(f"\nx265 baseline (scales {X265_SCALES}, QPs {X265_QPS}) at matched bits")
    print("A: best x265 J within the bits of our default; B: x265's cheapest point against our best J")
    print("within the same bits (x265 spends about 15 bytes a frame even on an unchanged picture).")
    print(f"{'sequence':24s} {'ours bits':>9s} {'ours J':>7s} {'A: x265 J':>10s} | {'x265 bits':>9s} {'x265 J':>7s} {'setting':>12s} {'ours J':>7s} {'factor':>6s}")
    for name, masks in clips.items():
        our_bits, our_j = ours_default[name]
        points = []
        for scale in X265_SCALES:
            for qp in X265_QPS:
                bits, decoded = x265_code(masks, scale, qp)
                points.append((bits, region_similarity(decoded, masks).mean(), f"1/{scale} qp{qp}"))
        within = [p for p in points if p[0] <= our_bits]
        matched = f"{max(p[1] for p in within):10.3f}" if within else f"{'none fits':>10s}"
        cheap_bits, cheap_j, setting = min(points)
        ours_within = [p for p in ours_points[name] if p[0] <= cheap_bits]
        ours_j, ours_factor = max((p[1], p[2]) for p in ours_within) if ours_within else (float("nan"), 0)
        print(
            f"{name:24s} {our_bits:9d} {our_j:7.3f} {matched} | {cheap_bits:9d} {cheap_j:7.3f} {setting:>12s} "
            f"{ours_j:7.3f} {ours_factor:6d}"
        )


if __name__ == "__main__":
    main()
