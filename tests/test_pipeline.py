"""Encoder and decoder end to end, in memory."""

from __future__ import annotations

import io

import numpy as np
import pytest

from cpsgd.bitstream.container import BitstreamReader, SectionType
from cpsgd.bitstream.info import inspect_stream
from cpsgd.quality import psnr
from cpsgd.pipeline import EncoderConfig, decode_bytes, encode_frames
from cpsgd.video import open_video

from conftest import textured_clip


@pytest.mark.parametrize(
    "num_frames, height, width, gop",
    [(1, 64, 64, 25), (4, 48, 64, 25), (9, 40, 40, 4), (3, 201, 333, 25)],
    ids=["one-frame", "shorter-than-gop", "partial-last-gop", "333x201"],
)
def test_round_trip_shapes(num_frames: int, height: int, width: int, gop: int) -> None:
    frames = textured_clip(num_frames, height, width)
    data = encode_frames(frames, 25, EncoderConfig(gop=gop, bpp=1.0))
    decoded = decode_bytes(data)
    assert decoded.shape == frames.shape
    assert psnr(decoded[0], frames[0]) > 20
    header = BitstreamReader.from_bytes(data).header
    assert header.num_gops == -(-num_frames // gop)


def test_rate_follows_the_target() -> None:
    frames = textured_clip(25, 128, 128)
    sizes = [len(encode_frames(frames, 25, EncoderConfig(bpp=bpp))) for bpp in (0.01, 0.03)]
    for size, bpp in zip(sizes, (0.01, 0.03)):
        assert 0.6 * bpp <= 8 * size / (128 * 128 * 25) <= 1.02 * bpp
    assert sizes[1] > sizes[0]


def test_same_input_same_bytes() -> None:
    frames = textured_clip(6, 64, 64)
    config = EncoderConfig(bpp=0.02, caption="a sliding photograph")
    assert encode_frames(frames, 25, config) == encode_frames(frames, 25, config)


def test_caption_is_sent_once_and_decoded() -> None:
    frames = textured_clip(6, 32, 32)
    data = encode_frames(frames, 25, EncoderConfig(gop=2, bpp=0.2, caption="a photograph slides left"))
    gops = list(BitstreamReader.from_bytes(data).gops())
    assert [g.find(SectionType.TEXT) is not None for g in gops] == [True, False, False]
    info = inspect_stream(io.BytesIO(data))
    assert info.bits["text"] > 0


def test_davis_clip_round_trip(shared_data) -> None:
    source = open_video(shared_data / "davis2016" / "JPEGImages" / "blackswan", size=128, max_frames=10)
    frames = source.read_all()
    decoded = decode_bytes(encode_frames(frames, 24, EncoderConfig(bpp=0.03)))
    assert decoded.shape == (10, 128, 128, 3)
    assert psnr(decoded[0], frames[0]) > 20


def test_synthetic_round_trip_with_every_default_stage() -> None:
    """Default settings: estimated poses and masks, geometry, rate control, warp generator."""
    from cpsgd.synth import SceneConfig, make_scene

    clip = make_scene(SceneConfig(traj="pan", objects=1, num_frames=12, width=128, height=128, seed=4))
    data = encode_frames(clip.frames, clip.fps, EncoderConfig(bpp=0.02))
    gops = list(BitstreamReader.from_bytes(data).gops())
    assert {SectionType.INTRA, SectionType.POSES} <= {s.type for s in gops[0].sections}
    warp, hold = decode_bytes(data, "warp"), decode_bytes(data, "hold")
    assert warp.shape == hold.shape == clip.frames.shape
    assert psnr(warp[0], clip.frames[0]) > 20
    later = slice(6, None)  # the camera has moved: warping must beat holding the first frame
    assert psnr(warp[later], clip.frames[later]) > psnr(hold[later], clip.frames[later]) + 1
