"""DAVIS clips in the paper's protocol: first frames, centre crop to a square, resize."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from cpsgd.errors import InputError
from cpsgd.video.reader import IMAGE_SUFFIXES, square_resize


# The official zips put a resolution level between JPEGImages/ (Annotations/) and the sequences;
# flattened copies leave it out. The paper's protocol uses 480p.
DAVIS_LEVELS = ("480p", "1080p", "Full-Resolution")


def davis_level(root: Path) -> Path:
    """The folder under ``root/JPEGImages`` (and ``Annotations``) that holds the sequences."""
    for level in DAVIS_LEVELS:
        if (root / "JPEGImages" / level).is_dir():
            return Path(level)
    return Path()


def _frame_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []


def _annotation(path: Path) -> np.ndarray:
    """Binary foreground: DAVIS-2017 palette PNGs store object ids (0 = background), DAVIS-2016
    greyscale PNGs 255 for the object."""
    with Image.open(path) as image:
        if image.mode == "P":
            return np.asarray(image) > 0
        return np.asarray(image.convert("L")) > 127


def load_davis_clip(
    root: Path, sequence: str, num_frames: int = 25, size: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Frames (N, size, size, 3) RGB uint8 and binary masks (N, size, size) uint8 (1 = object).

    ``root`` holds ``JPEGImages/<seq>`` and ``Annotations/<seq>``, or the official
    ``JPEGImages/480p/<seq>`` and ``Annotations/480p/<seq>``; frames may be JPEG or PNG. Masks are
    resized as soft coverage and thresholded at one half, so their edges stay where the
    annotation put them.
    """
    level = davis_level(root)
    image_dir, mask_dir = root / "JPEGImages" / level / sequence, root / "Annotations" / level / sequence
    image_paths, mask_paths = _frame_files(image_dir)[:num_frames], _frame_files(mask_dir)[:num_frames]
    if len(image_paths) < num_frames or len(mask_paths) < num_frames:
        raise InputError(
            f"DAVIS sequence {sequence!r}: {len(image_paths)} frames in {image_dir} and {len(mask_paths)} "
            f"annotations in {mask_dir}, {num_frames} needed (image files: {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    frames = np.stack(
        [square_resize(np.asarray(Image.open(p).convert("RGB")), size, cv2.INTER_AREA) for p in image_paths]
    )
    masks = np.stack(
        [square_resize(_annotation(p).astype(np.float32), size, cv2.INTER_AREA) >= 0.5 for p in mask_paths]
    ).astype(np.uint8)
    return frames, masks


def davis_sequences(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "Annotations" / davis_level(root)).iterdir() if p.is_dir())
