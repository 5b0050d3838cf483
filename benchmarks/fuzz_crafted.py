"""Structure-aware fuzzing of `cpsgd decode`: crafted valid-CRC streams with absurd declared values
(see cpsgd.pipeline.crafted), each decoded in a forked child. A stream fails when the decode exits
with anything but 0 or 2, runs past the time limit (a fixed part plus a part per megapixel of the
frames the stream would legitimately decode to), or its peak RSS passes the ceiling.

    python benchmarks/fuzz_crafted.py [--random 64] [--sample N] [--time-limit 20] [--seconds-per-mp 1]
                                      [--rss-limit-mb 1024] [--json]

Prints one line per failure, then the totals; exits 1 when any stream failed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2

# before any OpenCV work: a forked child cannot use a thread pool its parent started
cv2.setNumThreads(1)

from cpsgd import cli  # noqa: E402
from cpsgd.pipeline import EncoderConfig, encode_frames  # noqa: E402
from cpsgd.pipeline.crafted import crafted_streams, run_isolated  # noqa: E402
from cpsgd.synth import SceneConfig, make_scene  # noqa: E402


def seed_stream() -> bytes:
    """A small valid stream whose first GoP carries every section type."""
    clip = make_scene(SceneConfig(traj="pan", objects=1, num_frames=6, width=64, height=48, seed=3))
    config = EncoderConfig(gop=3, bpp=0.05, caption="a cat crosses a room while the camera pans", rate_control=False)
    return encode_frames(clip.frames, clip.fps, config, clip.trajectory, clip.masks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, default=64, help="streams with one absurd value at a random place")
    parser.add_argument("--sample", type=int, help="decode only SAMPLE streams, spread evenly over the list")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=20.0, help="seconds any decode may take")
    parser.add_argument("--seconds-per-mp", type=float, default=1.0, help="and more per megapixel of its frames")
    parser.add_argument("--rss-limit-mb", type=float, default=1024.0, help="peak RSS growth a decode may reach")
    parser.add_argument("--json", action="store_true", help="print the totals as one JSON object")
    args = parser.parse_args()
    ceiling = int(args.rss_limit_mb * 2**20)
    streams = list(crafted_streams(seed_stream(), args.random, args.seed))
    if args.sample is not None and args.sample < len(streams):
        streams = [streams[i * len(streams) // args.sample] for i in range(args.sample)]
    totals = {"streams": 0, "exit_0": 0, "exit_2": 0, "failures": 0, "max_seconds": 0.0, "max_rss_mb": 0.0}
    failures = []
    work = Path(tempfile.mkdtemp(prefix="cpsgd-fuzz-"))
    start = time.perf_counter()
    try:
        for stream in streams:
            path = work / "crafted.cpsgd"
            path.write_bytes(stream.data)
            output = work / "out.y4m"
            argv = ["decode", str(path), "-o", str(output), "-q", "--force"]
            # the address-space cap stops a runaway decode well before the machine is hurt
            limit_s = args.time_limit + args.seconds_per_mp * stream.pixels / 1e6
            outcome = run_isolated(lambda: cli.main(argv), limit_s, 4 * ceiling)
            output.unlink(missing_ok=True)
            totals["streams"] += 1
            if outcome.seconds > totals["max_seconds"]:
                totals["max_seconds"], totals["slowest"] = outcome.seconds, stream.name
            if outcome.peak_rss_bytes / 2**20 > totals["max_rss_mb"]:
                totals["max_rss_mb"], totals["largest"] = outcome.peak_rss_bytes / 2**20, stream.name
            problem = (
                "timed out" if outcome.exit_code is None
                else f"exit {outcome.exit_code}" if outcome.exit_code not in (0, 2)
                else f"peak RSS {outcome.peak_rss_bytes / 2**20:.0f} MB" if outcome.peak_rss_bytes > ceiling
                else None
            )
            if problem:
                totals["failures"] += 1
                failures.append(f"FAIL {stream.name}: {problem}, {outcome.seconds:.1f} s: {outcome.error_line[:200]}")
            else:
                totals[f"exit_{outcome.exit_code}"] += 1
    finally:
        shutil.rmtree(work)
    totals["seconds"] = time.perf_counter() - start
    if args.json:
        print(json.dumps({**totals, "failed": failures}))
    else:
        print("\n".join(failures))
        print(
            f"crafted streams: {totals['streams']} (seed {args.seed}); exit 0: {totals['exit_0']}, exit 2: "
            f"{totals['exit_2']}, failures: {totals['failures']}; slowest {totals['max_seconds']:.2f} s "
            f"({totals.get('slowest')}), peak RSS growth {totals['max_rss_mb']:.0f} MB ({totals.get('largest')}) (limits {args.time_limit:g} s + {args.seconds_per_mp:g} s/MP, "
            f"{args.rss_limit_mb:g} MB); "
            f"{totals['seconds']:.0f} s in all"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
