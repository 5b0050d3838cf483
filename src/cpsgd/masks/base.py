"""Interfaces and registries of the foreground stage: segmenters (frames -> masks) and mask codecs.

Masks are (N, H, W) uint8 label maps: 0 = background, 1..K = foreground objects.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from cpsgd.registry import Registry


class Segmenter(ABC):
    name: str

    @abstractmethod
    def segment(self, frames: np.ndarray) -> np.ndarray:
        """frames: (N, H, W, 3) uint8 RGB -> (N, H, W) uint8 labels."""


class MaskCodec(ABC):
    """Codes one GoP's mask video. ``decompress`` runs on a default-constructed instance:
    everything the decoder needs beyond the frame count and size is in the payload."""

    name: str
    code: int

    @abstractmethod
    def compress(self, masks: np.ndarray) -> bytes: ...

    @abstractmethod
    def decompress(self, data: bytes, num_frames: int, height: int, width: int) -> np.ndarray: ...


SEGMENTERS: Registry[Segmenter] = Registry("segmenter")
MASK_CODECS: Registry[MaskCodec] = Registry("mask codec")
