"""Encode and decode time of one 25-frame 512x512 GoP (synthetic pan scene, default settings).

    python benchmarks/codec_speed.py [--repeats 3] [--generator warp]
"""

from __future__ import annotations

import argparse
import time

from cpsgd.pipeline import EncoderConfig, decode_bytes, encode_frames
from cpsgd.synth import SceneConfig, make_scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--generator", default="warp")
    parser.add_argument("--bpp", type=float, default=0.003)
    args = parser.parse_args()
    clip = make_scene(SceneConfig(traj="pan", objects=1, num_frames=25, width=512, height=512))
    config = EncoderConfig(bpp=args.bpp)
    encode_times, decode_times = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        data = encode_frames(clip.frames, clip.fps, config)
        encode_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        decode_bytes(data, args.generator)
        decode_times.append(time.perf_counter() - start)
    print(f"25 frames 512x512, target {args.bpp} BPP, {len(data)} bytes ({8 * len(data) / (512 * 512 * 25):.5f} BPP)")
    print(f"encode: best {min(encode_times):.2f} s, median {sorted(encode_times)[len(encode_times) // 2]:.2f} s")
    print(f"decode ({args.generator}): best {min(decode_times):.2f} s, median {sorted(decode_times)[len(decode_times) // 2]:.2f} s")


if __name__ == "__main__":
    main()
