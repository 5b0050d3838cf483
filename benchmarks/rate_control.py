"""Rate control and adaptive GoPs on the DAVIS clips (paper protocol) and a synthetic scene cut.

For each clip and target: the achieved rate against the target, the split the rate control chose
(picture, mask factor, bytes per part), the GoPs and why each ended, PSNR / MS-SSIM of the warp
decoder's output, and the encode (estimation included) and decode times per GoP. The synthetic
case concatenates two scenes: a new GoP must start at the cut.

    python benchmarks/rate_control.py [--davis DIR] [--bpp 0.0005,0.0015,0.003] [--size 512]
        [--frames 25] [--sequences blackswan,dog]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from cpsgd.bench.metrics import ms_ssim, psnr
from cpsgd.masks.davis import davis_sequences, load_davis_clip
from cpsgd.pipeline import EncoderConfig, decode_bytes
from cpsgd.pipeline.encoder import EncodeReport, encode_gops
from cpsgd.synth import SceneConfig, make_scene

DEFAULT_DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016"


def encode(frames: np.ndarray, fps: float, config: EncoderConfig) -> tuple[bytes, EncodeReport, float]:
    import io
    from fractions import Fraction

    out = io.BytesIO()
    start = time.perf_counter()
    report = encode_gops([frames], out, frames.shape[2], frames.shape[1], Fraction(fps).limit_denominator(1001), config)
    return out.getvalue(), report, time.perf_counter() - start


def describe(report: EncodeReport) -> str:
    return " | ".join(
        f"{g.num_frames}f {g.picture} masks={g.mask_factor or '-'} q{g.intra_quality} /{g.intra_scale:.2f} "
        f"{g.section_bytes} ({g.ended_by})"
        for g in report.gops
    )


def run_clip(name: str, frames: np.ndarray, fps: float, targets: list[float]) -> list[dict]:
    rows = []
    for bpp in targets:
        data, report, seconds = encode(frames, fps, EncoderConfig(bpp=bpp))
        start = time.perf_counter()
        decoded = decode_bytes(data)
        decode_seconds = time.perf_counter() - start
        row = {
            "clip": name, "target": bpp, "bpp": report.bpp, "psnr": psnr(frames, decoded), "ms_ssim": ms_ssim(frames, decoded),
            "enc": seconds / len(report.gops), "dec": decode_seconds / len(report.gops),
        }
        rows.append(row)
        print(
            f"{name:15s} target {bpp:.4f} got {row['bpp']:.5f} ({100 * (row['bpp'] / bpp - 1):+.1f}%) "
            f"PSNR {row['psnr']:.2f} MS-SSIM {row['ms_ssim']:.3f} encode {row['enc']:.1f} s/GoP "
            f"decode {row['dec']:.2f} s/GoP\n    {describe(report)}",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--davis", type=Path, default=DEFAULT_DAVIS)
    parser.add_argument("--bpp", default="0.0005,0.0015,0.003")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--sequences", default="", help="comma-separated (default: all)")
    args = parser.parse_args()
    targets = [float(v) for v in args.bpp.split(",")]

    a = make_scene(SceneConfig(traj="pan", objects=1, num_frames=12, width=256, height=256, seed=1))
    b = make_scene(SceneConfig(traj="orbit", objects=1, num_frames=12, width=256, height=256, seed=7))
    cut = np.concatenate([a.frames, b.frames])
    _, report, seconds = encode(cut, 25.0, EncoderConfig(bpp=0.003))
    print(f"synthetic scene cut at frame 12: GoPs {[g.num_frames for g in report.gops]} "
          f"{[g.ended_by for g in report.gops]} ({seconds:.1f} s)\n", flush=True)

    if not args.davis.is_dir():
        print(f"DAVIS clips not found at {args.davis}: skipped")
        return
    names = [n for n in args.sequences.split(",") if n] or davis_sequences(args.davis)
    rows = []
    for name in names:
        frames, _ = load_davis_clip(args.davis, name, args.frames, args.size)
        rows.extend(run_clip(name, frames, 24.0, targets))
    print("\nmean over clips")
    for bpp in targets:
        sel = [r for r in rows if r["target"] == bpp]
        mean = {k: float(np.mean([r[k] for r in sel])) for k in ("bpp", "psnr", "ms_ssim", "enc", "dec")}
        print(
            f"  target {bpp:.4f}: got {mean['bpp']:.5f} ({100 * (mean['bpp'] / bpp - 1):+.1f}%) PSNR {mean['psnr']:.2f} "
            f"MS-SSIM {mean['ms_ssim']:.3f} encode {mean['enc']:.1f} s/GoP (max {max(r['enc'] for r in sel):.1f}) "
            f"decode {mean['dec']:.2f} s/GoP (max {max(r['dec'] for r in sel):.2f})"
        )


if __name__ == "__main__":
    main()
