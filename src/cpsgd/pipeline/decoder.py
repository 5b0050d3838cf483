"""The decoder: read GoPs, decode every section through its registry, run the generator."""

from __future__ import annotations

import io
from dataclasses import dataclass
from itertools import chain
from typing import Iterator

import numpy as np

from cpsgd.bitstream.container import BitstreamReader, Gop, SectionType, StreamHeader
from cpsgd.errors import BitstreamError
from cpsgd.geometry import GEOMETRY_CODECS
from cpsgd.generators import GENERATORS, Generator, GopConditions
from cpsgd.inter import decode_inter
from cpsgd.intra import decode_intra
from cpsgd.masks.base import MASK_CODECS
from cpsgd.objects import OBJECT_MOTION_CODECS
from cpsgd.poses.base import POSE_CODECS
from cpsgd.text import decode_caption


# A mosaic canvas may reach this many times the frame's size (the encoder's reaches 2x)
MAX_CANVAS_FACTOR = 3


@dataclass
class DecodedGop:
    index: int
    frames: np.ndarray | Iterator[np.ndarray] | None  # iterator: lazy; None: damaged, skipped (keep_going)
    conditions: GopConditions | None
    damage: str | None = None


def decode_conditions(gop: Gop, header: StreamHeader, caption: str | None) -> GopConditions:
    """Turn one GoP's sections into the generator's inputs (no generation). Sizes a section
    declares are checked against the stream's frame size before they drive any work. A GoP coded
    as video (an inter section) has its frames in ``side_channels["frames"]`` and frame 0 as the
    intra picture."""
    intra, inter = gop.find(SectionType.INTRA), gop.find(SectionType.INTER)
    if (intra is None) == (inter is None):
        raise BitstreamError(f"GoP {gop.index} needs exactly one intra or inter section")
    height, width = header.height, header.width
    geometry = gop.find(SectionType.GEOMETRY)
    scene = None if geometry is None else GEOMETRY_CODECS.by_code(geometry.backend)().decompress(geometry.payload)
    picture = (height, width)
    if scene is not None and scene.layout is not None:
        layout = scene.layout
        if layout.width > MAX_CANVAS_FACTOR * width or layout.height > MAX_CANVAS_FACTOR * height:
            raise BitstreamError(
                f"GoP {gop.index}: mosaic of {layout.width}x{layout.height} exceeds {MAX_CANVAS_FACTOR}x the frame"
            )
        if not layout.contains_frame(height, width):
            raise BitstreamError(f"GoP {gop.index}: mosaic layout does not contain the frame")
        picture = layout.image_shape
    video = None
    if inter is not None:
        video = decode_inter(inter.payload, inter.backend, gop.num_frames, width, height)
        image = video[0]
    else:
        image = decode_intra(intra.payload, intra.backend, max_size=(picture[1], picture[0]))  # type: ignore[union-attr]
    text = gop.find(SectionType.TEXT)
    if text is not None:
        caption = decode_caption(text.backend, text.payload)
    conditions = GopConditions(gop.num_frames, height, width, image, caption=caption)
    if video is not None:
        conditions.side_channels["frames"] = video
    if scene is not None:
        conditions.side_channels["geometry"] = scene
    poses = gop.find(SectionType.POSES)
    if poses is not None:
        conditions.trajectory = POSE_CODECS.by_code(poses.backend)().decompress(poses.payload, gop.num_frames)
    masks = gop.find(SectionType.MASKS)
    if masks is not None:
        conditions.masks = MASK_CODECS.by_code(masks.backend)().decompress(masks.payload, gop.num_frames, height, width)
    objects = gop.find(SectionType.OBJECTS)
    if objects is not None:
        if conditions.masks is None:
            raise BitstreamError(f"GoP {gop.index}: object motion section without a mask section")
        conditions.side_channels["objects"] = OBJECT_MOTION_CODECS.by_code(objects.backend)().decompress(
            objects.payload, gop.num_frames, conditions.masks[0]
        )
    return conditions


def decode_gops(
    reader: BitstreamReader, generator: Generator, keep_going: bool = False, lazy: bool = False
) -> Iterator[DecodedGop]:
    """Decode GoP by GoP. With ``keep_going`` a damaged GoP (one whose sections, or the
    generator on them, raise ``BitstreamError``) is yielded with ``damage`` set and no frames, and
    decoding goes on with the next; otherwise the first damage raises. With ``lazy`` each GoP's
    ``frames`` is an iterator of its frames, to be used up before the next GoP: memory then holds
    one frame instead of the GoP (a generator error past the first frame is not skipped)."""
    caption: str | None = None
    height, width = reader.header.height, reader.header.width
    for gop in reader.gops(keep_going):
        try:
            if gop.damage:
                raise BitstreamError(gop.damage)
            conditions = decode_conditions(gop, reader.header, caption)
            video = conditions.side_channels.get("frames")  # a GoP coded as video needs no generator
            if lazy:
                frames = iter(video) if isinstance(video, np.ndarray) else generator.frames(conditions)
                first = next(frames, None)  # the generator's own checks run here
            else:
                frames = video if isinstance(video, np.ndarray) else generator.generate(conditions)
        except BitstreamError as exc:
            message = str(exc) if str(exc).startswith("GoP ") else f"GoP {gop.index}: {exc}"
            if not keep_going:
                raise BitstreamError(message) from None
            yield DecodedGop(gop.index, None, None, message)
            continue
        caption = conditions.caption
        if lazy:
            frames = _checked(generator.name, chain([first] if first is not None else [], frames), gop.num_frames, height, width)
        elif frames.shape != (gop.num_frames, height, width, 3) or frames.dtype != np.uint8:
            raise RuntimeError(f"generator {generator.name} returned {frames.shape}, expected {(gop.num_frames, height, width, 3)}")
        yield DecodedGop(gop.index, frames, conditions)


def _checked(name: str, frames: Iterator[np.ndarray], count: int, height: int, width: int) -> Iterator[np.ndarray]:
    made = 0
    for frame in frames:
        if frame.shape != (height, width, 3) or frame.dtype != np.uint8 or made == count:
            raise RuntimeError(f"generator {name} returned frame {made} of {frame.shape}, expected {count} of {(height, width, 3)}")
        made += 1
        yield frame
    if made != count:
        raise RuntimeError(f"generator {name} returned {made} frames, expected {count}")


def make_generator(name: str, **options: object) -> Generator:
    return GENERATORS.get(name)(**options)


def decode_bytes(data: bytes, generator: str = "warp", **options: object) -> np.ndarray:
    """In-memory decode of a whole stream to (N, H, W, 3) frames; ``options`` build the generator."""
    reader = BitstreamReader(io.BytesIO(data))
    return np.concatenate([gop.frames for gop in decode_gops(reader, make_generator(generator, **options))])
