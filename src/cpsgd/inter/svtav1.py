"""SVT-AV1 through PyAV for the inter stage; decoded by dav1d.

Packets are the raw AV1 temporal units (no container: about 40 bytes a GoP less than IVF and
hundreds less than MP4). The encoder runs on one thread (``lp=1``), so the bytes are the same on
every run. Before decoding, the sequence header's largest frame size is checked against the
declared coded size, and dav1d is told the largest frame area it may allocate.
"""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np

from cpsgd.errors import BitstreamError
from cpsgd.inter.base import INTER_CODECS, VideoCodec

_OBU_SEQUENCE_HEADER = 1
SMALL_FRAME_PIXELS = 256 * 256


class _Bits:
    """MSB-first bit reader over one OBU's payload."""

    def __init__(self, data: bytes) -> None:
        self.data, self.position = data, 0

    def read(self, count: int) -> int:
        value = 0
        for _ in range(count):
            byte = self.position >> 3
            if byte >= len(self.data):
                raise BitstreamError("inter section: AV1 sequence header is truncated")
            value = value << 1 | (self.data[byte] >> (7 - (self.position & 7))) & 1
            self.position += 1
        return value


def _leb128(data: bytes, position: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        if position >= len(data):
            break
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, position
    raise BitstreamError("inter section: malformed AV1 OBU size")


def sequence_max_frame_size(packet: bytes) -> tuple[int, int]:
    """(max width, max height) from the sequence header OBU of the GoP's first temporal unit.
    Only the fields SVT-AV1 writes are accepted (no timing or decoder-model information)."""
    position = 0
    while position < len(packet):
        header = packet[position]
        kind, extension, has_size = header >> 3 & 0xF, header >> 2 & 1, header >> 1 & 1
        position += 1 + extension
        if not has_size:
            raise BitstreamError("inter section: AV1 OBU without a size field")
        size, position = _leb128(packet, position)
        if position + size > len(packet):
            raise BitstreamError("inter section: AV1 OBU overruns its packet")
        if kind == _OBU_SEQUENCE_HEADER:
            return _parse_sequence_header(packet[position : position + size])
        position += size
    raise BitstreamError("inter section: the first packet has no AV1 sequence header")


def _parse_sequence_header(payload: bytes) -> tuple[int, int]:
    bits = _Bits(payload)
    bits.read(3)  # seq_profile
    bits.read(1)  # still_picture
    if bits.read(1):  # reduced_still_picture_header
        bits.read(5)
    else:
        if bits.read(1):  # timing_info_present_flag
            raise BitstreamError("inter section: AV1 timing information is not supported")
        display_delay = bits.read(1)
        for _ in range(bits.read(5) + 1):  # operating points
            bits.read(12)  # operating_point_idc
            if bits.read(5) > 7:  # seq_level_idx
                bits.read(1)  # seq_tier
            if display_delay and bits.read(1):
                bits.read(4)
    width_bits, height_bits = bits.read(4) + 1, bits.read(4) + 1
    return bits.read(width_bits) + 1, bits.read(height_bits) + 1


@INTER_CODECS.register("svtav1", code=1)
class SvtAv1Codec(VideoCodec):
    """``preset``: SVT-AV1's speed (0 slowest .. 13 fastest; None: by frame size); ``quantiser`` is its CRF in quarter
    steps (SVT-AV1 takes fractional CRFs): a whole CRF step changes the size by 10-25% at these
    rates, too coarse to fill a budget. CRFs above 63 (SVT-AV1 takes up to 70) are not used: from
    63 to 64 blackswan at 192 px loses 0.026 MS-SSIM for 11% fewer bytes, where a coarser
    downscale at a lower CRF does far better."""

    min_quantiser = 4
    max_quantiser = 252
    quantiser_step = 4

    def __init__(self, preset: int | None = None) -> None:
        self.preset = preset

    def preset_for(self, width: int, height: int) -> int:
        """The given preset, else by frame area: preset 4 (3-4% smaller than 6 at equal quality)
        where a frame is at most 256x256, which is where the budgets below 0.01 BPP of a 512x512
        clip code it; preset 6 (2x faster) above."""
        if self.preset is not None:
            return self.preset
        return 4 if width * height <= SMALL_FRAME_PIXELS else 6

    def encode(self, frames: np.ndarray, quantiser: int) -> list[bytes]:
        # SVT-AV1 prints its settings on stderr at every encoder start unless its log level, read
        # from the environment only, says errors alone (a user's own setting is kept).
        os.environ.setdefault("SVT_LOG", "1")
        context = av.CodecContext.create("libsvtav1", "w")
        context.width, context.height, context.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        context.time_base, context.framerate = Fraction(1, 25), Fraction(25)  # timing is not sent
        context.options = {"preset": str(self.preset_for(frames.shape[2], frames.shape[1])), "svtav1-params": f"lp=1:crf={quantiser / 4:g}"}
        packets: list[bytes] = []
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuv420p")
            frame.pts = index
            packets.extend(bytes(p) for p in context.encode(frame))
        packets.extend(bytes(p) for p in context.encode(None))
        if len(packets) != len(frames):
            raise RuntimeError(f"SVT-AV1 wrote {len(packets)} packets for {len(frames)} frames")
        return packets

    def decode(self, packets: list[bytes], width: int, height: int) -> np.ndarray:
        max_width, max_height = sequence_max_frame_size(packets[0])
        if max_width > width or max_height > height:
            raise BitstreamError(
                f"inter section: AV1 frames up to {max_width}x{max_height} in a {width}x{height} stream"
            )
        context = av.CodecContext.create("libdav1d", "r")
        context.thread_count = 1  # see Av1Codec.decode: dav1d's threads can deadlock after errors
        context.options = {"max_pixels": str(width * height)}
        frames = []
        try:
            for packet in packets:
                frames.extend(context.decode(av.Packet(packet)))
            frames.extend(context.decode(None))
        except (av.FFmpegError, ValueError) as exc:
            raise BitstreamError(f"inter section is corrupt: {exc}") from None
        if len(frames) != len(packets):
            raise BitstreamError(f"inter section: {len(frames)} frames decoded from {len(packets)} packets")
        if any(f.width != width or f.height != height or f.format.name != "yuv420p" for f in frames):
            raise BitstreamError("inter section: decoded frames are not 8-bit 4:2:0 at the declared size")
        return np.stack([f.to_ndarray(format="rgb24") for f in frames])
