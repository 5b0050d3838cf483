"""Benchmark datasets: a DAVIS-layout folder, a folder of videos, one video, a folder of clip
folders (each ``<clip>/frames`` with optional ``<clip>/masks``), one frame folder, or a list file.

Paper protocol by default: the first 25 frames of each sequence, centre-cropped to a square and
resized to 512x512 (``cpsgd.video`` and ``cpsgd.masks.davis`` do the cropping).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from cpsgd.errors import InputError
from cpsgd.masks.davis import davis_level, load_davis_clip
from cpsgd.video import open_video
from cpsgd.video.reader import square_resize

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".y4m")
DAVIS_FPS = 24.0


@dataclass(frozen=True)
class Protocol:
    frames: int = 25
    size: int = 512


@dataclass
class Sequence:
    name: str
    frames: np.ndarray  # (N, S, S, 3) uint8 RGB
    fps: float
    masks: np.ndarray | None = None  # (N, S, S) uint8, 1 = foreground, from the dataset's annotations


@dataclass(frozen=True)
class Source:
    name: str
    path: Path
    kind: str  # "davis" (root holding JPEGImages/[480p/]<name>), "clip" (a folder holding frames/ and
    # perhaps masks/), "frames" (a folder of images) or "video"


def find_sources(path: str | Path) -> list[Source]:
    """The sequences of a dataset, in name order; a ``.txt`` list names one entry per line."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if path.is_file() and path.suffix.lower() == ".txt":
        sources = []
        for line in path.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                sources.extend(find_sources(path.parent / line.strip()))
        return sources
    if path.is_file():
        return [Source(path.stem, path, "video")]
    if (path / "JPEGImages").is_dir():
        names = sorted(p.name for p in (path / "JPEGImages" / davis_level(path)).iterdir() if p.is_dir())
        return [Source(n, path, "davis") for n in names]
    videos = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if videos:
        return [Source(p.stem, p, "video") for p in videos]
    if (path / "frames").is_dir():
        return [Source(path.name, path, "clip")]
    clips = sorted(p for p in path.iterdir() if (p / "frames").is_dir())
    if clips:
        return [Source(p.name, p, "clip") for p in clips]
    return [Source(path.name, path, "frames")]


def load_masks(folder: Path, count: int, size: int) -> np.ndarray | None:
    """The first ``count`` masks of a folder of images (non-zero = object), cropped and resized
    as the frames are (soft coverage thresholded at one half); None when there are fewer."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".bmp", ".tif", ".tiff"))[:count]
    if len(paths) < count:
        return None
    masks = [square_resize((np.asarray(Image.open(p).convert("L")) > 127).astype(np.float32), size, cv2.INTER_AREA)
             >= 0.5 for p in paths]
    return np.stack(masks).astype(np.uint8)


def load_sequence(source: Source, protocol: Protocol = Protocol()) -> Sequence:
    if source.kind == "davis":
        level = davis_level(source.path)
        if (source.path / "Annotations" / level / source.name).is_dir():
            frames, masks = load_davis_clip(source.path, source.name, protocol.frames, protocol.size)
            return Sequence(source.name, frames, DAVIS_FPS, masks)
        video = open_video(source.path / "JPEGImages" / level / source.name, protocol.size, protocol.frames)
        return Sequence(source.name, video.read_all(), DAVIS_FPS)
    if source.kind == "clip":
        video = open_video(source.path / "frames", protocol.size, protocol.frames)
        frames = video.read_all()
        masks_dir = source.path / "masks"
        masks = load_masks(masks_dir, len(frames), protocol.size) if masks_dir.is_dir() else None
        return Sequence(source.name, frames, float(video.fps), masks)
    video = open_video(source.path, protocol.size, protocol.frames)
    return Sequence(source.name, video.read_all(), float(video.fps))


def load_dataset(path: str | Path, protocol: Protocol = Protocol()) -> Iterator[Sequence]:
    """Each sequence in turn, so that memory holds one clip at a time."""
    for source in find_sources(path):
        yield load_sequence(source, protocol)
