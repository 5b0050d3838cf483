"""Lazy frame readers. Frames come out as (H, W, 3) uint8 RGB, one at a time, so memory does not
grow with the length of the video."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from cpsgd.bitstream.container import MAX_DIMENSION, MAX_GOP_PIXELS
from cpsgd.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
RAW_SUFFIXES = {".yuv", ".raw"}
DEFAULT_FPS = Fraction(25)
# Headerless planar formats (FFmpeg's names): chroma subsampling (x, y), or None for grey, and
# bytes per sample.
RAW_PIXEL_FORMATS: dict[str, tuple[tuple[int, int] | None, int]] = {
    "yuv420p": ((2, 2), 1), "yuv422p": ((2, 1), 1), "yuv444p": ((1, 1), 1), "gray": (None, 1),
    "yuv420p10le": ((2, 2), 2), "yuv422p10le": ((2, 1), 2), "yuv444p10le": ((1, 1), 2), "gray10le": (None, 2),
}


@dataclass(frozen=True)
class RawFormat:
    """How to read a headerless .yuv file (FFmpeg's ``-video_size`` and ``-pix_fmt``)."""

    width: int
    height: int
    pix_fmt: str = "yuv420p"

    def frame_bytes(self) -> int:
        if self.pix_fmt not in RAW_PIXEL_FORMATS:
            raise InputError(f"--pix-fmt {self.pix_fmt!r} is not supported; choose one of: {', '.join(RAW_PIXEL_FORMATS)}")
        if not (1 <= self.width <= 16384 and 1 <= self.height <= 16384):
            raise InputError(f"--raw-size {self.width}x{self.height} is out of range (1 to 16384)")
        subsampling, sample_bytes = RAW_PIXEL_FORMATS[self.pix_fmt]
        samples = self.width * self.height
        if subsampling is not None:
            sx, sy = subsampling
            samples += 2 * (-(-self.width // sx)) * (-(-self.height // sy))
        return samples * sample_bytes

    def open_options(self, fps: Fraction) -> dict[str, str]:
        return {"video_size": f"{self.width}x{self.height}", "pixel_format": self.pix_fmt, "framerate": str(fps)}


def frame_order(path: Path) -> tuple:
    """Sort key of a frame file: numbers in its name compare as numbers, so frame_99999.png
    comes before frame_100000.png (and frame_2.png before frame_10.png)."""
    parts = re.split(r"(\d+)", path.name)
    return tuple((0, int(part), part) if part.isdigit() else (1, 0, part) for part in parts if part), path.name


def to_rgb8(array: np.ndarray) -> np.ndarray:
    """Grey, grey+alpha, RGBA and 16-bit images -> (H, W, 3) uint8 RGB (alpha is dropped)."""
    if array.dtype == np.uint16 or array.dtype == np.int32:
        array = (np.clip(array, 0, 65535) >> 8).astype(np.uint8)
    elif array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        raise InputError(f"unsupported pixel type {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[2] in (2, 4):
        array = array[:, :, :-1]
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array)


def square_resize(frame: np.ndarray, size: int, interpolation: int | None = None) -> np.ndarray:
    """The paper's protocol: center-crop to a square, then resize to size x size. Label maps
    pass ``cv2.INTER_NEAREST`` so that labels stay labels."""
    h, w = frame.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = frame[top : top + side, left : left + side]
    if interpolation is None:
        interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def check_frame_size(width: int, height: int, what: object) -> None:
    """Refuse a frame the codec cannot carry, before its pixels are read."""
    if width > MAX_DIMENSION or height > MAX_DIMENSION or width * height > MAX_GOP_PIXELS:
        raise InputError(
            f"{what} is {width}x{height}: frames may be at most {MAX_DIMENSION} px a side and "
            f"{MAX_GOP_PIXELS:,} pixels (use --size to scale it down)"
        )


def read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            check_frame_size(image.width, image.height, path)
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                return to_rgb8(np.asarray(image, dtype=np.int32))
            if image.mode not in ("RGB", "L", "LA", "RGBA"):
                image = image.convert("RGBA" if "A" in image.mode else "RGB")
            return to_rgb8(np.asarray(image))
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"cannot read image {path}: {exc}") from None


@dataclass
class VideoSource:
    """An opened input. ``width``/``height`` are after the optional square resize."""

    path: Path
    fps: Fraction
    width: int
    height: int
    size: int | None
    max_frames: int | None
    _frame_files: list[Path] | None = None
    frame_count_hint: int | None = None  # frames it will give, at most max_frames; may be absent or approximate
    raw: RawFormat | None = None
    crop_from: tuple[int, int] | None = None  # (height, width) before the square resize, if any

    def _raw_frames(self) -> Iterator[np.ndarray]:
        if self._frame_files is not None:
            first_shape = None
            for path in self._frame_files:
                frame = read_image(path)
                if first_shape is None:
                    first_shape = frame.shape
                elif frame.shape != first_shape:
                    raise InputError(
                        f"{path.name} is {frame.shape[1]}x{frame.shape[0]}, but the first frame is "
                        f"{first_shape[1]}x{first_shape[0]}: all frames must have one size"
                    )
                yield frame
            return
        try:
            with _open_container(self.path, self.raw, self.fps) as container:
                for frame in container.decode(video=0):
                    yield frame.to_ndarray(format="rgb24")
        except av.FFmpegError as exc:
            raise InputError(f"cannot decode {self.path}: {exc}") from None

    def iter_frames(self) -> Iterator[np.ndarray]:
        for index, frame in enumerate(self._raw_frames()):
            if self.max_frames is not None and index >= self.max_frames:
                return
            yield square_resize(frame, self.size) if self.size else frame

    def iter_gops(self, gop_size: int) -> Iterator[np.ndarray]:
        """Consecutive (n, H, W, 3) blocks of at most ``gop_size`` frames."""
        block: list[np.ndarray] = []
        for frame in self.iter_frames():
            block.append(frame)
            if len(block) == gop_size:
                yield np.stack(block)
                block = []
        if block:
            yield np.stack(block)

    def read_all(self) -> np.ndarray:
        frames = list(self.iter_frames())
        if not frames:
            raise InputError(f"{self.path} has no frames")
        return np.stack(frames)


def _open_container(path: Path, raw: RawFormat | None, fps: Fraction | None) -> av.container.InputContainer:
    if raw is None:
        return av.open(str(path))
    return av.open(str(path), format="rawvideo", options=raw.open_options(fps or DEFAULT_FPS))


def open_video(
    path: str | Path,
    size: int | None = None,
    max_frames: int | None = None,
    fps: Fraction | None = None,
    raw: RawFormat | None = None,
) -> VideoSource:
    """Open a video file (anything FFmpeg reads, .y4m included), a headerless .yuv file described by
    ``raw``, or a folder of image frames (sorted by name; non-image files are rejected). ``fps``
    overrides the rate of a frame folder or raw file."""
    path = Path(path)
    if size is not None and not 8 <= size <= 8192:
        raise InputError(f"--size {size} is out of range (8 to 8192)")
    if max_frames is not None and max_frames < 1:
        raise InputError("the frame limit must be at least 1")
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if not p.name.startswith(".")), key=frame_order)
        others = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES or not p.is_file()]
        folders = [p for p in files if p.is_dir()]
        if (path / "JPEGImages").is_dir():
            raise InputError(f"{path} is a DAVIS dataset: give one sequence, e.g. {_first_sequence(path)}")
        if folders and len(folders) == len(files):
            raise InputError(
                f"{path} holds folders ({', '.join(p.name for p in folders[:3])}), not frames: give one of them"
            )
        if others:
            raise InputError(f"{path} holds non-image entries ({', '.join(others[:3])}): give a folder of frames only")
        if not files:
            raise InputError(f"{path} holds no image frames")
        height, width = read_image(files[0]).shape[:2]
        source = VideoSource(path, fps or DEFAULT_FPS, width, height, size, max_frames, files, len(files))
    elif raw is not None or path.suffix.lower() in RAW_SUFFIXES:
        source = _probe_raw(path, size, max_frames, fps, raw)
    else:
        source = _probe_file(path, size, max_frames, fps)
    if size:
        source.crop_from = (source.height, source.width)
        source.width = source.height = size
    if max_frames is not None and source.frame_count_hint is not None:
        source.frame_count_hint = min(source.frame_count_hint, max_frames)
    return source


