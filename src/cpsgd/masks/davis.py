"""DAVIS-2016 clips in the paper's protocol: first frames, centre crop to a square, resize."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from cpsgd.errors import InputError
from cpsgd.video.reader import square_resize


def load_davis_clip(
    root: Path, sequence: str, num_frames: int = 25, size: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Frames (N, size, size, 3) RGB uint8 and binary masks (N, size, size) uint8 (1 = object).

    ``root`` holds ``JPEGImages/<seq>`` and ``Annotations/<seq>``. Masks are resized as soft
    coverage and thresholded at one half, so their edges stay where the annotation put them.
    """
    image_paths = sorted((root / "JPEGImages" / sequence).glob("*.jpg"))[:num_frames]
    mask_paths = sorted((root / "Annotations" / sequence).glob("*.png"))[:num_frames]
    if len(image_paths) < num_frames or len(mask_paths) < num_frames:
        raise InputError(f"DAVIS sequence {sequence!r} under {root} has fewer than {num_frames} frames")
    frames = np.stack(
        [square_resize(np.asarray(Image.open(p).convert("RGB")), size, cv2.INTER_AREA) for p in image_paths]
    )
    masks = np.stack(
        [
            square_resize((np.asarray(Image.open(p).convert("L")) > 127).astype(np.float32), size, cv2.INTER_AREA)
            >= 0.5
            for p in mask_paths
        ]
    ).astype(np.uint8)
    return frames, masks


def davis_sequences(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "Annotations").iterdir() if p.is_dir())
