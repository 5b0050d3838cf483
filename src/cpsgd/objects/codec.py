"""Object motion section codecs: ObjectMotion <-> bytes, given the first decoded mask."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from cpsgd.bitstream.adaptive import CONTEXTS_PER_GROUP, BinaryCoder, code_levels, encode_groups, ideal_bits
from cpsgd.bitstream.bytes import ByteReader, ByteWriter
from cpsgd.errors import BitstreamError
from cpsgd.objects.model import (
    MAX_OBJECTS,
    ObjectMotion,
    positions_in_frames,
    reference_points,
    transforms_from_positions,
)
from cpsgd.registry import Registry

_WHAT = "object motion section"


class ObjectMotionCodec(ABC):
    name: str
    code: int

    @abstractmethod
    def compress(self, motion: ObjectMotion, first_mask: np.ndarray) -> bytes: ...

    @abstractmethod
    def decompress(self, data: bytes, num_frames: int, first_mask: np.ndarray) -> ObjectMotion: ...


OBJECT_MOTION_CODECS: Registry[ObjectMotionCodec] = Registry("object motion codec")


@OBJECT_MOTION_CODECS.register("points3", code=0)
class Points3Codec(ObjectMotionCodec):
    """Each object's affine map as the positions of three reference points (corners of its box in
    the first decoded mask, which the decoder has), quantised to ``step_px`` and coded as residuals
    of a temporal prediction (previous position or constant velocity, whichever is cheaper) with
    adaptive binary arithmetic coding. Objects of the map that the first mask lacks are not sent.

    Payload: object count (u8), step in 1/16 pixel (u8); per object: label (u8), predictor order
    (u8); then the range coder's bytes for all objects. A still object costs about 5 bytes."""

    def __init__(self, step_px: float = 0.5) -> None:
        self.step_q = int(np.clip(round(step_px * 16), 1, 255))

    def compress(self, motion: ObjectMotion, first_mask: np.ndarray) -> bytes:
        labels = [label for label in sorted(motion.transforms) if np.any(first_mask == label)][:MAX_OBJECTS]
        step = self.step_q / 16
        coded = []
        for label in labels:
            transforms = motion.transforms[label]
            points = reference_points(first_mask == label)
            moves = positions_in_frames(transforms[1:], points) - points
            levels = np.round(moves.reshape(len(moves), 6) / step).astype(np.int64)
            order = min((1, 2), key=lambda o: ideal_bits(levels, o))
            coded.append((label, order, levels))
        writer = ByteWriter()
        writer.u8(len(coded))
        writer.u8(self.step_q)
        for label, order, _ in coded:
            writer.u8(label)
            writer.u8(order)
        if any(levels.size for _, _, levels in coded):
            writer.raw(encode_groups([(0, order, levels) for _, order, levels in coded], CONTEXTS_PER_GROUP, _WHAT))
        return writer.getvalue()

    def decompress(self, data: bytes, num_frames: int, first_mask: np.ndarray) -> ObjectMotion:
        if num_frames < 1:
            raise BitstreamError(f"{_WHAT}: a GoP needs at least one frame")
        reader = ByteReader(data, _WHAT)
        count, step_q = reader.u8(), reader.u8()
        if count > MAX_OBJECTS or step_q == 0:
            raise BitstreamError(f"{_WHAT}: {count} objects at step {step_q}/16 is not a valid header")
        objects = [(reader.u8(), reader.u8()) for _ in range(count)]
        labels = [label for label, _ in objects]
        if len(set(labels)) != count or 0 in labels or any(order not in (1, 2) for _, order in objects):
            raise BitstreamError(f"{_WHAT}: invalid object list")
        payload = reader.rest() if count and num_frames > 1 else b""
        if count and num_frames > 1 and not payload:
            raise BitstreamError(f"{_WHAT} is truncated")
        reader.expect_end()
        coder = BinaryCoder.reading(CONTEXTS_PER_GROUP, _WHAT, payload) if payload else None
        transforms = {}
        for label, order in objects:
            region = first_mask == label
            if not region.any():
                raise BitstreamError(f"{_WHAT}: object {label} is not in the first mask")
            points = reference_points(region)
            moves = np.zeros((num_frames, 3, 2))
            if coder is not None:
                levels = code_levels(coder, 0, order, None, (num_frames - 1, 6))
                moves[1:] = levels.reshape(-1, 3, 2) * (step_q / 16)
            maps = transforms_from_positions(points + moves, points)
            if maps is None:
                raise BitstreamError(f"{_WHAT}: object {label} collapses to a line")
            transforms[label] = maps
        return ObjectMotion(transforms)
