"""Anchors: bits counted from the real elementary streams, decoded back to the source size."""

from fractions import Fraction

import av
import numpy as np
import pytest

from cpsgd.bench.anchors import AnchorSetting, default_ladder, encode_decode, strip_h264_sei
from cpsgd.bench.metrics import psnr
from cpsgd.errors import InputError
from tests.conftest import textured_clip


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return textured_clip(6, 64, 64)


@pytest.mark.parametrize(
    "setting",
    [AnchorSetting("x264", 64, "crf", 35), AnchorSetting("x265", 64, "crf", 35),
     AnchorSetting("svtav1", 64, "crf", 50)],
    ids=lambda s: s.codec,
)
def test_anchor_codes_and_decodes_real_stream(clip, setting):
    result = encode_decode(clip, 24.0, setting)
    assert result.frames.shape == clip.shape and result.frames.dtype == np.uint8
    assert 0 < result.bits < clip.size * 8 / 10
    assert result.bits % 8 == 0
    assert psnr(clip, result.frames) > 18
    assert result.record()["options"] == setting.encoder_options()
    # Deterministic: the same input gives the same bits.
    assert encode_decode(clip, 24.0, setting).bits == result.bits


def test_x264_bits_match_packet_sizes_without_settings_sei(clip):
    """The counted bits are the encoder's packets minus x264's settings SEI, which decoders ignore."""
    setting = AnchorSetting("x264", 64, "crf", 35)
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = 64, 64, "yuv420p"
    enc.time_base = Fraction(1, 24)
    enc.framerate = Fraction(24)
    enc.options = setting.encoder_options()
    packets = []
    for i, rgb in enumerate(clip):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets += [bytes(p) for p in enc.encode(frame)]
    packets += [bytes(p) for p in enc.encode(None)]
    stripped = [strip_h264_sei(p) for p in packets]
    raw, kept = sum(map(len, packets)), sum(map(len, stripped))
    assert raw - kept > 300  # the settings string
    assert encode_decode(clip, 24.0, setting).bits == 8 * kept


def test_downscaled_anchor_costs_fewer_bits_and_upscales(clip):
    full = encode_decode(clip, 24.0, AnchorSetting("x264", 64, "qp", 40))
    small = encode_decode(clip, 24.0, AnchorSetting("x264", 32, "qp", 40))
    assert small.bits < full.bits
    assert small.frames.shape == clip.shape


def test_ladders_cover_scales_and_reject_unknown_codecs():
    ladder = default_ladder("svtav1", (512, 128))
    assert {s.scale for s in ladder} == {512, 128}
    assert {s.scale for s in default_ladder("x265", (128, 64, 32))} == {128, 64}  # x265 needs 64x64
    assert ("qp", 63) in {(s.rc, s.value) for s in ladder}
    assert "info=0" in AnchorSetting("x265", 128, "qp", 51).encoder_options()["x265-params"]
    with pytest.raises(InputError):
        default_ladder("vp9")


def test_x265_refuses_frames_below_its_ctu_size(clip):
    with pytest.raises(InputError, match="64x64"):
        encode_decode(clip, 24.0, AnchorSetting("x265", 48, "crf", 40))
