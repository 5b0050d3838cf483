"""Inter stage: a GoP coded as a conventional video (every frame, motion-compensated by a real
codec) instead of an intra picture the generator transports. The rate control falls back on it
where the warp cannot follow the content and the budget can pay for a video.

The section payload is codec-independent framing around the codec's packets::

    inter = coded_width varint | coded_height varint | num_packets varint | (length varint | packet)*

The decoder resizes the coded frames to the stream's frame size. Every declared size is checked
against the stream header before a packet reaches the codec.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import cv2
import numpy as np

from cpsgd.bitstream.bytes import ByteReader, ByteWriter
from cpsgd.errors import BitstreamError
from cpsgd.registry import Registry

MIN_CODED_SIDE = 16  # the smallest frame side the codecs code


class VideoCodec(ABC):
    """A video codec with one rate knob, ``quantiser``: higher = fewer bytes. A search steps by
    ``quantiser_step`` first, then by one near the answer."""

    name: str
    code: int
    min_quantiser: int
    max_quantiser: int
    quantiser_step: int = 1

    @abstractmethod
    def encode(self, frames: np.ndarray, quantiser: int) -> list[bytes]:
        """(N, h, w, 3) uint8 RGB (already at the coded size) -> one packet per frame."""

    @abstractmethod
    def decode(self, packets: list[bytes], width: int, height: int) -> np.ndarray:
        """Packets of frames declared ``width`` x ``height`` -> (len(packets), height, width, 3)
        uint8 RGB; raises BitstreamError on bad data or frames of another size."""


INTER_CODECS: Registry[VideoCodec] = Registry("inter codec")


def coded_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The frame size coded at downscale factor ``scale``: even sides (4:2:0) no larger than the
    frame's, at least 16 (frames with a side under 16 are not coded as video)."""
    return tuple(max(MIN_CODED_SIDE, int(side / scale) // 2 * 2) for side in (width, height))  # type: ignore[return-value]


def resize_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area filter down, bicubic up (as the anchors of ``cpsgd bench`` do)."""
    if frames.shape[1:3] == (height, width):
        return frames
    method = cv2.INTER_AREA if width < frames.shape[2] else cv2.INTER_CUBIC
    return np.stack([cv2.resize(f, (width, height), interpolation=method) for f in frames])


def pack_inter(width: int, height: int, packets: list[bytes]) -> bytes:
    writer = ByteWriter()
    writer.varint(width)
    writer.varint(height)
    writer.varint(len(packets))
    for packet in packets:
        writer.blob(packet)
    return writer.getvalue()


def unpack_inter(payload: bytes, num_frames: int, width: int, height: int) -> tuple[int, int, list[bytes]]:
    """(coded width, coded height, packets), each size checked against the GoP's ``num_frames``
    and the stream's ``width`` x ``height`` before anything is decoded."""
    reader = ByteReader(payload, "inter section")
    coded_width, coded_height = reader.varint(width), reader.varint(height)
    if min(coded_width, coded_height) < min(MIN_CODED_SIDE, width, height) or coded_width % 2 or coded_height % 2:
        raise BitstreamError(f"inter section: coded size {coded_width}x{coded_height} is out of range")
    count = reader.varint(num_frames)
    if count != num_frames:
        raise BitstreamError(f"inter section: {count} packets for a GoP of {num_frames} frames")
    packets = [reader.blob() for _ in range(count)]
    reader.expect_end()
    if not all(packets):
        raise BitstreamError("inter section: empty packet")
    return coded_width, coded_height, packets


def decode_inter(payload: bytes, backend: int, num_frames: int, width: int, height: int) -> np.ndarray:
    """The GoP's (num_frames, height, width, 3) frames."""
    coded_width, coded_height, packets = unpack_inter(payload, num_frames, width, height)
    frames = INTER_CODECS.by_code(backend)().decode(packets, coded_width, coded_height)
    return resize_frames(frames, width, height)


@dataclass
class InterResult:
    payload: bytes  # the inter section's payload
    codec_code: int
    quantiser: int
    scale: float
    score: float  # the search's score of the decoded frames (higher is better)
    frames: np.ndarray  # decoded at full size
