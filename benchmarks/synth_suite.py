"""Write the synthetic benchmark suite as a DAVIS-layout folder that `cpsgd bench` reads.

    python benchmarks/synth_suite.py /tmp/synth-suite [--size 256] [--frames 25]

One scene per camera trajectory (static, pan, dolly, orbit, shake), one moving object, seed 0:
OUT/JPEGImages/<trajectory>/frame_*.png.
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
    args = parser.parse_args()
    (args.output / "JPEGImages").mkdir(parents=True, exist_ok=False)
    with tempfile.TemporaryDirectory() as scratch:
        for trajectory in TRAJECTORIES:
            config = SceneConfig(traj=trajectory, objects=1, num_frames=args.frames, width=args.size, height=args.size)
            write_clip(make_scene(config), Path(scratch) / trajectory)
            shutil.move(Path(scratch) / trajectory / "frames", args.output / "JPEGImages" / trajectory)
    print(f"wrote {len(TRAJECTORIES)} scenes to {args.output / 'JPEGImages'}")


if __name__ == "__main__":
    main()
