"""Frame writers: a folder of PNGs (frame_00000.png, ...), .y4m, or .mp4/.mkv (H.264 via PyAV).

H.264 is written 4:2:0, which every player decodes; 4:2:0 needs even sizes, so an odd width or
height is padded by one pixel (the last column or row repeated). PNG and .y4m keep the exact size.

Writers write under a temporary name and move it into place on ``close``, so an interrupted run
never leaves a half-written file under the final name. The temporary is created exclusively (a
file or link already planted under its name is removed, never written through), and ``--force``
replaces only what the command itself would write: a file with a file, a folder of frame PNGs with
a folder of frame PNGs; never another folder, never the command's own input.
"""

from __future__ import annotations

import os
import re
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from cpsgd.bitstream.container import MAX_RATE_TERM
from cpsgd.errors import InputError

VIDEO_SUFFIXES = {".mp4": "mp4", ".mkv": "matroska", ".y4m": "yuv4mpegpipe"}
# Names that look like a file we do not write; anything else names a folder of PNGs.
UNSUPPORTED_SUFFIXES = {".avi", ".mov", ".webm", ".gif", ".png", ".jpg", ".jpeg", ".cpsgd", ".txt"}
FRAME_FILE = re.compile(r"frame_\d{5,}\.png")


def frame_file_name(index: int, total: int | None = None) -> str:
    """frame_00000.png, ...: five digits, more when ``total`` frames need them (name order is
    frame order, which the folder reader relies on)."""
    digits = max(5, len(str(max((total or 0) - 1, 0))))
    return f"frame_{index:0{digits}d}.png"


def temporary_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.partial")


def create_temporary(final: Path, folder: bool = False) -> Path:
    """Create the temporary for ``final`` exclusively (an empty file, or an empty folder) and
    return its path. Whatever a crashed run or anyone else left under that name is removed first;
    a symbolic link is unlinked, never followed."""
    tmp = temporary_path(final)
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp)
    elif tmp.exists() or tmp.is_symlink():
        tmp.unlink()
    try:
        if folder:
            tmp.mkdir()
        else:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666))
    except FileExistsError:
        raise InputError(f"{tmp} appeared while cpsgd was writing: not writing through it") from None
    except OSError as exc:
        raise InputError(f"cannot write in {final.parent}: {exc.strerror}") from None
    return tmp


def _is_frame_folder(path: Path) -> bool:
    """A folder holding nothing but frame PNGs (what a frame writer makes), or nothing at all."""
    return all(entry.is_file() and not entry.is_symlink() and FRAME_FILE.fullmatch(entry.name) for entry in path.iterdir())


def commit_path(temporary: Path, final: Path) -> None:
    """Move a finished output into place (replacing an old one the caller agreed to replace; a
    folder only if it still holds nothing but frame PNGs)."""
    if final.is_dir() and not final.is_symlink():
        if not temporary.is_dir() or not _is_frame_folder(final):
            raise InputError(f"{final} is a folder that cpsgd did not write: not replacing it")
        shutil.rmtree(final)
    try:
        temporary.replace(final)
    except OSError as exc:
        raise InputError(f"cannot write {final}: {exc.strerror}") from None


def check_output(path: Path, force: bool, folder: bool = False, inputs: tuple[Path, ...] = ()) -> Path:
    """Check that ``path`` may be written (a file, or with ``folder`` a folder of frame PNGs) and
    return it made absolute. An existing output is replaced only with ``force``, and then only
    the kind this command writes (see the module docstring); never one of ``inputs``."""
    path = Path(os.path.abspath(path))  # "-o ." and "-o .." name the folders they point at
    if path.parent == path:
        raise InputError(f"cannot write over {path}")
    if not path.parent.is_dir():
        raise InputError(f"the folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write in {path.parent}: permission denied")
    exists = path.exists() or path.is_symlink()
    if exists and not force:
        raise InputError(f"{path} already exists (use --force to overwrite it)")
    for source in inputs:
        source = Path(os.path.abspath(source))
        if source == path or source.is_relative_to(path) or (path.exists() and source.exists() and path.samefile(source)):
            raise InputError(f"{path} is this command's input: not overwriting it")
    if exists and path.is_dir() and not path.is_symlink():
        if not folder:
            raise InputError(f"{path} is a folder: not replacing it with a file")
        if not _is_frame_folder(path):
            raise InputError(f"{path} holds files cpsgd did not write: not replacing it")
    elif exists and folder:
        raise InputError(f"{path} is a file: not replacing it with a folder of frames")
    return path


class VideoWriter:
    def __init__(self, path: Path, fps: Fraction, quality: int = 12, frame_count: int | None = None) -> None:
        """``frame_count``: how many frames will come, if known (frame names get the digits they need)."""
        self.path = Path(path)
        self.fps = fps
        self.quality = quality
        self.count = 0
        self.frame_count = frame_count
        self._format = VIDEO_SUFFIXES.get(self.path.suffix.lower())
        if self._format is not None and max(fps.numerator, fps.denominator) > MAX_RATE_TERM:
            raise InputError(f"frame rate {fps} cannot be stored in a video file: write a folder of PNGs")
        self._container: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._tmp = create_temporary(self.path, folder=self._format is None)

    def write(self, frame: np.ndarray) -> None:
        try:
            if self._format is None:
                name = frame_file_name(self.count, self.frame_count)
                Image.fromarray(frame).save(self._tmp / name, compress_level=3)
            else:
                if self._format != "yuv4mpegpipe":
                    frame = _pad_to_even(frame)
                if self._container is None:
                    self._open(frame.shape[1], frame.shape[0])
                video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                for packet in self._stream.encode(video_frame):
                    self._container.mux(packet)
        except OSError as exc:  # a full disk, a folder made read-only meanwhile (FFmpeg's errors included)
            raise InputError(f"cannot write {self.path}: {exc}") from None
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
        """Commit the output; with no frame written, remove the temporary and raise instead."""
        if not self.count:
            self.abort()
            raise InputError(f"no frames to write: {self.path} was not written")
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


def open_writer(
    path: str | Path, fps: Fraction, force: bool = False, frame_count: int | None = None, inputs: tuple[Path, ...] = ()
) -> VideoWriter:
    """A writer for ``path``: a folder of PNGs unless it ends in .mp4, .mkv or .y4m. ``force``
    and ``inputs``: see ``check_output``."""
    path = Path(path)
    if path.suffix.lower() in UNSUPPORTED_SUFFIXES:
        raise InputError(f"cannot write {path.suffix} files: give a folder name, .mp4, .mkv or .y4m")
    folder = path.suffix.lower() not in VIDEO_SUFFIXES
    return VideoWriter(check_output(path, force, folder, inputs), Fraction(fps), frame_count=frame_count)
