"""Standard-codec anchors (x264, x265, SVT-AV1) through PyAV's bundled FFmpeg, tuned for extreme rates.

Each anchor point is one (codec, encoded size, rate-control mode, value) setting. Frames are
downscaled to the encoded size, coded, decoded and upscaled back, so that a user squeezing a
codec by lowering the resolution is part of its operational rate-distortion hull. Bits are the
raw elementary stream (the sum of packet sizes, no container), as for cpsgd's own bitstream.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from fractions import Fraction

import av
import numpy as np

from cpsgd.errors import InputError
from cpsgd.inter.base import resize_frames

ANCHOR_CODECS = ("x264", "x265", "svtav1")
# FFmpeg encoder, decoder and elementary-stream format of each anchor.
_ENCODER = {"x264": "libx264", "x265": "libx265", "svtav1": "libsvtav1"}
_DECODER = {"x264": "h264", "x265": "hevc", "svtav1": "libdav1d"}
# Encode sizes as fractions of the working size: 512, 384, 256, 192, 160 and 128 at 512 (160
# fills the widest rate gap of the front near 0.003 BPP).
DEFAULT_SCALE_FRACTIONS = (1.0, 0.75, 0.5, 0.375, 0.3125, 0.25)


def scales_for(size: int) -> tuple[int, ...]:
    """The default anchor encode sizes for a working size (even, at least 16, no repeats)."""
    return tuple(dict.fromkeys(max(16, round(size * f / 2) * 2) for f in DEFAULT_SCALE_FRACTIONS))


DEFAULT_SCALES = scales_for(512)


@dataclass(frozen=True)
class AnchorSetting:
    """One anchor operating point. ``rc`` is "crf" or "qp" (constant quantiser)."""

    codec: str
    scale: int
    rc: str
    value: int

    @property
    def key(self) -> str:
        return f"{self.codec}-{self.scale}-{self.rc}{self.value}"

    def encoder_options(self) -> dict[str, str]:
        """The FFmpeg encoder options of this setting (recorded in the results)."""
        if self.codec == "x264":
            # x264 only reaches these rates at qp above 51, which it accepts through x264-params.
            params = "ipratio=1.0:pbratio=1.0:bframes=8:aq-mode=0"
            opts = {"preset": "veryslow"}
            if self.rc == "crf":
                opts["crf"] = str(self.value)
            else:
                params += f":qp={self.value}"
            opts["x264-params"] = params
            return opts
        if self.codec == "x265":
            # info=0 drops the ~2 KB settings SEI that otherwise sets a floor near 0.005 BPP.
            params = "info=0:log-level=error:bframes=8"
            if self.rc == "crf":
                params += f":crf={self.value}"
            else:
                params += (
                    f":qp={self.value}:ipratio=1:pbratio=1:cbqpoffs=12:crqpoffs=12:no-sao=1"
                )
            return {"preset": "veryslow", "x265-params": params}
        if self.codec == "svtav1":
            if self.rc == "crf":
                return {"preset": "4", "crf": str(self.value)}
            # Constant qindex with no key-frame boost is the only way below ~0.003 BPP.
            return {
                "preset": "4",
                "svtav1-params": (
                    f"rc=0:qp={self.value}:aq-mode=0:enable-qm=0:"
                    "use-fixed-qindex-offsets=1:key-frame-qindex-offset=0"
                ),
            }
        raise InputError(f"unknown anchor codec {self.codec!r}; choose one of {ANCHOR_CODECS}")


@dataclass
class AnchorResult:
    setting: AnchorSetting
    bits: int
    frames: np.ndarray  # decoded, upscaled back to the source size, (N, H, W, 3) uint8
    options: dict[str, str] = field(default_factory=dict)

    def record(self) -> dict:
        return {**asdict(self.setting), "key": self.setting.key, "options": self.options}


def default_ladder(codec: str, scales: tuple[int, ...] = DEFAULT_SCALES) -> list[AnchorSetting]:
    """The settings that cover 0.0005-0.02 BPP on 512x512 25-frame clips (measured on DAVIS);
    ``scales``: the encode sizes (``scales_for`` the working size)."""
    rate_points = {
        "x264": [("crf", 35), ("crf", 40), ("crf", 45), ("crf", 51), ("qp", 57), ("qp", 63), ("qp", 69)],
        "x265": [("crf", 35), ("crf", 40), ("crf", 45), ("crf", 51), ("qp", 51)],
        # crf 59 and 61 fill the gap between crf 55 and 63 (a factor 2-3 in rate at one size).
        "svtav1": [("crf", 50), ("crf", 55), ("crf", 59), ("crf", 61), ("crf", 63), ("qp", 63)],
    }
    if codec not in rate_points:
        raise InputError(f"unknown anchor codec {codec!r}; choose one of {ANCHOR_CODECS}")
    if codec == "x265":
        scales = tuple(s for s in scales if s >= 64)  # its CTU size (see encode_decode)
    return [AnchorSetting(codec, s, rc, v) for s in scales for rc, v in rate_points[codec]]


def encode_decode(frames: np.ndarray, fps: float, setting: AnchorSetting) -> AnchorResult:
    """Code ``frames`` (N, H, W, 3) uint8 RGB with one anchor setting; return bits and decoded frames."""
    n, height, width, _ = frames.shape
    size = setting.scale
    # Encoded size keeps the aspect ratio, even dimensions for 4:2:0.
    enc_w = max(16, round(width * size / max(height, width) / 2) * 2)
    enc_h = max(16, round(height * size / max(height, width) / 2) * 2)
    if setting.codec == "x265" and min(enc_w, enc_h) < 64:
        # Seen here: libx265 aborts the process (heap corruption) on 48x48 frames.
        raise InputError(f"{setting.key}: x265 needs frames of at least 64x64 (its CTU size)")
    options = setting.encoder_options()

    enc = av.CodecContext.create(_ENCODER[setting.codec], "w")
    enc.width, enc.height, enc.pix_fmt = enc_w, enc_h, "yuv420p"
    rate = Fraction(fps).limit_denominator(1001)
    enc.time_base = 1 / rate
    enc.framerate = rate
    enc.options = options
    packets: list[av.Packet] = []
    for i, small in enumerate(resize_frames(frames, enc_w, enc_h)):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(small), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = i
        packets.extend(enc.encode(frame))
    packets.extend(enc.encode(None))
    payloads = [bytes(p) for p in packets]
    if setting.codec == "x264":
        payloads = [strip_h264_sei(p) for p in payloads]
    bits = 8 * sum(len(p) for p in payloads)

    dec = av.CodecContext.create(_DECODER[setting.codec], "r")
    decoded: list[np.ndarray] = []
    for payload in payloads:
        decoded.extend(f.to_ndarray(format="rgb24") for f in dec.decode(av.Packet(payload)))
    decoded.extend(f.to_ndarray(format="rgb24") for f in dec.decode(None))
    if len(decoded) != n:
        raise RuntimeError(f"{setting.key}: decoded {len(decoded)} frames, expected {n}")
    return AnchorResult(setting, bits, resize_frames(np.stack(decoded), width, height), options)


_START_CODE = re.compile(b"\x00\x00\x01")


def strip_h264_sei(annexb: bytes) -> bytes:
    """Drop SEI NAL units (type 6) from an Annex-B H.264 packet.

    x264 always writes its settings as a ~0.7 KB SEI that no decoder needs and that it cannot be
    told to omit (x265's ``info=0`` does the same); leaving it in would set a false rate floor.
    Emulation prevention guarantees a start code never occurs inside a NAL unit.
    """
    starts = [m.start() for m in _START_CODE.finditer(annexb)]
    kept = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(annexb)
        # A 4-byte start code shows up as a trailing zero of the previous unit; keep it attached.
        nal_type = annexb[start + 3] & 0x1F if start + 3 < len(annexb) else None
        if nal_type != 6:
            kept.append(annexb[start:end])
    return annexb[: starts[0]] + b"".join(kept) if starts else annexb


def library_versions() -> dict[str, str]:
    """PyAV and FFmpeg library versions, recorded with every anchor result."""
    versions = {"pyav": av.__version__}
    versions.update({k: ".".join(map(str, v)) for k, v in av.library_versions.items()})
    return versions
