"""Write the synthetic benchmark suite as a DAVIS-layout folder that `cpsgd bench` reads.

    python benchmarks/synth_suite.py /tmp/synth-suite [--size 256] [--frames 25] [--objects 1]

One scene per camera trajectory (static, pan, dolly, orbit, shake) and object count (--objects,
comma-separated, default one moving object), seed 0: OUT/JPEGImages/<trajectory>/frame_*.png for a
single count, OUT/JPEGImages/<trajectory>-<count>obj/ for several (``--objects 0,1,2``: every kind
of synthetic footage, so that a regression on any shows in `cpsgd bench`).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from cpsgd.synth import SceneConfig, make_scene, write_clip
from cpsgd.synth.trajectories import TRAJECTORIES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--objects", default="1", help="object counts, comma-separated (0, 1, 2)")
    args = parser.parse_args()
    counts = [int(c) for c in args.objects.split(",")]
    (args.output / "JPEGImages").mkdir(parents=True, exist_ok=False)
    with tempfile.TemporaryDirectory() as scratch:
        for trajectory in TRAJECTORIES:
            for objects in counts:
                name = trajectory if len(counts) == 1 else f"{trajectory}-{objects}obj"
                config = SceneConfig(traj=trajectory, objects=objects, num_frames=args.frames, width=args.size, height=args.size)
                write_clip(make_scene(config), Path(scratch) / name)
                shutil.move(Path(scratch) / name / "frames", args.output / "JPEGImages" / name)
    print(f"wrote {len(TRAJECTORIES) * len(counts)} scenes to {args.output / 'JPEGImages'}")


if __name__ == "__main__":
    main()
