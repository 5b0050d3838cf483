"""Image codecs used for intra pictures."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from cpsgd.registry import Registry


class ImageCodec(ABC):
    """An image format with one quality knob. Higher quality = more bytes."""

    name: str
    code: int
    min_quality: int = 0
    max_quality: int = 100

    @abstractmethod
    def encode(self, image: np.ndarray, quality: int) -> bytes:
        """(H, W, 3) uint8 RGB -> coded bytes."""

    @abstractmethod
    def decode(self, data: bytes, max_size: tuple[int, int] | None = None) -> np.ndarray:
        """Coded bytes -> (H, W, 3) uint8 RGB; raises BitstreamError on bad data, and on a picture
        wider or taller than ``max_size`` (width, height) before its pixels are allocated."""


INTRA_CODECS: Registry[ImageCodec] = Registry("intra codec")
