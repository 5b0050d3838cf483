"""Meeting a byte budget: search the image codec's quality and a downscale factor together.

At extreme rates a downscaled picture coded at a higher quality, upsampled by the decoder, beats
the full-size picture at the codec's lowest quality; the search finds that by scoring every
candidate the way the decoder will see it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from cpsgd.bitstream.bytes import ByteReader, ByteWriter
from cpsgd.bitstream.container import MAX_DIMENSION
from cpsgd.errors import BitstreamError
from cpsgd.intra.base import INTRA_CODECS, ImageCodec

DEFAULT_SCALES = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


@dataclass(frozen=True)
class IntraResult:
    payload: bytes      # the intra section's payload
    decoded: np.ndarray  # what the decoder will reconstruct (full size)
    quality: int
    scale: float
    psnr: float


def resample(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrinking = width < image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _payload(width: int, height: int, coded: bytes) -> bytes:
    writer = ByteWriter()
    writer.varint(width)
    writer.varint(height)
    writer.raw(coded)
    return writer.getvalue()


def decode_intra(payload: bytes, backend: int) -> np.ndarray:
    reader = ByteReader(payload, "intra section")
    width = reader.varint(MAX_DIMENSION)
    height = reader.varint(MAX_DIMENSION)
    if not width or not height:
        raise BitstreamError("intra section: zero image size")
    image = INTRA_CODECS.by_code(backend)().decode(reader.rest())
    if image.shape[0] > height or image.shape[1] > width:
        raise BitstreamError("intra section: coded image larger than its output size")
    return resample(image, width, height)


def _candidate(codec: ImageCodec, image: np.ndarray, small: np.ndarray, quality: int, scale: float) -> IntraResult:
    height, width = image.shape[:2]
    coded = codec.encode(small, quality)
    decoded = resample(codec.decode(coded), width, height)
    return IntraResult(_payload(width, height, coded), decoded, quality, scale, psnr(image, decoded))


def encode_intra(
    image: np.ndarray,
    codec_name: str = "avif",
    budget_bytes: int | None = None,
    quality: int | None = None,
    scales: tuple[float, ...] = DEFAULT_SCALES,
) -> IntraResult:
    """Code ``image``. With a fixed ``quality`` only the first scale is used; with a budget, every
    scale's highest quality that fits is tried and the best-looking (PSNR) one kept. If nothing
    fits, the smallest candidate is returned (the caller sees its size)."""
    codec = INTRA_CODECS.get(codec_name)()
    height, width = image.shape[:2]
    best: IntraResult | None = None
    smallest: IntraResult | None = None
    for scale in scales if budget_bytes is not None else scales[:1]:
        small = resample(image, max(1, round(width / scale)), max(1, round(height / scale)))
        if min(small.shape[:2]) < 8:
            break
        if budget_bytes is None:
            return _candidate(codec, image, small, codec.max_quality if quality is None else quality, scale)
        low, high = codec.min_quality, codec.max_quality
        found: IntraResult | None = None
        while low <= high:  # largest quality whose payload fits (size grows with quality)
            mid = (low + high) // 2
            candidate = _candidate(codec, image, small, mid, scale)
            if len(candidate.payload) <= budget_bytes:
                found, low = candidate, mid + 1
            else:
                high = mid - 1
                if mid == codec.min_quality and (smallest is None or len(candidate.payload) < len(smallest.payload)):
                    smallest = candidate
        if found is not None and (best is None or found.psnr > best.psnr):
            best = found
    if best is not None:
        return best
    if smallest is None:
        raise ValueError("image too small to code")
    return smallest
