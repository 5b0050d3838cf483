"""Adaptive GoPs: a bounded look-ahead over the input frames and scene-cut detection.

A cut is a jump in the difference between consecutive frames, compared on small thumbnails (so
that noise and fine texture do not count): a difference several times the window's median
difference (what camera and object motion normally give in this clip) and above a small floor,
or one so large that no motion explains it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

import cv2
import numpy as np

THUMBNAIL = 32
MIN_CUT = 0.02  # mean absolute thumbnail difference (0-1) below which nothing is a cut
SURE_CUT = 0.25  # above this it is a cut whatever the rest of the window does


def frame_differences(frames: np.ndarray) -> np.ndarray:
    """(N-1,) mean absolute differences (0-1) between consecutive frames' RGB thumbnails."""
    thumbs = np.stack(
        [cv2.resize(f, (THUMBNAIL, THUMBNAIL), interpolation=cv2.INTER_AREA) for f in frames]
    ).astype(np.float32)
    return np.abs(np.diff(thumbs, axis=0)).mean(axis=(1, 2, 3)) / 255.0


def first_cut(frames: np.ndarray, ratio: float) -> int:
    """Index of the first frame of a new scene (1..N-1), or N when the window holds one scene.
    ``ratio``: how many times the window's median difference a cut's difference must be."""
    if len(frames) < 2:
        return len(frames)
    diffs = frame_differences(frames)
    typical = float(np.median(diffs)) if len(diffs) >= 3 else np.inf
    cuts = np.flatnonzero(((diffs > ratio * typical) & (diffs > MIN_CUT)) | (diffs > SURE_CUT))
    return int(cuts[0]) + 1 if cuts.size else len(frames)


class LookAhead:
    """Frames from an iterable of (n, H, W, 3) blocks of any length, buffered up to ``capacity``
    frames beyond the block being read, so memory stays bounded however long the video is."""

    def __init__(self, blocks: Iterable[np.ndarray], capacity: int) -> None:
        self._frames: Iterator[np.ndarray] = (frame for block in blocks for frame in block)
        self._buffer: deque[np.ndarray] = deque()
        self.capacity = capacity

    def window(self) -> np.ndarray | None:
        """The next up to ``capacity`` frames (None at the end); they stay until ``advance``."""
        while len(self._buffer) < self.capacity:
            frame = next(self._frames, None)
            if frame is None:
                break
            self._buffer.append(frame)
        return np.stack(self._buffer) if self._buffer else None

    def advance(self, count: int) -> None:
        for _ in range(min(count, len(self._buffer))):
            self._buffer.popleft()
