"""Frame writers: a folder of PNGs (frame_00000.png, ...), .y4m, or .mp4/.mkv (H.264 via PyAV).

H.264 is written 4:2:0, which every player decodes; 4:2:0 needs even sizes, so an odd width or
height is padded by one pixel (the last column or row repeated). PNG and .y4m keep the exact size.

Writers write under a temporary name and move it into place on ``close``, so an interrupted run
never leaves a half-written file under the final name.
"""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from cpsgd.errors import InputError

VIDEO_SUFFIXES = {".mp4": "mp4", ".mkv": "matroska", ".y4m": "yuv4mpegpipe"}
# Names that look like a file we do not write; anything else names a folder of PNGs.
UNSUPPORTED_SUFFIXES = {".avi", ".mov", ".webm", ".gif", ".png", ".jpg", ".jpeg", ".cpsgd", ".txt"}


def temporary_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.partial")


def commit_path(temporary: Path, final: Path) -> None:
    """Move a finished output into place (replacing an old one the caller agreed to replace)."""
    if final.is_dir() and not final.is_symlink():
        shutil.rmtree(final)
    temporary.replace(final)


def check_output(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise InputError(f"{path} already exists (use --force to overwrite it)")
    if not path.parent.exists():
        raise InputError(f"the folder {path.parent} does not exist")


class VideoWriter:
    def __init__(self, path: Path, fps: Fraction, quality: int = 12) -> None:
        self.path = Path(path)
        self.fps = fps
        self.quality = quality
        self.count = 0
        self._tmp = temporary_path(self.path)
        self._format = VIDEO_SUFFIXES.get(self.path.suffix.lower())
        self._container: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        if self._tmp.exists():
            shutil.rmtree(self._tmp) if self._tmp.is_dir() else self._tmp.unlink()
        if self._format is None:
            self._tmp.mkdir()

    def write(self, frame: np.ndarray) -> None:
        if self._format is None:
            Image.fromarray(frame).save(self._tmp / f"frame_{self.count:05d}.png", compress_level=3)
        else:
            if self._format != "yuv4mpegpipe":
                frame = _pad_to_even(frame)
            if self._container is None:
                self._open(frame.shape[1], frame.shape[0])
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            for packet in self._stream.encode(video_frame):
                self._container.mux(packet)
        self.count += 1

    def _open(self, width: int, height: int) -> None:
        self._container = av.open(str(self._tmp), "w", format=self._format)
        if self._format == "yuv4mpegpipe":
            stream = self._container.add_stream("wrapped_avframe", rate=self.fps)
            stream.pix_fmt = "yuv444p"
        else:
            stream = self._container.add_stream("libx264", rate=self.fps)
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(self.quality), "preset": "medium"}
        stream.width, stream.height = width, height
        self._stream = stream

    def close(self) -> None:
        if self._container is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
        commit_path(self._tmp, self.path)

    def abort(self) -> None:
        if self._container is not None:
            self._container.close()
        if self._tmp.is_dir():
            shutil.rmtree(self._tmp)
        elif self._tmp.exists():
            self._tmp.unlink()


def _pad_to_even(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return frame
    return np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


def open_writer(path: str | Path, fps: Fraction, force: bool = False) -> VideoWriter:
    """A writer for ``path``: a folder of PNGs unless it ends in .mp4, .mkv or .y4m."""
    path = Path(path)
    if path.suffix.lower() in UNSUPPORTED_SUFFIXES:
        raise InputError(f"cannot write {path.suffix} files: give a folder name, .mp4, .mkv or .y4m")
    check_output(path, force)
    return VideoWriter(path, fps)
