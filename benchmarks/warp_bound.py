"""How far can any warp of the decoded intra picture go? An upper bound for the CPU generator.

Per DAVIS clip (paper protocol: 25 frames at 512x512), cpsgd is coded at ``--bpp`` and decoded;
then its decoded frame 0 is warped to every frame by the source's own dense optical flow (DIS,
frame t -> frame 0), motion no side channel could send at these rates. MS-SSIM of that warp
bounds what any better transport of the one picture could reach. Two more oracles say where the
decoded frames lose: the source's pixels pasted into the annotated foreground (dilated 4 px), or
into the background.

    python benchmarks/warp_bound.py [--bpp 0.003] [--davis ../shared/data/davis2016]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from cpsgd.bench.datasets import find_sources, load_sequence
from cpsgd.bench.metrics import ms_ssim
from cpsgd.pipeline import EncoderConfig, decode_bytes, encode_frames

CURVE = (0, 1, 2, 4, 8, 12, 16, 20, 24)  # frames whose own MS-SSIM is printed


def flow_warp(source: np.ndarray, picture: np.ndarray) -> np.ndarray:
    """``picture`` (frame 0's decoded pixels) moved to every frame by the source's dense flow."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in source]
    h, w = gray[0].shape
    xx, yy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    out = [picture]
    for frame in gray[1:]:
        flow = dis.calc(frame, gray[0], None)
        out.append(cv2.remap(picture, xx + flow[..., 0], yy + flow[..., 1], cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE))
    return np.stack(out)


def curve(source: np.ndarray, decoded: np.ndarray) -> str:
    return " ".join(f"{ms_ssim(source[i : i + 1], decoded[i : i + 1]):.2f}" for i in CURVE if i < len(source))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bpp", type=float, default=0.003)
    parser.add_argument("--davis", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016")
    args = parser.parse_args()
    if not args.davis.is_dir():
        raise SystemExit(f"no DAVIS data at {args.davis}")
    print(f"MS-SSIM at {args.bpp} BPP; per-frame curve at frames {', '.join(map(str, CURVE))}")
    print(f"{'clip':<16}{'cpsgd':>7}{'flow bound':>11}{'true fg':>9}{'true bg':>9}  curve: cpsgd | flow bound")
    rows = []
    for source in find_sources(args.davis):
        sequence = load_sequence(source)
        frames, masks = sequence.frames, sequence.masks
        config = EncoderConfig(bpp=args.bpp, pose_estimator="flow", segmenter="motion")
        decoded = decode_bytes(encode_frames(frames, sequence.fps, config))
        bound = flow_warp(frames, decoded[0])
        kernel = np.ones((9, 9), np.uint8)
        foreground = np.stack([cv2.dilate((m > 0).astype(np.uint8), kernel) > 0 for m in masks])[..., None]
        row = [
            ms_ssim(frames, decoded), ms_ssim(frames, bound),
            ms_ssim(frames, np.where(foreground, frames, decoded)), ms_ssim(frames, np.where(foreground, decoded, frames)),
        ]
        rows.append(row)
        print(f"{sequence.name:<16}" + "".join(f"{v:>{w}.3f}" for v, w in zip(row, (7, 11, 9, 9)))
              + f"  {curve(frames, decoded)} | {curve(frames, bound)}", flush=True)
    mean = np.mean(rows, axis=0)
    print(f"{'mean':<16}" + "".join(f"{v:>{w}.3f}" for v, w in zip(mean, (7, 11, 9, 9))))


if __name__ == "__main__":
    main()
