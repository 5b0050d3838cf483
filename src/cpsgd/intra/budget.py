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


def _best_quality_within(
    codec: ImageCodec, image: np.ndarray, small: np.ndarray, scale: float, budget_bytes: int
) -> tuple[IntraResult | None, IntraResult]:
    """Binary search for the highest quality whose payload fits (size grows with quality).
    Returns (best fitting candidate or None, the lowest-quality candidate tried)."""
    low, high = codec.min_quality, codec.max_quality
    found: IntraResult | None = None
    lowest: IntraResult | None = None
    while low <= high:
        candidate = _candidate(codec, image, small, (low + high) // 2, scale)
        if lowest is None or candidate.quality < lowest.quality:
            lowest = candidate
        if len(candidate.payload) <= budget_bytes:
            found, low = candidate, candidate.quality + 1
        else:
            high = candidate.quality - 1
    assert lowest is not None
    return found, lowest


def encode_intra(
    image: np.ndarray,
    codec_name: str = "av1",
    budget_bytes: int | None = None,
    quality: int | None = None,
    scales: tuple[float, ...] = DEFAULT_SCALES,
) -> IntraResult:
    """Code ``image`` at a fixed ``quality`` (at the smallest scale factor given), or within
    ``budget_bytes``: scales are tried from the coarsest up, each at its highest fitting quality,
    and the search stops once a finer scale looks worse (quality over scale has one peak). If
    nothing fits, the smallest candidate is returned and the caller sees its size."""
    codec = INTRA_CODECS.get(codec_name)()
    height, width = image.shape[:2]

    def downscaled(scale: float) -> np.ndarray:
        return resample(image, max(8, round(width / scale)), max(8, round(height / scale)))

    if budget_bytes is None:
        scale = min(scales)
        return _candidate(codec, image, downscaled(scale), codec.max_quality if quality is None else quality, scale)
    best: IntraResult | None = None
    smallest: IntraResult | None = None
    for scale in sorted(scales, reverse=True):
        found, lowest = _best_quality_within(codec, image, downscaled(scale), scale, budget_bytes)
        if smallest is None or len(lowest.payload) < len(smallest.payload):
            smallest = lowest
        if found is None:
            break  # a finer scale costs even more bytes
        if best is not None and found.psnr <= best.psnr:
            break
        best = found
    assert smallest is not None
    return best or smallest
