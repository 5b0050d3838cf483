"""Writing a synthetic clip to disk: PNG frames and masks, RealEstate10K poses, JSON intrinsics."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from cpsgd.errors import InputError
from cpsgd.poses.re10k import write_re10k
from cpsgd.synth.scene import SyntheticClip

FRAME_PATTERN = "frame_{:05d}.png"


def _prepare(outdir: Path, force: bool) -> None:
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"{outdir} exists and is not a directory")
    if outdir.is_dir() and any(outdir.iterdir()):
        if not force:
            raise InputError(f"{outdir} is not empty (use --force to overwrite)")
        # drop our own earlier output so a shorter clip leaves no stale frames behind
        for sub in ("frames", "masks"):
            for old in (outdir / sub).glob("frame_*.png"):
                old.unlink()
    for sub in ("frames", "masks"):
        (outdir / sub).mkdir(parents=True, exist_ok=True)


def _write_png(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise InputError(f"cannot write {path}")


def write_clip(clip: SyntheticClip, outdir: str | Path, force: bool = False) -> dict[str, Path]:
    """Write ``frames/frame_00000.png...`` (RGB), ``masks/frame_00000.png...`` (255 where any
    object is), ``poses.txt`` (RealEstate10K, world-to-camera) and ``intrinsics.json``.
    Refuses a non-empty existing directory unless ``force``. Returns the paths written."""
    outdir = Path(outdir)
    try:
        _prepare(outdir, force)
        for i, (frame, mask) in enumerate(zip(clip.frames, clip.masks)):
            _write_png(outdir / "frames" / FRAME_PATTERN.format(i), np.ascontiguousarray(frame[..., ::-1]))
            binary = np.where(mask > 0, 255, 0).astype(np.uint8)
            _write_png(outdir / "masks" / FRAME_PATTERN.format(i), binary)
        height, width = clip.masks.shape[1:]
        write_re10k(outdir / "poses.txt", clip.trajectory, fps=clip.fps, header=f"cpsgd synth {clip.config}")
        k = clip.trajectory.intrinsics
        kmat = k.matrix(width, height)
        info = {
            "width": width,
            "height": height,
            "fx": k.fx,
            "fy": k.fy,
            "cx": k.cx,
            "cy": k.cy,
            "fx_px": kmat[0, 0],
            "fy_px": kmat[1, 1],
            "cx_px": kmat[0, 2],
            "cy_px": kmat[1, 2],
            "note": "fx, cx normalised by width and fy, cy by height (RealEstate10K); pixel centres at "
            "integer coordinates (OpenCV); poses.txt holds world-to-camera matrices, OpenCV axes",
            "fps": clip.fps,
            "num_frames": len(clip.frames),
        }
        (outdir / "intrinsics.json").write_text(json.dumps(info, indent=2) + "\n")
    except OSError as exc:
        raise InputError(f"cannot write to {outdir}: {exc}") from None
    return {
        "frames": outdir / "frames",
        "masks": outdir / "masks",
        "poses": outdir / "poses.txt",
        "intrinsics": outdir / "intrinsics.json",
    }
