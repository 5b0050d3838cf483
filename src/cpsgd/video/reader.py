"""Lazy frame readers. Frames come out as (H, W, 3) uint8 RGB, one at a time, so memory does not
grow with the length of the video."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from cpsgd.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
DEFAULT_FPS = Fraction(25)


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


def read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                return to_rgb8(np.asarray(image, dtype=np.int32))
            if image.mode not in ("RGB", "L", "LA", "RGBA"):
                image = image.convert("RGBA" if "A" in image.mode else "RGB")
            return to_rgb8(np.asarray(image))
    except (OSError, UnidentifiedImageError, ValueError) as exc:
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
    frame_count_hint: int | None = None  # from the container; may be absent or approximate
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
            with av.open(str(self.path)) as container:
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


def open_video(
    path: str | Path, size: int | None = None, max_frames: int | None = None, fps: Fraction | None = None
) -> VideoSource:
    """Open a video file (anything FFmpeg reads, .y4m included) or a folder of image frames
    (sorted by name; non-image files are rejected). ``fps`` overrides the rate of a frame folder."""
    path = Path(path)
    if size is not None and not 8 <= size <= 8192:
        raise InputError(f"--size {size} is out of range (8 to 8192)")
    if max_frames is not None and max_frames < 1:
        raise InputError("the frame limit must be at least 1")
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        others = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES or not p.is_file()]
        if others:
            raise InputError(f"{path} holds non-image entries ({', '.join(others[:3])}): give a folder of frames only")
        if not files:
            raise InputError(f"{path} holds no image frames")
        height, width = read_image(files[0]).shape[:2]
        source = VideoSource(path, fps or DEFAULT_FPS, width, height, size, max_frames, files, len(files))
    else:
        source = _probe_file(path, size, max_frames, fps)
    if size:
        source.crop_from = (source.height, source.width)
        source.width = source.height = size
    return source


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
    return VideoSource(path, fps or Fraction(rate), width, height, size, max_frames, None, count)
