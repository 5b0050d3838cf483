"""AVIF and WebP through Pillow's built-in plugins."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from cpsgd.bitstream.container import MAX_DIMENSION
from cpsgd.errors import BitstreamError
from cpsgd.intra.base import INTRA_CODECS, ImageCodec


def _decode_with_pillow(data: bytes, expected_format: str, max_size: tuple[int, int] | None) -> np.ndarray:
    max_width, max_height = max_size or (MAX_DIMENSION, MAX_DIMENSION)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[expected_format]) as image:
                # Check the declared size before any pixel is allocated.
                if image.width > max_width or image.height > max_height:
                    raise BitstreamError(f"intra image of {image.width}x{image.height} exceeds {max_width}x{max_height}")
                return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError, RuntimeError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise BitstreamError(f"intra image is corrupt: {exc}") from None


@INTRA_CODECS.register("avif", code=0)
class AvifCodec(ImageCodec):
    """AV1 still images (libavif via Pillow). ``speed`` trades encode time for size (0 slowest)."""

    def __init__(self, speed: int = 4) -> None:
        self.speed = speed

    def encode(self, image: np.ndarray, quality: int) -> bytes:
        buffer = io.BytesIO()
        # One thread keeps the output bytes independent of the machine.
        Image.fromarray(image).save(buffer, "AVIF", quality=quality, speed=self.speed, max_threads=1)
        return buffer.getvalue()

    def decode(self, data: bytes, max_size: tuple[int, int] | None = None) -> np.ndarray:
        return _decode_with_pillow(data, "AVIF", max_size)


@INTRA_CODECS.register("webp", code=1)
class WebpCodec(ImageCodec):
    def encode(self, image: np.ndarray, quality: int) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "WEBP", quality=quality, method=6)
        return buffer.getvalue()

    def decode(self, data: bytes, max_size: tuple[int, int] | None = None) -> np.ndarray:
        return _decode_with_pillow(data, "WEBP", max_size)
