"""What the object motion side channel buys: the encoder with and without it on the DAVIS clips.

    python benchmarks/object_motion.py [--bpp 0.0015,0.003] [--data ../shared/data]

Per clip and rate: BPP, the object motion section's bytes, PSNR and MS-SSIM of the decoded clip,
the time of the motion fit alone and of the whole encode; then the means. Paper protocol: first 25
frames, 512x512, default encoder otherwise (motion segmenter, rate control).
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np

from cpsgd.bench.datasets import load_dataset
from cpsgd.bench.metrics import ms_ssim
from cpsgd.bitstream.info import inspect_stream
from cpsgd.masks.base import SEGMENTERS
from cpsgd.objects import fit_object_motion
from cpsgd.pipeline import EncoderConfig, decode_bytes, encode_frames
from cpsgd.quality import psnr

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bpp", default="0.0015,0.003", help="comma-separated target rates")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    rates = [float(r) for r in args.bpp.split(",")]
    print(f"command: python benchmarks/object_motion.py --bpp {args.bpp} --data {args.data}")
    print(f"{'clip':16s} {'BPP':>7s} {'motion':>6s} {'bytes':>6s} {'PSNR':>6s} {'MS-SSIM':>7s} {'encode s':>8s}")
    table: dict[tuple[float, bool], list[tuple[float, float]]] = {}
    for sequence in load_dataset(args.data / "davis2016"):
        frames = sequence.frames
        start = time.perf_counter()
        fit_object_motion(frames, SEGMENTERS.get("motion")().segment(frames))
        print(f"{sequence.name:16s} motion fit (with segmentation): {time.perf_counter() - start:.2f} s")
        for rate in rates:
            for motion in (False, True):
                start = time.perf_counter()
                data = encode_frames(frames, sequence.fps, EncoderConfig(bpp=rate, object_motion=motion))
                seconds = time.perf_counter() - start
                decoded = decode_bytes(data)
                bits = inspect_stream(io.BytesIO(data)).bits
                quality = (psnr(frames, decoded), ms_ssim(frames, decoded))
                table.setdefault((rate, motion), []).append(quality)
                print(
                    f"{sequence.name:16s} {8 * len(data) / frames[..., 0].size:7.5f} {'yes' if motion else 'no':>6s} "
                    f"{bits['object_motion'] // 8:6d} {quality[0]:6.2f} {quality[1]:7.3f} {seconds:8.1f}",
                    flush=True,
                )
    print("mean over clips:")
    for (rate, motion), rows in table.items():
        mean = np.mean(rows, axis=0)
        print(f"  {rate:.4f} BPP, object motion {'yes' if motion else 'no ':3s}: PSNR {mean[0]:.2f}  MS-SSIM {mean[1]:.3f}")


if __name__ == "__main__":
    main()
