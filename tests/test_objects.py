"""The object motion side channel: fit on texture, codec round trips and damage, and its use by the
warp generator and the pipeline."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
import skimage.data

from cpsgd.bitstream.container import BitstreamReader, SectionType
from cpsgd.bitstream.info import inspect_stream
from cpsgd.errors import BitstreamError
from cpsgd.generators.base import GopConditions
from cpsgd.generators.warp import WarpGenerator
from cpsgd.objects import (
    OBJECT_MOTION_CODECS,
    ObjectFitConfig,
    ObjectMotion,
    Points3Codec,
    fit_object_motion,
    reference_points,
)
from cpsgd.objects.model import positions_in_frames
from cpsgd.pipeline import EncoderConfig, decode_bytes, encode_frames
from cpsgd.quality import psnr

from conftest import damaged_payloads

SIZE = 128
NUM_FRAMES = 9


def object_motion_clip() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured object turning (2 degrees a frame) and sliding over a still textured background:
    (frames, exact masks, true frame-i -> frame-0 maps)."""
    background = cv2.resize(skimage.data.coffee(), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    texture = cv2.resize(skimage.data.astronaut()[40:240, 140:340], (44, 44), interpolation=cv2.INTER_AREA)
    layer = np.zeros_like(background)
    layer[30:74, 26:70] = texture
    alpha = np.zeros((SIZE, SIZE), np.float32)
    alpha[30:74, 26:70] = 1.0
    frames, masks, truth = [], [], []
    for i in range(NUM_FRAMES):
        move = cv2.getRotationMatrix2D((48.0, 52.0), 2.0 * i, 1.0 + 0.01 * i)
        move[:, 2] += (2.5 * i, -1.25 * i)
        a = cv2.warpAffine(alpha, move, (SIZE, SIZE), flags=cv2.INTER_LINEAR)[..., None]
        moved = cv2.warpAffine(layer, move, (SIZE, SIZE), flags=cv2.INTER_LINEAR)
        frames.append(np.clip(background * (1 - a) + moved * a + 0.5, 0, 255).astype(np.uint8))
        masks.append((a[..., 0] > 0.5).astype(np.uint8))
        truth.append(cv2.invertAffineTransform(move))
    return np.stack(frames), np.stack(masks), np.stack(truth)


def coarse(masks: np.ndarray, factor: int = 8) -> np.ndarray:
    """Blocky masks, like the mask codec's at a coarse downscale factor."""
    small = [cv2.resize(m, (SIZE // factor, SIZE // factor), interpolation=cv2.INTER_AREA) for m in masks.astype(np.float32)]
    return np.stack([(cv2.resize(s, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST) > 0.5).astype(np.uint8) for s in small])


def point_errors(fitted: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    points = reference_points(mask)
    return np.linalg.norm(positions_in_frames(fitted, points) - positions_in_frames(truth, points), axis=2)


@pytest.mark.parametrize("work_size", [96, 256], ids=["fitted-smaller", "fitted-at-full-size"])
def test_fit_follows_the_texture_not_the_coarse_masks(work_size):
    frames, masks, truth = object_motion_clip()
    blocky = coarse(masks, 4)
    motion = fit_object_motion(frames, blocky, ObjectFitConfig(work_size=work_size))
    assert list(motion.transforms) == [1]
    assert point_errors(motion.transforms[1], truth, blocky[0]).max() < 0.5
    assert np.allclose(motion.transforms[1][0], np.eye(3)[:2])


def smooth_motion(num_frames: int) -> ObjectMotion:
    t = np.arange(num_frames)
    maps = np.zeros((num_frames, 2, 3))
    angle = np.radians(1.5) * t
    maps[:, 0, 0] = maps[:, 1, 1] = np.cos(angle)
    maps[:, 0, 1], maps[:, 1, 0] = -np.sin(angle), np.sin(angle)
    maps[:, 0, 2], maps[:, 1, 2] = -1.7 * t, 0.4 * t**1.5
    return ObjectMotion({2: maps, 5: maps.copy()})


def first_mask() -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[20:60, 30:90] = 2
    return mask


@pytest.mark.parametrize("step", [0.25, 0.5, 1.0])
def test_codec_round_trip_within_half_a_step(step):
    motion, mask = smooth_motion(NUM_FRAMES), first_mask()
    codec = Points3Codec(step)
    data = codec.compress(motion, mask)
    assert data == codec.compress(motion, mask)  # deterministic
    decoded = OBJECT_MOTION_CODECS.by_code(codec.code)().decompress(data, NUM_FRAMES, mask)
    assert list(decoded.transforms) == [2]  # object 5 is not in the first mask: not sent
    assert point_errors(decoded.transforms[2], motion.transforms[2], mask == 2).max() <= step * 0.71 + 1e-9
    assert np.allclose(decoded.transforms[2][0], np.eye(3)[:2])


def test_still_object_and_single_frame_cost_a_few_bytes():
    mask = first_mask()
    still = ObjectMotion({2: np.tile(np.eye(3)[:2], (25, 1, 1))})
    codec = Points3Codec()
    assert len(codec.compress(still, mask)) <= 6
    one = codec.compress(ObjectMotion({2: np.eye(3)[None, :2]}), mask)
    assert np.allclose(codec.decompress(one, 1, mask).transforms[2], np.eye(3)[:2])


def test_corrupt_payloads_raise_bitstream_error():
    motion, mask = smooth_motion(NUM_FRAMES), first_mask()
    codec = Points3Codec()
    data = codec.compress(motion, mask)
    for payload in damaged_payloads(data, 100):
        try:
            decoded = codec.decompress(payload, NUM_FRAMES, mask)
        except BitstreamError:
            continue
        assert all(np.isfinite(t).all() for t in decoded.transforms.values())
    with pytest.raises(BitstreamError, match="not in the first mask"):
        codec.decompress(data, NUM_FRAMES, np.zeros_like(mask))
    with pytest.raises(BitstreamError):
        codec.decompress(bytes([17, 8]), NUM_FRAMES, mask)  # more objects than allowed


def test_generator_carries_the_texture_with_the_sent_motion():
    frames, masks, truth = object_motion_clip()
    blocky = coarse(masks)
    codec = Points3Codec()
    sent = codec.decompress(codec.compress(fit_object_motion(frames, blocky), blocky[0]), NUM_FRAMES, blocky[0])
    conditions = GopConditions(NUM_FRAMES, SIZE, SIZE, frames[0], None, blocky)
    by_shape = WarpGenerator().generate(conditions)
    conditions.side_channels["objects"] = sent
    by_motion = WarpGenerator().generate(conditions)
    inside = cv2.erode(masks[-1], np.ones((5, 5), np.uint8)) > 0
    with_motion = psnr(frames[-1][inside], by_motion[-1][inside])
    assert with_motion > 27
    assert with_motion > psnr(frames[-1][inside], by_shape[-1][inside]) + 3


def test_pipeline_sends_object_motion_with_the_masks():
    frames, masks, _ = object_motion_clip()
    config = EncoderConfig(bpp=0.15, pose_estimator=None, geometry=False, inter=False)  # the warp mode's sections
    data = encode_frames(frames, 25, config, masks=masks)
    gop = next(BitstreamReader.from_bytes(data).gops())
    assert gop.find(SectionType.MASKS) is not None and gop.find(SectionType.OBJECTS) is not None
    assert inspect_stream(io.BytesIO(data)).bits["object_motion"] > 0
    assert decode_bytes(data).shape == frames.shape
    bare = encode_frames(
        frames, 25, EncoderConfig(bpp=0.15, pose_estimator=None, geometry=False, object_motion=False, inter=False), masks=masks
    )
    assert next(BitstreamReader.from_bytes(bare).gops()).find(SectionType.OBJECTS) is None
