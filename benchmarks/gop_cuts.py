"""What drift cuts trade: the encoder at several ``--drift-db`` values on the DAVIS clips.

    python benchmarks/gop_cuts.py [--bpp 0.003] [--drift 6,1] [--data ../shared/data]

Per clip and setting: GoP lengths, encode time, and the bench's metrics (PSNR, MS-SSIM, VMAF, pose
error of the decoded clip against the source, J of its re-segmentation), then the means. Paper
protocol: first 25 frames, 512x512.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from cpsgd.bench.datasets import load_dataset
from cpsgd.bench.metrics import ms_ssim, vmaf
from cpsgd.bench.semantic import SemanticReference
from cpsgd.bitstream.container import BitstreamReader
from cpsgd.pipeline import EncoderConfig, decode_bytes, encode_frames
from cpsgd.quality import psnr

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
COLUMNS = ("psnr", "ms_ssim", "vmaf", "rot_err_deg", "mask_j", "encode_s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bpp", type=float, default=0.003)
    parser.add_argument("--drift", default="6,1", help="comma-separated --drift-db values")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    drifts = [float(d) for d in args.drift.split(",")]
    print(f"{'clip':16s} {'drift':>5s} {'GoPs':10s} {'BPP':>8s} " + " ".join(f"{c:>11s}" for c in COLUMNS))
    table: dict[float, list[list[float]]] = {d: [] for d in drifts}
    for sequence in load_dataset(args.data / "davis2016"):
        reference = SemanticReference.of(sequence.frames, sequence.masks)
        for drift in drifts:
            start = time.perf_counter()
            data = encode_frames(sequence.frames, sequence.fps, EncoderConfig(bpp=args.bpp, drift_db=drift))
            seconds = time.perf_counter() - start
            decoded = decode_bytes(data)
            gops = [g.num_frames for g in BitstreamReader.from_bytes(data).gops()]
            scores = {
                "psnr": psnr(sequence.frames, decoded), "ms_ssim": ms_ssim(sequence.frames, decoded),
                "vmaf": vmaf(sequence.frames, decoded), **reference.scores(decoded), "encode_s": seconds,
            }
            row = [scores[c] for c in COLUMNS]
            table[drift].append(row)
            bpp = 8 * len(data) / sequence.frames[..., 0].size
            print(f"{sequence.name:16s} {drift:5g} {','.join(map(str, gops)):10s} {bpp:8.5f} "
                  + " ".join(f"{v:11.3f}" for v in row), flush=True)
    for drift, rows in table.items():
        print(f"{'mean':16s} {drift:5g} {'':10s} {'':8s} " + " ".join(f"{v:11.3f}" for v in np.mean(rows, axis=0)))


if __name__ == "__main__":
    main()
