"""Peak memory (max RSS) of `cpsgd encode` and `cpsgd decode` as the video gets longer.

Writes 1280x720 H.264 clips of increasing length (a photograph panning), then runs the CLI on each
in a fresh process and reads the child's peak resident memory.

    python benchmarks/memory_long_clip.py [--frames 100,300] [--workdir /tmp/cpsgd-mem] [--encode-args "..."]

``--encode-args`` passes options to `cpsgd encode` (e.g. "--pose-estimator none --segmenter none
--intra-quality 20" to measure the streaming itself on very long clips in little time).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import skimage.data

from cpsgd.video import open_writer


def make_clip(path: Path, frames: int) -> None:
    photo = cv2.resize(skimage.data.astronaut(), (1280 + 2 * frames, 720))
    writer = open_writer(path, Fraction(25), force=True)
    for i in range(frames):
        writer.write(np.ascontiguousarray(photo[:, 2 * i : 2 * i + 1280]))
    writer.close()


def peak_rss_mb(command: list[str]) -> tuple[float, float]:
    """Run ``command`` in a fresh process: (peak RSS in MB, seconds)."""
    script = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script, *command], check=True, capture_output=True, text=True)
    return int(out.stdout.split()[-1]) / 1024, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", default="100,300")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cpsgd-mem"))
    parser.add_argument("--encode-args", default="", help="extra options for cpsgd encode")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    cpsgd = [sys.executable, "-m", "cpsgd.cli"]
    print(f"cpsgd encode options: {args.encode_args or '(defaults)'}")
    print(f"{'frames':>7}{'encode MB':>11}{'encode s':>10}{'decode MB':>11}{'decode s':>10}")
    for count in (int(n) for n in args.frames.split(",")):
        clip = args.workdir / f"clip{count}.mp4"
        stream = args.workdir / f"clip{count}.cpsgd"
        make_clip(clip, count)
        encode = [*cpsgd, "encode", str(clip), "-o", str(stream), "--force", "-q", *shlex.split(args.encode_args)]
        enc_mb, enc_s = peak_rss_mb(encode)
        dec_mb, dec_s = peak_rss_mb([*cpsgd, "decode", str(stream), "-o", str(args.workdir / f"out{count}.mp4"), "--force", "-q"])
        print(f"{count:>7}{enc_mb:>11.0f}{enc_s:>10.1f}{dec_mb:>11.0f}{dec_s:>10.1f}")


if __name__ == "__main__":
    main()
