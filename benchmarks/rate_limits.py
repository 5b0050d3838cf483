"""Where `--bpp` cannot be met: the floor (fixed costs) and the ceiling (every option saturated).

Codes a DAVIS clip (paper protocol) at the lowest and highest rates the encoder accepts and a tiny
synthetic clip at a normal rate, and prints the rate reached, the bytes of each part and the
warning `cpsgd encode` prints.

    python benchmarks/rate_limits.py [--clip blackswan] [--size 512] [--frames 25]
"""

from __future__ import annotations

import argparse
import io
from fractions import Fraction
from pathlib import Path

import numpy as np

from cpsgd.masks.davis import load_davis_clip
from cpsgd.pipeline import EncoderConfig
from cpsgd.pipeline.encoder import encode_gops
from cpsgd.synth import SceneConfig, make_scene

DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016"


def run(name: str, frames: np.ndarray, fps: float, bpp: float) -> None:
    report = encode_gops(
        [frames], io.BytesIO(), frames.shape[2], frames.shape[1], Fraction(fps).limit_denominator(1001),
        EncoderConfig(bpp=bpp),
    )
    parts = " | ".join(f"{g.mode} {g.section_bytes}" for g in report.gops)
    print(f"{name} ({frames.shape[2]}x{frames.shape[1]}, {len(frames)} frames) --bpp {bpp:g}: reached "
          f"{report.bpp:.5f} BPP, {report.total_bytes} bytes\n    {parts}\n    warning: {report.missed_rate(bpp)}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", default="blackswan")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=25)
    args = parser.parse_args()
    tiny = make_scene(SceneConfig(traj="pan", objects=1, num_frames=4, width=32, height=32, seed=1))
    run("synthetic pan", tiny.frames, tiny.fps, 0.003)
    if not DAVIS.is_dir():
        print(f"DAVIS clips not found at {DAVIS}: skipped")
        return
    frames, _ = load_davis_clip(DAVIS, args.clip, args.frames, args.size)
    for bpp in (0.00001, 8.0):
        run(args.clip, frames, 24.0, bpp)


if __name__ == "__main__":
    main()
