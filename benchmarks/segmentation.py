"""Moving-object segmentation: DAVIS J and F of a segmenter against the DAVIS-2016 annotations
(../shared/data, paper protocol: first 25 frames, centre crop, 512x512) and against synthetic
scenes' exact masks (512x512, every camera trajectory, one and two objects), with the time per
25-frame GoP. On ../shared/data/more (no exact masks) it prints what can be checked: on tennis,
whose masks are dilated object-removal regions, the share of the estimated foreground inside the
region ("in region") and the share of frames with any foreground; on every clip the foreground
area and the stability of the masks (mean J between consecutive estimated masks).

    python benchmarks/segmentation.py [--segmenter motion] [--data ../shared/data] [--no-synthetic] [--no-more]
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


def more_clips(data: Path):
    """(name, frames, dilated region masks or None) of ../shared/data/more, first 25 frames, 512x512."""
    from cpsgd.masks.io import read_mask_dir
    from cpsgd.video import open_video

    for clip in ("tennis", "bedroom", "lady-running"):
        folder = data / "more" / clip
        if not (folder / "frames").is_dir():
            continue
        frames = np.stack(list(open_video(folder / "frames", size=512, max_frames=25).iter_frames()))
        regions = None
        if (folder / "masks").is_dir():
            regions = read_mask_dir(folder / "masks", size=512)[: len(frames)] > 0
        yield clip, frames, regions


def stability(masks: np.ndarray) -> float:
    """Mean J between consecutive masks (1: the shape never changes)."""
    a, b = masks[1:] > 0, masks[:-1] > 0
    union = (a | b).sum(axis=(1, 2))
    return float(np.mean(np.where(union == 0, 1.0, (a & b).sum(axis=(1, 2)) / np.maximum(union, 1))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segmenter", default="motion", choices=SEGMENTERS.names())
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--no-synthetic", action="store_true")
    parser.add_argument("--no-more", action="store_true")
    args = parser.parse_args()
    print(f"command: python benchmarks/segmentation.py --segmenter {args.segmenter} --data {args.data}"
          + (" --no-synthetic" if args.no_synthetic else "") + (" --no-more" if args.no_more else ""))
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
            f"{(truth > 0).mean():6.3f} {seconds:6.2f}  stability {stability(masks):.3f}"
        )
    if not args.no_more and (args.data / "more").is_dir():
        print(f"{'more/ clip':27s} {'fg':>6s} {'in region':>9s} {'frames fg':>9s} {'stability':>9s} {'s/GoP':>6s}")
        for name, frames, regions in more_clips(args.data):
            t0 = time.perf_counter()
            masks = segmenter.segment(frames) > 0
            seconds = time.perf_counter() - t0
            inside = f"{(masks & regions).sum() / max(masks.sum(), 1):9.3f}" if regions is not None else f"{'-':>9s}"
            print(f"{name:27s} {masks.mean():6.3f} {inside} {masks.any(axis=(1, 2)).mean():9.3f} "
                  f"{stability(masks):9.3f} {seconds:6.2f}")
    for group, rows in results.items():
        j, f, seconds = np.mean(rows, axis=0)
        print(f"mean {group:10s} J {j:.3f}  F {f:.3f}  {seconds:.2f} s/GoP over {len(rows)} clips")


if __name__ == "__main__":
    main()
