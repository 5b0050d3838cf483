"""Streams made for the diffusion generator: the header records it, only the paper's parts are
sent with the preset's bit split, and `cpsgd decode` picks the generator from the header."""

from __future__ import annotations

import io
import struct
import zlib
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from cpsgd.bitstream.container import HEADER_BYTES, MAGIC, VERSION, BitstreamReader, SectionType, StreamHeader
from cpsgd.bitstream.info import format_table, inspect_stream
from cpsgd.cli import main
from cpsgd.errors import BitstreamError
from cpsgd.intra import decode_intra
from cpsgd.masks.base import MASK_CODECS
from cpsgd.pipeline import EncoderConfig, encode_frames
from cpsgd.pipeline.config import PRESETS
from cpsgd.pipeline.encoder import GOP_OVERHEAD_BYTES
from cpsgd.pipeline.ratecontrol import SECTION_OVERHEAD_BYTES
from cpsgd.poses import Intrinsics, Trajectory, save_poses
from tests.conftest import textured_clip

N, H, W = 5, 32, 48


def _clip():
    frames = textured_clip(N, H, W)
    masks = np.zeros((N, H, W), np.uint8)
    for i in range(N):
        masks[i, 8:24, 10 + 2 * i : 26 + 2 * i] = 1
    c2w = np.tile(np.eye(4), (N, 1, 1))
    c2w[:, 0, 3] = np.arange(N) * 0.05
    return frames, masks, Trajectory(Intrinsics(0.9, 1.35), np.linalg.inv(c2w))


def test_header_records_the_generator_and_reads_version_1():
    # Headers of one GoP of 8 frames (the reader refuses a stream that holds no frames).
    packed = StreamHeader(W, H, Fraction(25), 8, 8, 1, generator="diffusion").pack()
    made = BitstreamReader.from_bytes(MAGIC + bytes([VERSION]) + packed + struct.pack("<I", zlib.crc32(packed)))
    assert made.header.generator == "diffusion"
    # A version 1 stream (no generator field) reads as made for warp.
    packed = struct.pack("<HHIIHII", W, H, 25, 1, 8, 8, 1)
    old = BitstreamReader.from_bytes(MAGIC + b"\x01" + packed + struct.pack("<I", zlib.crc32(packed)))
    assert old.header.generator == "warp" and (old.header.width, old.header.height) == (W, H)
    assert old.header_bytes == len(MAGIC) + 1 + len(packed) + 4
    packed = struct.pack("<HHIIHIIB", W, H, 25, 1, 8, 8, 1, 9)
    with pytest.raises(BitstreamError, match="generator code 9"):
        BitstreamReader.from_bytes(MAGIC + b"\x02" + packed + struct.pack("<I", zlib.crc32(packed)))


@pytest.mark.parametrize("preset", ["low", "medium", "high"])
def test_diffusion_streams_carry_the_papers_parts_with_the_preset_split(preset):
    frames, masks, trajectory = _clip()
    # The preset's choices at a rate that gives this tiny clip a few hundred bytes.
    options = dict(preset=preset, bpp=0.3, pose_estimator=None, segmenter=None, adaptive_gop=False)
    config = EncoderConfig(generator="diffusion", caption="a box slides right", **options)
    data = encode_frames(frames, 25, config, trajectory, masks)
    reader = BitstreamReader.from_bytes(data)
    assert reader.header.generator == "diffusion"
    info = inspect_stream(io.BytesIO(data))  # `cpsgd info` says which decoder the stream is for
    assert info.generator == "diffusion" and "made for the diffusion generator" in format_table(info)
    (gop,) = list(reader.gops())
    assert {s.type for s in gop.sections} == {SectionType.TEXT, SectionType.POSES, SectionType.MASKS, SectionType.INTRA}
    intra = gop.find(SectionType.INTRA)
    assert decode_intra(intra.payload, intra.backend).shape[:2] == (H, W)  # frame 0, not a mosaic
    # The masks: the finest factor within the preset's share of the GoP's bytes.
    budget = int(0.3 * N * H * W / 8) - GOP_OVERHEAD_BYTES - HEADER_BYTES
    codec = MASK_CODECS.get(config.mask_codec)
    costs = [len(codec(factor=f).compress(masks)) for f in PRESETS[preset].mask_factors]
    fitting = [c for c in costs if c + SECTION_OVERHEAD_BYTES <= PRESETS[preset].diffusion_mask_share * budget]
    assert len(gop.find(SectionType.MASKS).payload) == (max(fitting) if fitting else min(costs))
    # Warp-mode streams of the same clip carry the geometry side channel too (without inter=False
    # the rate control codes this tiny clip as video).
    warp = BitstreamReader.from_bytes(encode_frames(frames, 25, EncoderConfig(inter=False, **options), trajectory, masks))
    assert warp.header.generator == "warp"
    assert SectionType.GEOMETRY in {s.type for s in next(warp.gops()).sections}


def test_decode_defaults_to_the_streams_generator(tmp_path, capsys):
    pytest.importorskip("diffusers")
    from cpsgd.generators.diffusion.testing import save_tiny_svd

    frames, masks, trajectory = _clip()
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:03d}.png")
    save_poses(tmp_path / "poses.txt", trajectory)
    stream = tmp_path / "clip.cpsgd"
    assert main(["encode", str(folder), "-o", str(stream), "--generator", "diffusion", "--poses",
                 str(tmp_path / "poses.txt"), "--bpp", "0.05", "--fixed-gop", "-q"]) == 0
    assert main(["decode", str(stream), "-o", str(tmp_path / "a"), "-q"]) == 2
    assert "made for the diffusion generator" in capsys.readouterr().err
    svd = save_tiny_svd(tmp_path / "svd", num_frames=N)
    assert main(["decode", str(stream), "-o", str(tmp_path / "a"), "-q", "--model", str(svd), "--steps", "1"]) == 0
    assert main(["decode", str(stream), "-o", str(tmp_path / "b"), "-q", "--generator", "hold"]) == 0
    diffused = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "a").glob("*.png"))]
    held = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "b").glob("*.png"))]
    assert len(diffused) == len(held) == N
    assert np.array_equal(diffused[0], held[0])  # both start from the sent frame 0
    assert not np.array_equal(diffused[-1], held[-1])  # the random SVD made the rest
    # With a segmentation adapter over a (tiny random) pretrained ControlNet, given by path.
    import torch
    from diffusers import ControlNetModel

    from cpsgd.generators.diffusion.adapters import SEGMENTATION_SUBFOLDER, ControlNetAdapter
    from cpsgd.generators.diffusion.loading import load_svd_pipeline
    from cpsgd.generators.diffusion.testing import save_tiny_controlnet

    controlnet = save_tiny_controlnet(tmp_path / "controlnet")
    unet = load_svd_pipeline(svd, torch.float32, torch.device("cpu")).unet
    ControlNetAdapter.from_models(unet, ControlNetModel.from_pretrained(controlnet), 2).save_pretrained(
        tmp_path / "adapters" / SEGMENTATION_SUBFOLDER
    )
    assert main(["decode", str(stream), "-o", str(tmp_path / "c"), "-q", "--model", str(svd), "--steps", "1",
                 "--adapters", str(tmp_path / "adapters"), "--controlnet", str(controlnet)]) == 0
    steered = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "c").glob("*.png"))]
    # The adapter's output layers start at zero: the same frames as plain SVD.
    assert all(np.array_equal(a, b) for a, b in zip(steered, diffused, strict=True))
