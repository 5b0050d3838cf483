"""Benchmark datasets: a DAVIS-layout folder, a folder of videos, one video, or a list file.

Paper protocol by default: the first 25 frames of each sequence, centre-cropped to a square and
resized to 512x512 (``cpsgd.video`` and ``cpsgd.masks.davis`` do the cropping).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cpsgd.errors import InputError
from cpsgd.masks.davis import davis_level, load_davis_clip
from cpsgd.video import open_video

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
    kind: str  # "davis" (root holding JPEGImages/[480p/]<name>), "frames" (a folder of images) or "video"


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
    return [Source(path.name, path, "frames")]


def load_sequence(source: Source, protocol: Protocol = Protocol()) -> Sequence:
    if source.kind == "davis":
        level = davis_level(source.path)
        if (source.path / "Annotations" / level / source.name).is_dir():
            frames, masks = load_davis_clip(source.path, source.name, protocol.frames, protocol.size)
            return Sequence(source.name, frames, DAVIS_FPS, masks)
        video = open_video(source.path / "JPEGImages" / level / source.name, protocol.size, protocol.frames)
        return Sequence(source.name, video.read_all(), DAVIS_FPS)
    video = open_video(source.path, protocol.size, protocol.frames)
    return Sequence(source.name, video.read_all(), float(video.fps))


def load_dataset(path: str | Path, protocol: Protocol = Protocol()) -> Iterator[Sequence]:
    """Each sequence in turn, so that memory holds one clip at a time."""
    for source in find_sources(path):
        yield load_sequence(source, protocol)
