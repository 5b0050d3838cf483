"""Rendering time of synthetic scenes and the reprojection self-check of their poses.

    python benchmarks/synth_speed.py [--sizes 256,512]
"""

from __future__ import annotations

import argparse
import time

from cpsgd.synth import SceneConfig, make_scene, reprojection_check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512")
    args = parser.parse_args()
    make_scene(SceneConfig(num_frames=1))  # decode the textures once
    for size in (int(s) for s in args.sizes.split(",")):
        cpu, wall = time.process_time(), time.perf_counter()
        make_scene(SceneConfig(traj="orbit", objects=2, width=size, height=size))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        noiseless = make_scene(SceneConfig(traj="orbit", objects=2, width=size, height=size, noise=0))
        check = reprojection_check(noiseless)
        print(f"{size}x{size}, 25 frames, orbit, 2 objects: {cpu:.2f} s CPU, {wall:.2f} s wall; "
              f"self-check without noise: colour error {check.colour_error:.2f} grey levels, "
              f"depth error {check.max_depth_error:.1e}")


if __name__ == "__main__":
    main()
