"""Meeting a byte budget: search the image codec's quality and a downscale factor together.

At extreme rates a downscaled picture coded at a higher quality, upsampled by the decoder, beats
the full-size picture at the codec's lowest quality; the search finds that by scoring every
candidate the way the decoder will see it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from cpsgd.bitstream.bytes import ByteReader, ByteWriter
from cpsgd.bitstream.container import MAX_DIMENSION
from cpsgd.errors import BitstreamError
from cpsgd.intra.base import INTRA_CODECS, ImageCodec
from cpsgd.quality import psnr

DEFAULT_SCALES = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
FILL_STEPS = (1.015, 1.03, 1.045, 1.06, 1.08)  # picture growth tried by ``IntraSearch.fill``


@dataclass
class IntraResult:
    payload: bytes  # the intra section's payload
    codec_code: int
    quality: int
    scale: float
    psnr: float
    _decoded: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def decoded(self) -> np.ndarray:
        """What the decoder will reconstruct (full size). Decoded again on first use rather than
        kept from the search: a search tries hundreds of candidates, and a full-size picture for
        each of them would cost hundreds of MB at 720p."""
        if self._decoded is None:
            self._decoded = decode_intra(self.payload, self.codec_code)
        return self._decoded


def resample(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrinking = width < image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def intra_payload(width: int, height: int, coded: bytes) -> bytes:
    """The intra section's payload: the output size, then the coded picture."""
    writer = ByteWriter()
    writer.varint(width)
    writer.varint(height)
    writer.raw(coded)
    return writer.getvalue()


def decode_intra(payload: bytes, backend: int, max_size: tuple[int, int] | None = None) -> np.ndarray:
    """The intra picture at the size its section declares; ``max_size`` (width, height) bounds
    that size (the stream's frame or mosaic), checked before anything is decoded."""
    reader = ByteReader(payload, "intra section")
    width = reader.varint(MAX_DIMENSION)
    height = reader.varint(MAX_DIMENSION)
    if not width or not height:
        raise BitstreamError("intra section: zero image size")
    if max_size is not None and (width > max_size[0] or height > max_size[1]):
        raise BitstreamError(f"intra section: picture of {width}x{height} exceeds {max_size[0]}x{max_size[1]}")
    image = INTRA_CODECS.by_code(backend)().decode(reader.rest(), (width, height))
    if image.shape[0] > height or image.shape[1] > width:
        raise BitstreamError("intra section: coded image larger than its output size")
    return resample(image, width, height)


class IntraSearch:
    """Budgeted coding of one image, remembering every (scale, quality) it has coded: the rate
    control asks for the same image under several budgets, which then share most encodes."""

    def __init__(
        self,
        image: np.ndarray,
        codec_name: str = "av1",
        scales: tuple[float, ...] = DEFAULT_SCALES,
        codec: ImageCodec | None = None,
    ) -> None:
        """``codec``: an instance to use instead of the registry's default (e.g. faster settings)."""
        self.image = image
        self.codec = codec or INTRA_CODECS.get(codec_name)()
        self.scales = tuple(sorted(scales, reverse=True))  # coarsest first
        self._small: dict[float, np.ndarray] = {}
        self._coded: dict[tuple[float, int], IntraResult] = {}

    def candidate(self, scale: float, quality: int) -> IntraResult:
        key = (scale, quality)
        if key not in self._coded:
            height, width = self.image.shape[:2]
            if scale not in self._small:
                # at least 8 px a side (the image codecs' blocks), never more than the picture
                small = (min(width, max(8, round(width / scale))), min(height, max(8, round(height / scale))))
                self._small[scale] = resample(self.image, *small)
            coded = self.codec.encode(self._small[scale], quality)
            decoded = resample(self.codec.decode(coded), width, height)
            payload = intra_payload(width, height, coded)
            self._coded[key] = IntraResult(payload, self.codec.code, quality, scale, psnr(self.image, decoded))
        return self._coded[key]

    def _best_quality_within(self, scale: float, budget_bytes: int) -> tuple[IntraResult | None, IntraResult]:
        """Binary search for the highest quality whose payload fits (size grows with quality).
        Returns (best fitting candidate or None, the lowest-quality candidate tried)."""
        low, high = self.codec.min_quality, self.codec.max_quality
        found: IntraResult | None = None
        lowest: IntraResult | None = None
        # start from what earlier budgets learnt at this scale: sizes bracket the answer
        for (s, quality), known in sorted(self._coded.items()):
            if s != scale:
                continue
            if lowest is None:
                lowest = known
            if len(known.payload) <= budget_bytes and quality >= low:
                found, low = known, quality + 1
            elif len(known.payload) > budget_bytes and quality <= high:
                high = quality - 1
        while low <= high:
            candidate = self.candidate(scale, (low + high) // 2)
            if lowest is None or candidate.quality < lowest.quality:
                lowest = candidate
            if len(candidate.payload) <= budget_bytes:
                found, low = candidate, candidate.quality + 1
            else:
                high = candidate.quality - 1
        assert lowest is not None
        return found, lowest

    def within(self, budget_bytes: int, scales: tuple[float, ...] | None = None) -> IntraResult:
        """Scales are tried from the coarsest up, each at its highest fitting quality, and the
        search stops once a finer scale looks worse (quality over scale has one peak). If nothing
        fits, the smallest candidate is returned and the caller sees its size. ``scales``
        restricts the search (e.g. to a scale a faster search has chosen)."""
        best: IntraResult | None = None
        smallest: IntraResult | None = None
        for scale in self.scales if scales is None else tuple(sorted(scales, reverse=True)):
            found, lowest = self._best_quality_within(scale, budget_bytes)
            if smallest is None or len(lowest.payload) < len(smallest.payload):
                smallest = lowest
            if found is None:
                break  # a finer scale costs even more bytes
            if best is not None and found.psnr <= best.psnr:
                if best.quality < self.codec.max_quality:
                    break
                continue  # the coarser picture is at the codec's best quality: finer may yet win
            best = found
        assert smallest is not None
        return best or smallest

    def fill(self, result: IntraResult, budget_bytes: int) -> IntraResult:
        """Spend what a quality step leaves of the budget: the same quality on a slightly larger
        picture (a finer downscale factor; the decoder resamples any size), the largest that fits.
        Sizes do not grow smoothly with the picture, so every step is tried."""
        best = result
        for growth in FILL_STEPS:
            scale = result.scale / growth
            if scale < 1.0:
                break
            candidate = self.candidate(scale, result.quality)
            if len(candidate.payload) <= budget_bytes:
                best = candidate
        return best


def encode_intra(
    image: np.ndarray,
    codec_name: str = "av1",
    budget_bytes: int | None = None,
    quality: int | None = None,
    scales: tuple[float, ...] = DEFAULT_SCALES,
) -> IntraResult:
    """Code ``image`` at a fixed ``quality`` (at the smallest scale factor given), or within
    ``budget_bytes`` (see ``IntraSearch.within``)."""
    search = IntraSearch(image, codec_name, scales)
    if budget_bytes is None:
        codec = search.codec
        return search.candidate(min(scales), codec.max_quality if quality is None else quality)
    return search.within(budget_bytes)
