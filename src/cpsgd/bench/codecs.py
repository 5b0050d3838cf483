"""The codecs a benchmark compares, each as a list of operating points that code a clip for real.

- ``cpsgd``: the full pipeline at each target BPP (``encode_frames`` then ``decode_bytes``);
- ``hold``: the same bitstream decoded with the ``hold`` generator (ablation: no motion model);
- ``intra``: every frame intra-coded at the same budget, no poses or masks (ablation);
- ``x264``, ``x265``, ``svtav1``: the tuned anchors of ``cpsgd.bench.anchors``.

Every point reports the exact bits it wrote, its decoded frames and every setting it used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from cpsgd.bench.anchors import (
    ANCHOR_CODECS,
    DEFAULT_SCALES,
    AnchorSetting,
    default_ladder,
    encode_decode,
)
from cpsgd.errors import InputError

CPSGD_CODECS = ("cpsgd", "hold", "intra")
ALL_CODECS = CPSGD_CODECS + ANCHOR_CODECS
DEFAULT_CODECS = ("cpsgd", "hold", "x264", "x265", "svtav1")
DEFAULT_TARGETS = (0.0015, 0.002, 0.003, 0.005, 0.01)


@dataclass
class Coded:
    bits: int
    frames: np.ndarray  # (N, H, W, 3) uint8, decoded at the source size
    settings: dict
    parts: dict[str, int] = field(default_factory=dict)  # bits per bitstream part (cpsgd only)
    gop_starts: list[int] | None = None  # first frame of each GoP (cpsgd only)


@dataclass(frozen=True)
class Point:
    codec: str
    key: str
    run: Callable[[np.ndarray, float], Coded]


def stream_parts(data: bytes) -> tuple[dict[str, int], list[int]]:
    """Bits per part of a .cpsgd stream (the paper's Table 1 columns) and the first frame of each
    GoP, read from the stream itself; headers, lengths and CRCs are counted as ``container``."""
    from cpsgd.bitstream.container import BitstreamReader

    reader = BitstreamReader.from_bytes(data)
    parts: dict[str, int] = {}
    starts, frame = [], 0
    for gop in reader.gops():
        starts.append(frame)
        frame += gop.num_frames
        for section in gop.sections:
            parts[section.type.part] = parts.get(section.type.part, 0) + 8 * len(section.payload)
    parts["container"] = 8 * len(data) - sum(parts.values())
    return parts, starts


def _cpsgd_point(codec: str, target: float, generator: str, options: tuple[tuple[str, str], ...] = (), gop: int | None = None) -> Point:
    def run(frames: np.ndarray, fps: float) -> Coded:
        from cpsgd.pipeline import EncoderConfig, decode_bytes, encode_frames

        if codec == "intra":
            config = EncoderConfig(bpp=target, gop=1)
            decoder = "hold"
        else:
            made_for = "diffusion" if generator == "diffusion" and codec != "hold" else "warp"
            longest = {"gop": gop} if gop is not None else {}
            config = EncoderConfig(bpp=target, pose_estimator="flow", segmenter="motion", generator=made_for, **longest)
            decoder = "hold" if codec == "hold" else generator
        data = encode_frames(frames, fps, config)
        decoded = decode_bytes(data, decoder, **(dict(options) if decoder == generator else {}))
        settings = {"target_bpp": target, "generator": decoder, "config": asdict(config)}
        parts, starts = stream_parts(data)
        return Coded(8 * len(data), decoded, settings, parts, starts)

    suffix = f"-gop{gop}" if gop is not None and codec != "intra" else ""
    return Point(codec, f"{codec}-bpp{target:g}{suffix}", run)


def _anchor_point(setting: AnchorSetting) -> Point:
    def run(frames: np.ndarray, fps: float) -> Coded:
        result = encode_decode(frames, fps, setting)
        return Coded(result.bits, result.frames, result.record())

    return Point(setting.codec, setting.key, run)


def codec_points(
    codec: str,
    targets: tuple[float, ...] = DEFAULT_TARGETS,
    generator: str = "warp",
    anchor_settings: list[AnchorSetting] | None = None,
    scales: tuple[int, ...] = DEFAULT_SCALES,
    generator_options: tuple[tuple[str, str], ...] = (),
    gop: int | None = None,
) -> list[Point]:
    """The operating points of one codec: cpsgd variants at ``targets`` (``gop``: cpsgd's longest
    GoP, None for the encoder's default), anchors over their ladder."""
    if codec in CPSGD_CODECS:
        return [_cpsgd_point(codec, t, generator, generator_options, gop) for t in targets]
    if codec in ANCHOR_CODECS:
        settings = anchor_settings if anchor_settings is not None else default_ladder(codec, scales)
        return [_anchor_point(s) for s in settings if s.codec == codec]
    raise InputError(f"unknown codec {codec!r}; choose from: {', '.join(ALL_CODECS)}")
