"""AVIF's AV1 picture without its HEIF boxes.

An AVIF file spends about 270 bytes on boxes (ftyp, meta, item properties) around the AV1
bitstream; at 1 KB per intra picture that is a quarter of the budget. This codec keeps only the
AV1 OBUs (sequence header + key frame), which carry size, subsampling and colour themselves, and
decodes them with dav1d. Pictures are encoded by libavif (through Pillow) as BT.601 full-range
4:2:0, which is what ``decode`` converts back.
"""

from __future__ import annotations

import errno
import io
import struct

import av
import cv2
import numpy as np
from PIL import Image

from cpsgd.bitstream.container import MAX_DIMENSION
from cpsgd.errors import BitstreamError
from cpsgd.intra.base import INTRA_CODECS, ImageCodec

# BT.601 full range, as libavif writes by default.
_KR, _KB = 0.299, 0.114


def _mdat_payload(avif: bytes) -> bytes:
    position = 0
    while position + 8 <= len(avif):
        size, kind = struct.unpack(">I4s", avif[position : position + 8])
        if kind == b"mdat":
            return avif[position + 8 : position + size]
        if size < 8:
            break
        position += size
    raise RuntimeError("libavif wrote no mdat box")


def _plane(frame: av.VideoFrame, index: int) -> np.ndarray:
    plane = frame.planes[index]
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width].astype(np.float32)


def yuv420_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    height, width = frame.height, frame.width
    luma = _plane(frame, 0)
    cb, cr = (cv2.resize(_plane(frame, i), (width, height), interpolation=cv2.INTER_LINEAR) - 128.0 for i in (1, 2))
    red = luma + 2 * (1 - _KR) * cr
    blue = luma + 2 * (1 - _KB) * cb
    green = (luma - _KR * red - _KB * blue) / (1 - _KR - _KB)
    return np.clip(np.rint(np.stack([red, green, blue], axis=-1)), 0, 255).astype(np.uint8)


@INTRA_CODECS.register("av1", code=2)
class Av1Codec(ImageCodec):
    """Encoded by libavif (AOM) at ``speed`` (0 slowest, 10 fastest) and ``tune`` (AOM's distortion
    metric for its decisions, None: libavif's default; "ssim" gives higher PSNR at 600-4000 bytes
    and higher MS-SSIM up to 1000, see benchmarks/intra_codecs.py); decoded by dav1d."""

    def __init__(self, speed: int = 6, tune: str | None = "ssim") -> None:
        self.speed = speed
        self.tune = tune

    def encode(self, image: np.ndarray, quality: int) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(image).save(
            buffer, "AVIF", quality=quality, speed=self.speed, max_threads=1, subsampling="4:2:0", range="full",
            **({} if self.tune is None else {"advanced": {"tune": self.tune}}),
        )
        return _mdat_payload(buffer.getvalue())

    def decode(self, data: bytes, max_size: tuple[int, int] | None = None) -> np.ndarray:
        if not data:
            raise BitstreamError("intra picture is empty")
        context = av.CodecContext.create("libdav1d", "r")
        # One thread: dav1d's worker threads can deadlock when a context is freed after an error
        # (found by the fuzz test), and a single intra picture gains nothing from them.
        context.thread_count = 1
        # dav1d refuses a larger frame from its sequence header, before allocating it
        max_width, max_height = max_size or (MAX_DIMENSION, MAX_DIMENSION)
        context.options = {"max_pixels": str(max_width * max_height)}
        try:
            frames = context.decode(av.Packet(data)) + context.decode(None)
        except (av.FFmpegError, ValueError) as exc:
            if getattr(exc, "errno", None) == errno.ERANGE:  # dav1d's answer past max_pixels
                raise BitstreamError(f"intra picture exceeds {max_width}x{max_height} pixels") from None
            raise BitstreamError(f"intra picture is corrupt: {exc}") from None
        if len(frames) != 1 or frames[0].format.name != "yuv420p":
            raise BitstreamError("intra picture is not one 8-bit 4:2:0 AV1 frame")
        if frames[0].width > max_width or frames[0].height > max_height:
            raise BitstreamError(f"intra picture of {frames[0].width}x{frames[0].height} exceeds {max_width}x{max_height}")
        return yuv420_to_rgb(frames[0])
