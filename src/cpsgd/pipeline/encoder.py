"""The encoder: per GoP, run the stages through their registries and write typed sections.

Order inside a GoP: side information first (text, poses, masks), then the intra picture, which
takes whatever the GoP's bit budget leaves.
"""

from __future__ import annotations

import io
from functools import cached_property
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

import numpy as np
from tqdm import tqdm

from cpsgd.bitstream.container import HEADER_BYTES, BitstreamWriter, Section, SectionType, StreamHeader
from cpsgd.errors import InputError
from cpsgd.intra import INTRA_CODECS, encode_intra
from cpsgd.masks.base import MASK_CODECS, SEGMENTERS, MaskCodec
from cpsgd.pipeline.config import EncoderConfig
from cpsgd.poses.base import POSE_CODECS, POSE_ESTIMATORS, PoseCodec
from cpsgd.poses.trajectory import Trajectory
from cpsgd.text import encode_caption
from cpsgd.video import VideoSource

# Bytes the container spends per GoP beyond payloads: GoP header (4) and per section tag,
# length and CRC (about 4 each). Subtracted from the budget so the file meets the target.
GOP_OVERHEAD_BYTES = 4
SECTION_OVERHEAD_BYTES = 5
MIN_INTRA_BYTES = 64

MaskProvider = Callable[[int, int], np.ndarray]  # (first frame, count) -> (count, H, W) labels


@dataclass
class GopReport:
    index: int
    num_frames: int
    section_bytes: dict[str, int]
    intra_quality: int
    intra_scale: float


@dataclass
class EncodeReport:
    width: int
    height: int
    num_frames: int = 0
    total_bytes: int = 0
    gops: list[GopReport] = field(default_factory=list)

    @property
    def bpp(self) -> float:
        return 8 * self.total_bytes / max(1, self.width * self.height * self.num_frames)


class Encoder:
    def __init__(self, config: EncoderConfig) -> None:
        self.config = config.validated()
        INTRA_CODECS.get(config.intra_codec)  # fail early on unknown names
        self.pose_estimator = POSE_ESTIMATORS.get(config.pose_estimator)() if config.pose_estimator else None
        self.segmenter = SEGMENTERS.get(config.segmenter)() if config.segmenter else None

    # Codecs are built on first use: poses or masks may come from the user without an estimator.
    @cached_property
    def pose_codec(self) -> PoseCodec:
        return POSE_CODECS.get(self.config.pose_codec)()

    @cached_property
    def mask_codec(self) -> MaskCodec:
        return MASK_CODECS.get(self.config.mask_codec)()

    def encode_gop(
        self,
        frames: np.ndarray,
        index: int,
        trajectory: Trajectory | None = None,
        masks: np.ndarray | None = None,
    ) -> tuple[list[Section], GopReport]:
        """Code one GoP. ``trajectory``/``masks`` given by the user replace estimation."""
        config = self.config
        num_frames, height, width = frames.shape[:3]
        budget = int(config.target_bpp() * width * height * num_frames / 8) - GOP_OVERHEAD_BYTES
        if index == 0:
            budget -= HEADER_BYTES  # the file header is paid by the first GoP
        sections: list[Section] = []

        if config.caption and index == 0:  # the caption holds for the whole stream
            backend, payload = encode_caption(config.caption)
            sections.append(Section(SectionType.TEXT, backend, payload))

        if masks is None and self.segmenter is not None:
            masks = self.segmenter.segment(frames)
        if masks is not None:
            sections.append(Section(SectionType.MASKS, self.mask_codec.code, self.mask_codec.compress(masks)))

        if trajectory is None and self.pose_estimator is not None:
            trajectory = self.pose_estimator.estimate(frames, masks)
        if trajectory is not None:
            payload = self.pose_codec.compress(trajectory.relative_to_first())
            sections.append(Section(SectionType.POSES, self.pose_codec.code, payload))

        spent = sum(len(s.payload) + SECTION_OVERHEAD_BYTES for s in sections)
        intra_budget = max(MIN_INTRA_BYTES, budget - spent - SECTION_OVERHEAD_BYTES)
        intra = encode_intra(
            frames[0],
            config.intra_codec,
            budget_bytes=None if config.intra_quality is not None else intra_budget,
            quality=config.intra_quality,
        )
        sections.append(Section(SectionType.INTRA, INTRA_CODECS.get(config.intra_codec).code, intra.payload))
        report = GopReport(
            index, num_frames, {s.type.part: len(s.payload) for s in sections}, intra.quality, intra.scale
        )
        return sections, report


def encode_gops(
    gops: Iterable[np.ndarray],
    out: BinaryIO,
    width: int,
    height: int,
    fps: Fraction,
    config: EncoderConfig,
    trajectory: Trajectory | None = None,
    masks: MaskProvider | None = None,
    progress: tqdm | None = None,
) -> EncodeReport:
    """Stream GoPs into ``out``; ``trajectory`` covers the whole video when the user gives poses."""
    encoder = Encoder(config)
    writer = BitstreamWriter(out, StreamHeader(width, height, fps, config.gop))
    report = EncodeReport(width, height)
    first = 0
    for index, frames in enumerate(gops):
        count = len(frames)
        gop_trajectory = None
        if trajectory is not None:
            if len(trajectory) < first + count:
                raise InputError(f"the pose file has {len(trajectory)} poses, fewer than the video's frames")
            gop_trajectory = trajectory.slice(first, first + count)
        gop_masks = masks(first, count) if masks is not None else None
        sections, gop_report = encoder.encode_gop(frames, index, gop_trajectory, gop_masks)
        report.total_bytes += writer.write_gop(count, sections)
        report.gops.append(gop_report)
        report.num_frames += count
        first += count
        if progress is not None:
            progress.update(count)
    if report.num_frames == 0:
        raise InputError("the input has no frames")
    writer.close()
    report.total_bytes = out.tell()
    return report


def encode_video(
    source: VideoSource,
    out_path: Path,
    config: EncoderConfig,
    trajectory: Trajectory | None = None,
    masks: MaskProvider | None = None,
    show_progress: bool = True,
) -> EncodeReport:
    with open(out_path, "wb") as out, tqdm(
        total=source.frame_count_hint, unit="frame", desc="encode", disable=not show_progress, leave=False
    ) as bar:
        return encode_gops(
            source.iter_gops(config.gop), out, source.width, source.height, source.fps, config,
            trajectory, masks, bar,
        )


def encode_frames(
    frames: np.ndarray, fps: float | Fraction, config: EncoderConfig, trajectory: Trajectory | None = None,
    masks: np.ndarray | None = None,
) -> bytes:
    """In-memory encode of an (N, H, W, 3) clip: the benchmark's and the tests' entry point."""
    out = io.BytesIO()
    gops = (frames[i : i + config.gop] for i in range(0, len(frames), config.gop))
    provider = (lambda start, count: masks[start : start + count]) if masks is not None else None
    encode_gops(
        gops, out, frames.shape[2], frames.shape[1], Fraction(fps).limit_denominator(1001), config,
        trajectory, provider,
    )
    return out.getvalue()
