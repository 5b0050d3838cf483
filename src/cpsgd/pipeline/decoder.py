"""The decoder: read GoPs, decode every section through its registry, run the generator."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from cpsgd.bitstream.container import MAX_DIMENSION, BitstreamReader, Gop, SectionType, StreamHeader
from cpsgd.errors import BitstreamError
from cpsgd.geometry import GEOMETRY_CODECS
from cpsgd.generators import GENERATORS, Generator, GopConditions
from cpsgd.inter import decode_inter
from cpsgd.intra import decode_intra
from cpsgd.masks.base import MASK_CODECS
from cpsgd.objects import OBJECT_MOTION_CODECS
from cpsgd.poses.base import POSE_CODECS
from cpsgd.text import decode_caption


@dataclass
class DecodedGop:
    index: int
    frames: np.ndarray | None  # None: the GoP was damaged and skipped (keep_going)
    conditions: GopConditions | None
    damage: str | None = None


def decode_conditions(gop: Gop, header: StreamHeader, caption: str | None) -> GopConditions:
    """Turn one GoP's sections into the generator's inputs (no generation). A GoP coded as video
    (an inter section) has its frames in ``side_channels["frames"]`` and frame 0 as the intra
    picture."""
    intra, inter = gop.find(SectionType.INTRA), gop.find(SectionType.INTER)
    if (intra is None) == (inter is None):
        raise BitstreamError(f"GoP {gop.index} needs exactly one intra or inter section")
    video = None
    if inter is not None:
        video = decode_inter(inter.payload, inter.backend, gop.num_frames, header.width, header.height)
        image = video[0]
    else:
        image = decode_intra(intra.payload, intra.backend)  # type: ignore[union-attr]
    if image.shape[0] > MAX_DIMENSION or image.shape[1] > MAX_DIMENSION:
        raise BitstreamError(f"GoP {gop.index}: intra picture too large")
    text = gop.find(SectionType.TEXT)
    if text is not None:
        caption = decode_caption(text.backend, text.payload)
    conditions = GopConditions(gop.num_frames, header.height, header.width, image, caption=caption)
    if video is not None:
        conditions.side_channels["frames"] = video
    poses = gop.find(SectionType.POSES)
    if poses is not None:
        conditions.trajectory = POSE_CODECS.by_code(poses.backend)().decompress(poses.payload, gop.num_frames)
    geometry = gop.find(SectionType.GEOMETRY)
    if geometry is not None:
        conditions.side_channels["geometry"] = GEOMETRY_CODECS.by_code(geometry.backend)().decompress(geometry.payload)
    masks = gop.find(SectionType.MASKS)
    if masks is not None:
        conditions.masks = MASK_CODECS.by_code(masks.backend)().decompress(
            masks.payload, gop.num_frames, header.height, header.width
        )
    objects = gop.find(SectionType.OBJECTS)
    if objects is not None:
        if conditions.masks is None:
            raise BitstreamError(f"GoP {gop.index}: object motion section without a mask section")
        conditions.side_channels["objects"] = OBJECT_MOTION_CODECS.by_code(objects.backend)().decompress(
            objects.payload, gop.num_frames, conditions.masks[0]
        )
    return conditions


def decode_gops(reader: BitstreamReader, generator: Generator, keep_going: bool = False) -> Iterator[DecodedGop]:
    """Decode GoP by GoP. With ``keep_going`` a damaged GoP is yielded with ``damage`` set and
    no frames, and decoding goes on with the next; otherwise the first damage raises."""
    caption: str | None = None
    for gop in reader.gops(keep_going):
        try:
            if gop.damage:
                raise BitstreamError(gop.damage)
            conditions = decode_conditions(gop, reader.header, caption)
        except BitstreamError as exc:
            message = str(exc) if str(exc).startswith("GoP ") else f"GoP {gop.index}: {exc}"
            if not keep_going:
                raise BitstreamError(message) from None
            yield DecodedGop(gop.index, None, None, message)
            continue
        caption = conditions.caption
        video = conditions.side_channels.get("frames")
        frames = video if isinstance(video, np.ndarray) else generator.generate(conditions)
        expected = (gop.num_frames, reader.header.height, reader.header.width, 3)
        if frames.shape != expected or frames.dtype != np.uint8:
            raise RuntimeError(f"generator {generator.name} returned {frames.shape}, expected {expected}")
        yield DecodedGop(gop.index, frames, conditions)


def make_generator(name: str, **options: object) -> Generator:
    return GENERATORS.get(name)(**options)


def decode_bytes(data: bytes, generator: str = "warp") -> np.ndarray:
    """In-memory decode of a whole stream to (N, H, W, 3) frames."""
    reader = BitstreamReader(io.BytesIO(data))
    return np.concatenate([gop.frames for gop in decode_gops(reader, make_generator(generator))])
