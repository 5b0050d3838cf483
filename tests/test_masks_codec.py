"""The "cabac" mask codec, mask metrics and the standalone mask file."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from cpsgd.errors import BitstreamError, InputError
from cpsgd.masks import MASK_CODECS
from cpsgd.masks.codec import ContextMaskCodec
from cpsgd.masks.metrics import contour_accuracy, region_similarity

DATA = Path(__file__).parents[2] / "shared" / "data"


def moving_discs(n=8, h=48, w=56, objects=2, radius=7) -> np.ndarray:
    """Discs of ``radius`` (and 2 px more per object) drifting down and right."""
    yy, xx = np.mgrid[:h, :w]
    masks = np.zeros((n, h, w), np.uint8)
    for t in range(n):
        for k in range(objects):
            r = radius + 2 * k
            cy, cx = r + 2 + 0.4 * h * k / objects + t, r + 2 + 0.5 * w * k / objects + 2 * t
            masks[t][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = k + 1
    return masks


def stick_figure(n: int = 8, size: int = 256) -> np.ndarray:
    """A walking figure: body and head blobs, four limbs 4 pixels thick that swing each frame."""
    masks = np.zeros((n, size, size), np.uint8)
    for t in range(n):
        cx, cy = 100 + 3 * t, 110
        cv2.ellipse(masks[t], (cx, cy), (14, 30), 0, 0, 360, 1, -1)
        cv2.circle(masks[t], (cx, cy - 42), 10, 1, -1)
        for side in (-1, 1):
            for start, length, spread in ((cy - 20, 55, 0.9), (cy + 25, 70, 0.25)):
                angle = spread + 0.5 * np.sin(0.6 * t) * side
                end = (cx + int(side * length * np.sin(angle)), start + int(length * np.cos(angle) * (1 if start > cy else -0.3)))
                cv2.line(masks[t], (cx, start), end, 1, 4)
    return masks


def test_registered_as_default_code_zero():
    assert MASK_CODECS.by_code(0) is ContextMaskCodec
    assert MASK_CODECS.get("cabac") is ContextMaskCodec


def test_lossless_round_trip_is_bit_exact_for_label_maps():
    masks = moving_discs()
    masks[3, 0:5, 0:9] = 7  # a third, non-contiguous label in one frame only
    codec = ContextMaskCodec(factor=1)
    data = codec.compress(masks)
    assert np.array_equal(ContextMaskCodec().decompress(data, *masks.shape), masks)
    assert codec.compress(masks) == data  # deterministic


def test_lossy_factors_keep_shapes_and_cost_fewer_bits():
    masks = moving_discs(n=10, h=128, w=128, objects=1, radius=30)
    sizes = {}
    for factor in (1, 4, 8):
        data = ContextMaskCodec(factor=factor).compress(masks)
        decoded = ContextMaskCodec().decompress(data, *masks.shape)
        sizes[factor] = len(data)
        assert region_similarity(decoded, masks).min() >= (1.0 if factor == 1 else 0.8)
    assert sizes[8] < sizes[4] < sizes[1]


def test_empty_and_full_masks():
    for value in (0, 1):
        masks = np.full((5, 33, 17), value, np.uint8)
        for factor in (1, 4):
            data = ContextMaskCodec(factor=factor).compress(masks)
            assert np.array_equal(ContextMaskCodec().decompress(data, *masks.shape), masks)
            assert len(data) < 40


def test_object_appearing_mid_gop_and_multi_object_ids():
    masks = moving_discs(n=10, h=96, w=96, objects=2, radius=16)
    masks[:4][masks[:4] == 2] = 0  # object 2 enters at frame 4
    decoded = ContextMaskCodec(factor=4).decompress(ContextMaskCodec(factor=4).compress(masks), *masks.shape)
    assert not (decoded[:4] == 2).any()
    for label in (1, 2):
        frames = slice(4, None) if label == 2 else slice(None)
        assert region_similarity(decoded[frames] == label, masks[frames] == label).min() > 0.85


def test_j_target_keeps_thin_limbs():
    """Downscaling wipes out 4-pixel limbs at the default factor (most of the figure's area); the
    J target chooses the factor (and tolerance) per GoP that keeps them, and a blob gets a coarser
    factor than the figure under the same target."""
    figure = stick_figure()
    fixed = ContextMaskCodec().compress(figure)
    assert region_similarity(ContextMaskCodec().decompress(fixed, *figure.shape), figure).mean() < 0.85
    codec = ContextMaskCodec(j_target=0.9)
    data = codec.compress(figure)
    j = region_similarity(ContextMaskCodec().decompress(data, *figure.shape), figure)
    assert j.mean() >= 0.9 and j.min() >= 0.85
    assert codec.compress(figure) == data  # deterministic
    blob = moving_discs(n=8, h=256, w=256, objects=1, radius=40)
    assert codec.compress(blob)[0] > data[0]  # the header's factor byte


def test_corrupt_payloads_raise_bitstream_error():
    masks = moving_discs(n=4, h=32, w=32)
    data = ContextMaskCodec(factor=2).compress(masks)
    rng = np.random.default_rng(0)
    bad = [b"", data[:1], data[:2], data[:-1], b"\x00" + data[1:], b"\xff" + data[1:], data[:2] + b"\x00\x01"]
    bad += [bytes([data[0], 40]) + data[2:]]  # too many layers
    bad += [bytes([data[0], 2, 3, 3]) + data[4:]]  # repeated label
    for _ in range(60):
        mutated = bytearray(data)
        mutated[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
        bad.append(bytes(mutated) + bytes(rng.integers(0, 256, int(rng.integers(0, 3)) * 4, dtype=np.uint8)))
    for payload in bad:
        try:
            out = ContextMaskCodec().decompress(payload, *masks.shape)
        except BitstreamError:
            continue
        assert out.shape == masks.shape and out.dtype == np.uint8  # decodes to something bounded


def test_invalid_settings_and_inputs():
    with pytest.raises(InputError):
        ContextMaskCodec(factor=0)
    with pytest.raises(InputError):
        ContextMaskCodec(tolerance=0.5)
    with pytest.raises(InputError):
        ContextMaskCodec(j_target=1.5)
    with pytest.raises(InputError):
        ContextMaskCodec().compress(np.zeros((2, 8, 8), np.int32))


def test_metrics_on_known_cases():
    a = np.zeros((1, 20, 20), np.uint8)
    a[0, 5:15, 5:15] = 1
    b = np.zeros_like(a)
    b[0, 5:15, 10:20] = 1
    assert region_similarity(a, b)[0] == pytest.approx(50 / 150)
    assert region_similarity(a, a)[0] == 1.0
    assert region_similarity(np.zeros_like(a), np.zeros_like(a))[0] == 1.0
    assert contour_accuracy(a, a)[0] == 1.0
    assert 0.0 < contour_accuracy(a, b)[0] < 1.0
    assert contour_accuracy(a, np.zeros_like(a))[0] == 0.0


@pytest.mark.skipif(not (DATA / "davis2016").is_dir(), reason="needs ../shared/data/davis2016 (DAVIS annotations)")
def test_default_operating_point_on_davis_annotations():
    from cpsgd.masks.davis import load_davis_clip

    _, masks = load_davis_clip(DATA / "davis2016", "car-roundabout")
    data = ContextMaskCodec().compress(masks)
    decoded = ContextMaskCodec().decompress(data, *masks.shape)
    assert 8 * len(data) < 4000
    assert region_similarity(decoded, masks).mean() >= 0.9