def _first_sequence(root: Path) -> Path:
    images = root / "JPEGImages"
    levels = sorted(p for p in images.iterdir() if p.is_dir())
    level = next((p for p in levels if p.name == "480p"), None)
    sequences = sorted(p for p in (level or images).iterdir() if p.is_dir())
    return sequences[0] if sequences else images / "480p" / "<sequence>"


def _probe_raw(path: Path, size: int | None, max_frames: int | None, fps: Fraction | None, raw: RawFormat | None) -> VideoSource:
    """A headerless file: its frame count follows from its length, which must be whole frames."""
    if raw is None:
        raise InputError(f"{path} is raw video: give its frame size with --raw-size WxH (and --pix-fmt, default yuv420p)")
    frame_bytes, length = raw.frame_bytes(), path.stat().st_size
    if length == 0 or length % frame_bytes:
        raise InputError(
            f"{path} is {length:,} bytes, not a whole number of {raw.width}x{raw.height} {raw.pix_fmt} frames "
            f"({frame_bytes:,} bytes each): check --raw-size and --pix-fmt"
        )
    fps = fps or DEFAULT_FPS
    return VideoSource(path, fps, raw.width, raw.height, size, max_frames, None, length // frame_bytes, raw)


def _probe_file(path: Path, size: int | None, max_frames: int | None, fps: Fraction | None) -> VideoSource:
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path} has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or DEFAULT_FPS
            width, height = stream.codec_context.width, stream.codec_context.height
            count = stream.frames or None
            # Decode one frame now so that a truncated or non-video file fails here, up front.
            first = next(container.decode(video=0), None)
    except av.FFmpegError as exc:
        raise InputError(f"cannot read {path} as video: {exc}") from None
    if first is None:
        raise InputError(f"{path} has no decodable frames")
    if not width or not height:
        width, height = first.width, first.height
    check_frame_size(width, height, path)
    return VideoSource(path, fps or Fraction(rate), width, height, size, max_frames, None, count)
