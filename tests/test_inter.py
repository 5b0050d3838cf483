"""The inter mode: a GoP coded as video (SVT-AV1), chosen by the rate control where it renders
better; its section's bounds, its bit accounting, and honest rates."""

from __future__ import annotations

import io
from fractions import Fraction

import cv2
import numpy as np
import pytest

from cpsgd.bench.metrics import ms_ssim_rgb
from cpsgd.bitstream.container import BitstreamReader, SectionType
from cpsgd.bitstream.fuzz import fuzz_decoder
from cpsgd.bitstream.info import format_table, inspect_stream
from cpsgd.errors import BitstreamError
from cpsgd.inter import INTER_CODECS, InterSearch, decode_inter
from cpsgd.inter.base import pack_inter, unpack_inter
from cpsgd.inter.svtav1 import sequence_max_frame_size
from cpsgd.pipeline import EncoderConfig, decode_bytes, encode_frames
from cpsgd.pipeline.encoder import encode_gops
from cpsgd.pipeline.ratecontrol import eval_indices
from cpsgd.quality import psnr
from cpsgd.synth import SceneConfig, make_scene

from conftest import textured_clip


def rippling_clip(num_frames: int = 10, size: int = 64) -> np.ndarray:
    """A photograph under a growing non-rigid ripple: no camera motion and no affine object map
    can carry frame 0 there."""
    image = cv2.resize(textured_clip(1, 2 * size, 2 * size)[0], (size, size), interpolation=cv2.INTER_AREA)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    frames = []
    for i in range(num_frames):
        amplitude = 0.6 * i
        map_x = xs + amplitude * np.sin(ys / 3.0 + i)
        map_y = ys + amplitude * np.cos(xs / 4.0 - i)
        frames.append(cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return np.stack(frames)


def _encode(frames: np.ndarray, **options) -> tuple[bytes, list]:
    out = io.BytesIO()
    config = EncoderConfig(pose_estimator=None, segmenter=None, **options)
    report = encode_gops([frames], out, frames.shape[2], frames.shape[1], 25, config)
    return out.getvalue(), report


def _psnr_search(frames: np.ndarray, codec) -> InterSearch:
    return InterSearch(frames, codec, lambda ref, dec: psnr(ref, dec), eval_indices(len(frames), 3))


def test_inter_search_fits_the_budget_and_is_deterministic() -> None:
    frames = textured_clip(6, 48, 64)
    codec = INTER_CODECS.get("svtav1")(preset=11)
    found = _psnr_search(frames, codec).within(1500)
    assert found is not None and len(found.payload) <= 1500
    assert found.frames.shape == frames.shape
    again = _psnr_search(frames, codec).within(1500)
    assert again is not None and again.payload == found.payload
    decoded = decode_inter(found.payload, codec.code, len(frames), 64, 48)
    assert np.array_equal(decoded, found.frames)
    # more bytes buy a better video; too few buy none
    richer = _psnr_search(frames, codec).within(6000)
    assert richer is not None and psnr(frames, richer.frames) > psnr(frames, found.frames)
    assert _psnr_search(frames, codec).within(20) is None


def test_inter_payload_sizes_are_checked_before_decoding() -> None:
    frames = textured_clip(3, 64, 64)
    codec = INTER_CODECS.get("svtav1")(preset=12)
    packets = codec.encode(frames, 50)
    assert sequence_max_frame_size(packets[0]) == (64, 64)
    payload = pack_inter(64, 64, packets)
    assert unpack_inter(payload, 3, 64, 64)[:2] == (64, 64)
    with pytest.raises(BitstreamError, match="out of range|exceeds"):
        unpack_inter(payload, 3, 32, 32)  # coded larger than the stream
    with pytest.raises(BitstreamError, match="packets"):
        unpack_inter(payload, 4, 64, 64)  # packet count is not the GoP's frame count
    # a payload that declares a smaller coded size than its sequence header carries
    with pytest.raises(BitstreamError, match="AV1 frames up to 64x64"):
        decode_inter(pack_inter(32, 32, packets), codec.code, 3, 64, 64)
    for cut in (1, 5, len(payload) // 2, len(payload) - 1):
        with pytest.raises(BitstreamError):
            decode_inter(payload[:cut], codec.code, 3, 64, 64)


def test_a_clip_the_warp_cannot_follow_is_coded_as_video_when_the_budget_allows() -> None:
    frames = rippling_clip()
    data, report = _encode(frames, bpp=0.5)
    assert [g.mode for g in report.gops] == ["inter"] * len(report.gops)
    gops = list(BitstreamReader.from_bytes(data).gops())
    assert all(g.find(SectionType.INTER) and not g.find(SectionType.INTRA) for g in gops)
    assert _encode(frames, bpp=0.5)[0] == data  # the same bytes every run
    decoded = decode_bytes(data)
    _, warp_report = _encode(frames, bpp=0.5, inter=False)
    warp = decode_bytes(_encode(frames, bpp=0.5, inter=False)[0])
    assert warp_report.gops[0].mode == "warp"
    assert psnr(frames, decoded) > psnr(frames, warp) + 2
    # `cpsgd info` shows the mode and the bits of the video
    info = inspect_stream(io.BytesIO(data))
    assert [g.mode for g in info.gops] == ["inter"] * len(gops)
    assert info.bits["inter"] > 0 and info.bits["intra"] == 0
    assert "inter" in format_table(info).splitlines()[-1]


def test_a_scene_the_warp_follows_keeps_the_warp_at_low_rates() -> None:
    clip = make_scene(SceneConfig(traj="pan", objects=1, num_frames=12, width=96, height=96, seed=4))
    config = EncoderConfig(bpp=0.01, segmenter=None, pose_estimator=None)
    out = io.BytesIO()
    report = encode_gops([clip.frames], out, 96, 96, Fraction(25), config, clip.trajectory,
                         lambda start, count: clip.masks[start : start + count])
    assert {g.mode for g in report.gops} == {"warp"}


def test_quality_rises_with_the_rate() -> None:
    clip = make_scene(SceneConfig(traj="orbit", objects=1, num_frames=10, width=96, height=96, seed=2))
    rates, quality = [], []
    for bpp in (0.01, 0.03, 0.1, 0.3):
        data = encode_frames(clip.frames, clip.fps, EncoderConfig(bpp=bpp, segmenter=None, pose_estimator=None),
                             clip.trajectory, clip.masks)
        decoded = decode_bytes(data)
        rates.append(8 * len(data) / clip.frames[..., 0].size)
        quality.append((psnr(clip.frames, decoded), ms_ssim_rgb(clip.frames, decoded)))
    assert rates == sorted(rates)
    for (psnr_low, ssim_low), (psnr_high, ssim_high) in zip(quality, quality[1:]):
        assert psnr_high >= psnr_low - 0.1 and ssim_high >= ssim_low - 0.002, quality
    assert quality[-1][0] > quality[0][0] + 3, quality


def test_a_rate_that_cannot_be_met_is_reported() -> None:
    frames = textured_clip(4, 32, 32)
    _, report = _encode(frames, bpp=0.0005)  # the headers alone are above it
    assert report.missed_rate(0.0005) is not None and "fixed costs" in report.missed_rate(0.0005)
    _, report = _encode(frames, bpp=8)  # no codec spends that much
    assert report.missed_rate(8) is not None and "saturates" in report.missed_rate(8)
    _, report = _encode(textured_clip(10, 64, 64), bpp=0.3)
    assert report.missed_rate(0.3) is None


def test_inter_streams_survive_mutation() -> None:
    data, report = _encode(rippling_clip(6, 48), bpp=0.6, gop=3)
    assert {g.mode for g in report.gops} == {"inter"}
    fuzzed = fuzz_decoder([data], count=150, seed=3, generator="hold")
    assert fuzzed.tried == 150 and fuzzed.outcomes["rejected"] > 0


def test_encode_prints_one_warning_line_when_the_rate_cannot_be_met(tmp_path, capsys) -> None:
    from PIL import Image

    from cpsgd.cli import main

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(textured_clip(3, 32, 32)):
        Image.fromarray(frame).save(folder / f"{i:03d}.png")
    assert main(["encode", str(folder), "-o", str(tmp_path / "a.cpsgd"), "--bpp", "0.001", "-q"]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: the clip cannot be coded at 0.001 BPP")
    assert main(["info", str(tmp_path / "a.cpsgd")]) == 0
    assert "mode" in capsys.readouterr().out
