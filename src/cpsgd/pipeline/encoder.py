"""The encoder: per GoP, run the stages through their registries and write typed sections.

GoPs are adaptive: a GoP ends at a scene cut, or earlier than planned when the rendered frames
drift too far from the source, and never exceeds ``config.gop`` frames. The input is read through
a look-ahead of at most ``config.gop`` frames, so memory does not grow with the video.

Within a GoP, side information is estimated first (masks, poses, the masked objects' motion), then
the rate control (``cpsgd.pipeline.ratecontrol``) splits the GoP's bytes between the masks (with
their object motion), the geometry side
channel and the intra picture (mosaic or plain frame) by rendering candidates with the decoder's
generator, and weighs that against coding the GoP as video (the inter mode: poses, masks and an
SVT-AV1 stream). Bytes a GoP leaves unspent are carried over to the next, so the clip meets its
target.

A stream for the diffusion generator (``config.generator``) carries the paper's parts only: the
plain frame 0, text, poses and masks, with no geometry, object motion or inter mode (SVD reads
none of them). No diffusion render fits in the rate control on a CPU, so there the preset fixes
the split instead: the masks take up to its ``diffusion_mask_share`` of the bytes, frame 0 the rest.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

import numpy as np
from tqdm import tqdm

from cpsgd.bitstream.container import (
    HEADER_BYTES,
    BitstreamWriter,
    Section,
    SectionType,
    StreamHeader,
)
from cpsgd.errors import InputError
from cpsgd.geometry import (
    GEOMETRY_CODECS,
    GeometryCodec,
    GeometryFitConfig,
    build_mosaic,
    fit_geometry,
)
from cpsgd.inter import INTER_CODECS
from cpsgd.intra import INTRA_CODECS, encode_intra
from cpsgd.masks.base import MASK_CODECS, SEGMENTERS, MaskCodec, Segmenter
from cpsgd.objects import OBJECT_MOTION_CODECS, ObjectMotionCodec, fit_object_motion
from cpsgd.pipeline.config import EncoderConfig
from cpsgd.pipeline.ratecontrol import (
    SECTION_OVERHEAD_BYTES,
    InterSplit,
    MaskOption,
    PictureOption,
    Split,
    SplitSearch,
    cut_gain,
    drift_cut,
)
from cpsgd.pipeline.scenecut import LookAhead, first_cut
from cpsgd.poses.base import POSE_CODECS, POSE_ESTIMATORS, PoseCodec
from cpsgd.poses.trajectory import Trajectory
from cpsgd.text import encode_caption
from cpsgd.video import VideoSource

# Bytes the container spends per GoP beyond its sections: GoP header (about 4).
GOP_OVERHEAD_BYTES = 4
MAX_CARRY = 0.5  # a GoP's budget moves by at most this share for earlier GoPs' unspent bytes
RATE_TOLERANCE = 1.25  # a rate this factor off the target either way is reported as missed

MaskProvider = Callable[[int, int], np.ndarray]  # (first frame, count) -> (count, H, W) labels


@dataclass
class GopReport:
    index: int
    num_frames: int
    section_bytes: dict[str, int]
    intra_quality: int
    intra_scale: float
    picture: str = "plain"  # "mosaic", "mosaic-nostrip", "plain" or "video" (the inter mode)
    mask_factor: int | None = None  # None: no mask section
    ended_by: str = "length"  # why the GoP ended: "length", "scene cut", "drift" or "end"
    score: float | None = None  # the rate control's render score of the chosen split
    mode: str = "warp"  # "warp" (intra picture + side channels) or "inter" (the GoP as video)


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

    def missed_rate(self, target_bpp: float) -> str | None:
        """One line saying why the rate reached is far from ``target_bpp``, or None when near it."""
        if self.bpp > RATE_TOLERANCE * target_bpp:
            return (
                f"the clip cannot be coded at {target_bpp:g} BPP: its fixed costs (headers, poses, masks "
                f"and the smallest picture or video) reach {self.bpp:.5f} BPP"
            )
        if self.bpp * RATE_TOLERANCE < target_bpp:
            return (
                f"the clip cannot use {target_bpp:g} BPP: every option saturates at {self.bpp:.5f} BPP "
                f"(the best quality the codecs reach)"
            )
        return None


def coded_bytes(sections: list[Section]) -> int:
    """What the sections take in the file, lengths and CRCs included."""
    return sum(len(s.payload) + SECTION_OVERHEAD_BYTES for s in sections)


class Encoder:
    """``segmenter``: an already built segmenter (one that needs options, such as SAM2 with its
    checkpoint); otherwise ``config.segmenter`` names one that builds without options."""

    def __init__(self, config: EncoderConfig, segmenter: Segmenter | None = None) -> None:
        self.config = config.validated()
        INTRA_CODECS.get(config.intra_codec)  # fail early on unknown names
        INTER_CODECS.get(config.inter_codec)
        OBJECT_MOTION_CODECS.get(config.object_motion_codec)
        self.pose_estimator = POSE_ESTIMATORS.get(config.pose_estimator)() if config.pose_estimator else None
        if segmenter is None and config.segmenter:
            segmenter = SEGMENTERS.get(config.segmenter)()
        self.segmenter = segmenter
        self.carry = 0  # bytes earlier GoPs left unspent (negative: overspent)
        self.for_diffusion = config.generator == "diffusion"
        # a fixed intra quality leaves nothing to split: no candidates, no rendering; nor does a
        # stream for the diffusion generator, which the warp renders would not predict
        self.search_split = config.rate_control and config.intra_quality is None and not self.for_diffusion

    # Codecs are built on first use: poses or masks may come from the user without an estimator.
    @cached_property
    def pose_codec(self) -> PoseCodec:
        return POSE_CODECS.get(self.config.pose_codec)()

    @cached_property
    def object_motion_codec(self) -> ObjectMotionCodec:
        return OBJECT_MOTION_CODECS.get(self.config.object_motion_codec)()

    @cached_property
    def geometry_codec(self) -> GeometryCodec:
        return GEOMETRY_CODECS.get(self.config.geometry_codec)()

    def mask_codec(self, factor: int | None = None) -> MaskCodec:
        """The mask codec at a downscale factor (None: the codec's default)."""
        cls = MASK_CODECS.get(self.config.mask_codec)
        return cls() if factor is None else cls(factor=factor)  # type: ignore[call-arg]

    def gop_budget(self, num_frames: int, width: int, height: int, index: int) -> int:
        """Bytes for the GoP's sections: its share of the target, less container overhead."""
        budget = int(self.config.target_bpp() * width * height * num_frames / 8) - GOP_OVERHEAD_BYTES
        return budget - HEADER_BYTES if index == 0 else budget  # the first GoP pays for the header

    def encode_gop(
        self,
        frames: np.ndarray,
        index: int,
        trajectory: Trajectory | None = None,
        masks: np.ndarray | None = None,
    ) -> tuple[list[Section], GopReport]:
        """Code the GoP that starts with ``frames``: all of them, or, when the rendered frames
        drift too far from the source, only the first ``report.num_frames`` (the caller goes on
        from there). ``trajectory``/``masks`` given by the user replace estimation."""
        config = self.config
        user_masks = masks is not None
        if masks is None and self.segmenter is not None:
            masks = self.segmenter.segment(frames)
        if trajectory is None and self.pose_estimator is not None:
            trajectory = self.pose_estimator.estimate(frames, masks)
        sections, report, split = self._code(frames, index, trajectory, masks, user_masks)
        drifts = config.adaptive_gop and isinstance(split, Split)  # video does not drift
        cut = drift_cut(split, config.drift_db, config.min_gop) if drifts else None  # type: ignore[arg-type]
        if cut is not None:
            # Analysis by synthesis: the drift only proposes the cut; it is kept when the frames
            # render better as two GoPs (each with its share of the bytes) than as one.
            def part(start: int, stop: int, part_index: int) -> tuple[list[Section], GopReport, Split | None]:
                return self._code(
                    frames[start:stop], part_index, None if trajectory is None else trajectory.slice(start, stop),
                    None if masks is None else masks[start:stop], user_masks,
                )

            head_sections, head_report, head = part(0, cut, index)
            _, _, tail = part(cut, len(frames), index + 1)
            if head and tail and self._cut_gain(frames, split, head, tail, cut) > 0:  # type: ignore[arg-type]
                sections, report = head_sections, head_report
                report.ended_by = "drift"
        height, width = frames.shape[1:3]
        self.carry += self.gop_budget(report.num_frames, width, height, index) - coded_bytes(sections)
        return sections, report

    def _cut_gain(
        self, frames: np.ndarray, whole: Split, head: Split | InterSplit, tail: Split | InterSplit, cut: int
    ) -> float:
        """By how much cutting beats keeping the GoP whole, less the margin the cut must win by."""
        rc = whole.search.config
        return cut_gain(frames, whole, head, tail, cut, rc.cut_eval_frames, rc.ms_ssim_weight) - rc.cut_min_gain

    def _mask_options(self, frames: np.ndarray, masks: np.ndarray | None, user_masks: bool) -> list[MaskOption]:
        if masks is None:
            return [MaskOption(None, None, None)]
        num_frames, h, w = masks.shape
        # The objects' motion is fitted once on the source; each mask option codes it against its
        # own first decoded mask (the reference the decoder has).
        motion = fit_object_motion(frames, masks) if self.config.object_motion and not self.for_diffusion else None
        factors = self.config.candidate_mask_factors() if self.search_split or self.for_diffusion else (None,)
        options = []
        for factor in dict.fromkeys(factors):
            codec = self.mask_codec(factor)
            payload = codec.compress(masks)
            decoded = codec.decompress(payload, num_frames, h, w)
            motion_payload = decoded_motion = None
            if motion is not None and decoded[0].any():
                motion_payload = self.object_motion_codec.compress(motion, decoded[0])
                decoded_motion = self.object_motion_codec.decompress(motion_payload, num_frames, decoded[0])
            options.append(MaskOption(
                factor or getattr(codec, "factor", None), payload, decoded, motion_payload, decoded_motion
            ))
        # the user's own masks are always sent; estimated ones are dropped only where the preset allows
        if self.search_split and not user_masks and self.config.operating_point().drop_masks:
            options.append(MaskOption(None, None, None))
        return options

    def _preset_masks(self, options: list[MaskOption], budget: int) -> MaskOption:
        """The finest mask option within the preset's share of the GoP's bytes, else the cheapest."""
        limit = self.config.operating_point().diffusion_mask_share * budget
        fitting = [option for option in options if option.cost <= limit]
        return max(fitting, key=lambda o: o.cost) if fitting else min(options, key=lambda o: o.cost)

    def _mask_sections(self, masks: MaskOption) -> list[Section]:
        sections = []
        if masks.payload is not None:
            sections.append(Section(SectionType.MASKS, self.mask_codec(masks.factor).code, masks.payload))
        if masks.motion_payload is not None:
            sections.append(Section(SectionType.OBJECTS, self.object_motion_codec.code, masks.motion_payload))
        return sections

    def _pictures(
        self, frames: np.ndarray, trajectory: Trajectory | None, masks: np.ndarray | None
    ) -> list[PictureOption]:
        """Picture options, the one tried first first: the mosaic when allowed, then the plain
        frame and the mosaic without its strip of hidden background."""
        config = self.config
        intra_codec = config.intra_codec
        if not (config.geometry and trajectory is not None) or self.for_diffusion:
            return [PictureOption.make("plain", frames[0], None, self.geometry_codec, intra_codec)]
        grid = config.max_geometry_grid()
        geometry = fit_geometry(frames, trajectory, masks, GeometryFitConfig(grid=(grid, grid)))
        plain = PictureOption.make("plain", frames[0], geometry, self.geometry_codec, intra_codec)
        if not config.mosaic:
            return [plain]
        mosaic = build_mosaic(frames, trajectory, masks, geometry)
        layout = mosaic.layout
        first = PictureOption.make("mosaic", mosaic.image, geometry.with_layout(layout), self.geometry_codec, intra_codec)
        if not self.search_split:
            return [first]
        options = [first, plain]
        if layout.under is not None:  # the strip of hidden background may not be worth its bytes
            bare = replace(layout, under=None)
            options.append(PictureOption.make(
                "mosaic-nostrip", mosaic.image[: layout.height], geometry.with_layout(bare), self.geometry_codec, intra_codec
            ))
        return options

    def _code(
        self,
        frames: np.ndarray,
        index: int,
        trajectory: Trajectory | None,
        masks: np.ndarray | None,
        user_masks: bool,
    ) -> tuple[list[Section], GopReport, Split | InterSplit | None]:
        config = self.config
        num_frames, height, width = frames.shape[:3]
        budget = self.gop_budget(num_frames, width, height, index)
        limit = int(MAX_CARRY * budget)
        budget += int(np.clip(self.carry, -limit, limit))
        sections: list[Section] = []
        if config.caption and index == 0:  # the caption holds for the whole stream
            backend, payload = encode_caption(config.caption)
            sections.append(Section(SectionType.TEXT, backend, payload))
        # Poses are fitted on and rendered with what the decoder will see: the decoded ones.
        decoded_trajectory = None
        if trajectory is not None:
            payload = self.pose_codec.compress(trajectory.relative_to_first())
            sections.append(Section(SectionType.POSES, self.pose_codec.code, payload))
            decoded_trajectory = self.pose_codec.decompress(payload, num_frames)
        search = SplitSearch(frames, decoded_trajectory, budget - coded_bytes(sections))
        mask_options = self._mask_options(frames, masks, user_masks)
        pictures = self._pictures(frames, decoded_trajectory, masks)
        split: Split | None = None  # set when the split was rendered and scored
        chosen_masks, picture = mask_options[0], pictures[0]
        if config.intra_quality is not None:
            intra = encode_intra(picture.image, config.intra_codec, quality=config.intra_quality)
        elif self.search_split:
            video = search.inter(mask_options, config.inter_codec) if config.inter else None
            split = search.choose(mask_options, pictures, None if video is None else video.luma_score)
            fits = video is not None and video.total_bytes <= max(search.budget, split.total_bytes)
            if video is not None and fits and video.mode_score() > split.mode_score():
                sections += self._mask_sections(video.masks)
                sections.append(Section(SectionType.INTER, INTER_CODECS.get(config.inter_codec).code, video.inter.payload))
                report = GopReport(
                    index, num_frames, {s.type.part: len(s.payload) for s in sections}, video.inter.quantiser,
                    video.inter.scale, "video", video.masks.factor, score=video.score, mode="inter",
                )
                return sections, report, video
            chosen_masks, picture, intra = split.masks, split.picture, split.intra
        elif self.for_diffusion:
            chosen_masks = self._preset_masks(mask_options, budget)
            intra = search.code(chosen_masks, picture)
        else:
            intra = search.code(chosen_masks, picture)

        sections += self._mask_sections(chosen_masks)
        if picture.geometry_payload is not None:
            sections.append(Section(SectionType.GEOMETRY, self.geometry_codec.code, picture.geometry_payload))
        sections.append(Section(SectionType.INTRA, INTRA_CODECS.get(config.intra_codec).code, intra.payload))
        report = GopReport(
            index, num_frames, {s.type.part: len(s.payload) for s in sections}, intra.quality, intra.scale,
            picture.name, chosen_masks.factor, score=None if split is None else split.score,
        )
        return sections, report, split


def encode_gops(
    blocks: Iterable[np.ndarray],
    out: BinaryIO,
    width: int,
    height: int,
    fps: Fraction,
    config: EncoderConfig,
    trajectory: Trajectory | None = None,
    masks: MaskProvider | None = None,
    progress: tqdm | None = None,
    segmenter: Segmenter | None = None,
) -> EncodeReport:
    """Code the frames of ``blocks`` ((n, H, W, 3) arrays of any length, e.g. a reader's GoPs)
    into ``out``; ``trajectory`` covers the whole video when the user gives poses."""
    encoder = Encoder(config, segmenter)
    writer = BitstreamWriter(out, StreamHeader(width, height, fps, config.gop, generator=config.generator))
    report = EncodeReport(width, height)
    lookahead = LookAhead(blocks, config.gop)
    first = 0
    while (window := lookahead.window()) is not None:
        count = first_cut(window, config.scene_cut) if config.adaptive_gop else len(window)
        ended_by = "scene cut" if count < len(window) else "length" if len(window) == config.gop else "end"
        frames = window[:count]
        gop_trajectory = None
        if trajectory is not None:
            if len(trajectory) < first + count:
                raise InputError(f"the pose file has {len(trajectory)} poses, fewer than the video's frames")
            gop_trajectory = trajectory.slice(first, first + count)
        gop_masks = masks(first, count) if masks is not None else None
        index = len(report.gops)
        sections, gop_report = encoder.encode_gop(frames, index, gop_trajectory, gop_masks)
        if gop_report.ended_by != "drift":
            gop_report.ended_by = ended_by
        done = gop_report.num_frames
        report.total_bytes += writer.write_gop(done, sections)
        report.gops.append(gop_report)
        report.num_frames += done
        first += done
        lookahead.advance(done)
        if progress is not None:
            progress.update(done)
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
    segmenter: Segmenter | None = None,
) -> EncodeReport:
    with open(out_path, "wb") as out, tqdm(
        total=source.frame_count_hint, unit="frame", desc="encode", disable=not show_progress, leave=False
    ) as bar:
        return encode_gops(
            (frame[None] for frame in source.iter_frames()), out, source.width, source.height, source.fps, config,
            trajectory, masks, bar, segmenter,
        )


def encode_frames(
    frames: np.ndarray, fps: float | Fraction, config: EncoderConfig, trajectory: Trajectory | None = None,
    masks: np.ndarray | None = None,
) -> bytes:
    """In-memory encode of an (N, H, W, 3) clip: the benchmark's and the tests' entry point."""
    out = io.BytesIO()
    provider = (lambda start, count: masks[start : start + count]) if masks is not None else None
    encode_gops(
        [frames], out, frames.shape[2], frames.shape[1], Fraction(fps).limit_denominator(1001), config,
        trajectory, provider,
    )
    return out.getvalue()
