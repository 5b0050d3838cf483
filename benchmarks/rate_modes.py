"""cpsgd's warp and inter modes against SVT-AV1's front of achieved encodes, per clip and rate.

For each clip (the DAVIS clips and the folders of ``more/``, paper protocol: 25 frames, 512x512)
the SVT-AV1 anchor (``cpsgd.bench.anchors``, preset 4) is coded over a dense ladder (five encoded
sizes, CRF 40-63 and constant qp 63); its front per metric is the upper hull of the points, read
at the rate cpsgd achieved (log-rate interpolation, ``cpsgd.bench.hull``). cpsgd is coded with
default settings at each target. Metrics: PSNR (RGB), MS-SSIM on luma and on RGB (mean of the
three planes), and with ``--vmaf`` VMAF (20 s a clip here: for the anchors only on the points of
the RGB MS-SSIM front between 0.0008 and 0.04 BPP). Anchor figures are cached in ``--cache`` so
that reruns code only cpsgd. Each row says which mode each GoP took and the bytes of each part;
the last lines check that quality rises with the target on every clip.

    python benchmarks/rate_modes.py [--bpp 0.0015,0.003,0.005,0.01,0.02] [--clips blackswan,tennis]
        [--vmaf] [--cache /tmp/rate-modes] [--strips DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from cpsgd.bench.anchors import AnchorSetting, encode_decode
from cpsgd.bench.hull import quality_at, rd_hull
from cpsgd.bench.metrics import ms_ssim, ms_ssim_rgb, psnr, vmaf
from cpsgd.masks.davis import davis_sequences, load_davis_clip
from cpsgd.pipeline import EncoderConfig, decode_bytes
from cpsgd.pipeline.encoder import encode_gops
from cpsgd.video import open_video

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LADDER = [("crf", v) for v in (40, 45, 50, 55, 59, 63)] + [("qp", 63)]
SCALES = (512, 384, 256, 192, 128)
VMAF_RANGE = (0.0008, 0.04)
METRICS = ("psnr", "ms_ssim", "rgb_ms_ssim")


def clips(names: set[str] | None, frames: int, size: int) -> list[tuple[str, np.ndarray, float]]:
    found = []
    davis = DATA / "davis2016"
    if davis.is_dir():
        for name in davis_sequences(davis):
            if names is None or name in names:
                found.append((name, load_davis_clip(davis, name, frames, size)[0], 24.0))
    for folder in sorted((DATA / "more").glob("*/frames")):
        name = folder.parent.name
        if names is None or name in names:
            video = open_video(folder, size, frames)
            found.append((name, video.read_all(), float(video.fps)))
    return found


def scores(reference: np.ndarray, decoded: np.ndarray) -> dict[str, float]:
    return {
        "psnr": psnr(reference, decoded), "ms_ssim": ms_ssim(reference, decoded),
        "rgb_ms_ssim": ms_ssim_rgb(reference, decoded),
    }


def anchor_points(name: str, frames: np.ndarray, fps: float, cache: Path, with_vmaf: bool) -> list[dict]:
    path = cache / f"{name}-{frames.shape[0]}x{frames.shape[1]}.json"
    points = json.loads(path.read_text()) if path.exists() else []
    if not points:
        for scale in SCALES:
            for rc, value in LADDER:
                result = encode_decode(frames, fps, AnchorSetting("svtav1", scale, rc, value))
                bpp = result.bits / frames[..., 0].size
                points.append({"scale": scale, "rc": rc, "value": value, "bpp": bpp, **scores(frames, result.frames)})
        path.write_text(json.dumps(points))
    if with_vmaf and any("vmaf" not in p for p in front_points(points)):
        for point in front_points(points):
            if "vmaf" not in point:
                setting = AnchorSetting("svtav1", point["scale"], point["rc"], point["value"])
                decoded = encode_decode(frames, fps, setting).frames
                point["vmaf"] = vmaf(frames, decoded)
        path.write_text(json.dumps(points))
    return points


def front_points(points: list[dict]) -> list[dict]:
    """The anchor points on the RGB MS-SSIM front within the VMAF range (VMAF is scored there)."""
    front = {bpp for bpp, _ in rd_hull((p["bpp"], p["rgb_ms_ssim"]) for p in points)}
    return [p for p in points if p["bpp"] in front and VMAF_RANGE[0] <= p["bpp"] <= VMAF_RANGE[1]]


def save_strip(path: Path, frames: np.ndarray, decoded: np.ndarray, picks: tuple[int, ...] = (0, 12, 24)) -> None:
    """Source over decoded, at frames ``picks``."""
    picks = tuple(i for i in picks if i < len(frames))
    rows = [np.concatenate([frames[i] for i in picks], axis=1), np.concatenate([decoded[i] for i in picks], axis=1)]
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows), cv2.COLOR_RGB2BGR))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bpp", default="0.0015,0.003,0.005,0.01,0.02")
    parser.add_argument("--clips", default="", help="comma-separated names (default: every clip found)")
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--vmaf", action="store_true")
    parser.add_argument("--anchors-only", action="store_true", help="fill the anchor cache and stop")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/rate-modes"))
    parser.add_argument("--strips", type=Path, default=None, help="write source/decoded PNG strips here")
    args = parser.parse_args()
    targets = [float(v) for v in args.bpp.split(",")]
    names = {n for n in args.clips.split(",") if n} or None
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.strips:
        args.strips.mkdir(parents=True, exist_ok=True)
    metrics = METRICS + (("vmaf",) if args.vmaf else ())
    rows = []
    for name, frames, fps in clips(names, args.frames, args.size):
        points = anchor_points(name, frames, fps, args.cache, args.vmaf)
        if args.anchors_only:
            print(f"{name}: {len(points)} anchor points cached", flush=True)
            continue
        for bpp in targets:
            start, cpu = time.perf_counter(), time.process_time()
            out = io.BytesIO()
            report = encode_gops(
                [frames], out, frames.shape[2], frames.shape[1], Fraction(fps).limit_denominator(1001),
                EncoderConfig(bpp=bpp),
            )
            encode_s, encode_cpu = time.perf_counter() - start, time.process_time() - cpu
            start, cpu = time.perf_counter(), time.process_time()
            decoded = decode_bytes(out.getvalue())
            decode_s, decode_cpu = time.perf_counter() - start, time.process_time() - cpu
            row = {"clip": name, "target": bpp, "bpp": report.bpp, **scores(frames, decoded),
                   "enc": encode_s / len(report.gops), "dec": decode_s / len(report.gops),
                   "enc_cpu": encode_cpu / len(report.gops), "dec_cpu": decode_cpu / len(report.gops)}
            if args.vmaf:
                row["vmaf"] = vmaf(frames, decoded)
            anchor = {}
            for metric in metrics:
                hull = rd_hull((p["bpp"], p[metric]) for p in points if metric in p)
                anchor[metric] = quality_at(hull, row["bpp"])
            row["anchor"] = anchor
            rows.append(row)
            modes = " ".join(f"{g.num_frames}f:{g.mode}{g.section_bytes}" for g in report.gops)
            versus = "  ".join(
                f"{m} {row[m]:.4f}/{'-' if anchor[m] is None else f'{anchor[m]:.4f}'}" for m in metrics
            )
            print(f"{name:14s} target {bpp:.4f} got {row['bpp']:.5f}  {versus}  enc {row['enc']:.1f} s/GoP "
                  f"({row['enc_cpu']:.1f} CPU) dec {row['dec']:.2f} s/GoP ({row['dec_cpu']:.2f} CPU)\n    {modes}",
                  flush=True)
            if args.strips:
                save_strip(args.strips / f"{name}-{bpp:g}.png", frames, decoded)
    if not rows:
        return
    print("\nmean over clips (cpsgd / SVT-AV1 front at cpsgd's rate; clips where the anchor is unreachable left out of its mean)")
    for bpp in targets:
        sel = [r for r in rows if r["target"] == bpp]
        parts = []
        for metric in metrics:
            paired = [(r[metric], r["anchor"][metric]) for r in sel if r["anchor"][metric] is not None]
            mine = np.mean([r[metric] for r in sel])
            theirs = f"{np.mean([a for _, a in paired]):.4f} ({len(paired)} clips, cpsgd {np.mean([c for c, _ in paired]):.4f})" if paired else "-"
            parts.append(f"{metric} {mine:.4f} / {theirs}")
        print(f"  target {bpp:.4f}: got {np.mean([r['bpp'] for r in sel]):.5f}  " + "  ".join(parts)
              + f"  enc max {max(r['enc'] for r in sel):.1f} s/GoP ({max(r['enc_cpu'] for r in sel):.1f} CPU), "
              f"dec max {max(r['dec'] for r in sel):.2f} s/GoP ({max(r['dec_cpu'] for r in sel):.2f} CPU)")
    falls = []
    for name in dict.fromkeys(r["clip"] for r in rows):
        ladder = sorted((r for r in rows if r["clip"] == name), key=lambda r: r["target"])
        for metric in ("rgb_ms_ssim", "ms_ssim") + (("vmaf",) if args.vmaf else ()):
            values = [r[metric] for r in ladder]
            if any(b < a for a, b in zip(values, values[1:])):
                falls.append(f"{name} {metric} {[round(v, 4) for v in values]}")
    print("monotone in the target on every clip" if not falls else "falls as the target rises:\n  " + "\n  ".join(falls))


if __name__ == "__main__":
    main()
