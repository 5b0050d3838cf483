"""Moving-object segmentation: DAVIS J and F of a segmenter against the DAVIS-2016 annotations
(../shared/data, paper protocol: first 25 frames, centre crop, 512x512) and against synthetic
scenes' exact masks (512x512, every camera trajectory, one and two objects), with the time per
25-frame GoP.

    python benchmarks/segmentation.py [--segmenter motion] [--data ../shared/data] [--no-synthetic]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from cpsgd.masks import SEGMENTERS
from cpsgd.masks.metrics import score_masks


def clips(data: Path, synthetic: bool):
    from cpsgd.masks.davis import davis_sequences, load_davis_clip

    root = data / "davis2016"
    if root.is_dir():
        for name in davis_sequences(root):
            yield "davis", name, *load_davis_clip(root, name)
    if synthetic:
        from cpsgd.synth import SceneConfig, make_scene

        for traj in ("static", "pan", "dolly", "orbit", "shake"):
            for objects in (1, 2):
                scene = make_scene(SceneConfig(traj=traj, objects=objects, width=512, height=512, seed=0))
                yield "synthetic", f"{traj}-{objects}obj", scene.frames, scene.masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segmenter", default="motion", choices=SEGMENTERS.names())
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--no-synthetic", action="store_true")
    args = parser.parse_args()
    segmenter = SEGMENTERS.get(args.segmenter)()
    print(f"segmenter {args.segmenter}; J and F on binary foreground; seconds per 25-frame GoP")
    print(f"{'set':10s} {'sequence':16s} {'J':>6s} {'F':>6s} {'fg':>6s} {'truth':>6s} {'s/GoP':>6s}")
    results: dict[str, list[tuple[float, float, float]]] = {}
    for group, name, frames, truth in clips(args.data, not args.no_synthetic):
        t0 = time.perf_counter()
        masks = segmenter.segment(frames)
        seconds = time.perf_counter() - t0
        scores = score_masks(masks, truth)
        results.setdefault(group, []).append((scores.j_mean, scores.f_mean, seconds))
        print(
            f"{group:10s} {name:16s} {scores.j_mean:6.3f} {scores.f_mean:6.3f} {(masks > 0).mean():6.3f} "
            f"{(truth > 0).mean():6.3f} {seconds:6.2f}"
        )
    for group, rows in results.items():
        j, f, seconds = np.mean(rows, axis=0)
        print(f"mean {group:10s} J {j:.3f}  F {f:.3f}  {seconds:.2f} s/GoP over {len(rows)} clips")


if __name__ == "__main__":
    main()
