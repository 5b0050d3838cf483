"""A bounded fuzz run over the whole decoder: every mutant decodes or raises BitstreamError."""

from __future__ import annotations

from cpsgd.bitstream.fuzz import fuzz_decoder
from cpsgd.pipeline import EncoderConfig, encode_frames
from cpsgd.synth import SceneConfig, make_scene

from conftest import textured_clip


def seed_streams() -> list[bytes]:
    """Streams covering every section type and every intra codec."""
    clip = make_scene(SceneConfig(traj="orbit", objects=2, num_frames=6, width=64, height=48, seed=5))
    full = encode_frames(
        clip.frames, clip.fps, EncoderConfig(gop=3, bpp=0.2, caption="two cats orbit a camera", rate_control=False),
        clip.trajectory, clip.masks,
    )
    paper_poses = encode_frames(
        clip.frames, clip.fps, EncoderConfig(gop=6, bpp=0.2, pose_codec="paper", mosaic=False),
        clip.trajectory, clip.masks,
    )
    photo = textured_clip(2, 48, 64)
    plain = [
        encode_frames(photo, 25, EncoderConfig(bpp=0.5, intra_codec=codec, pose_estimator=None, segmenter=None))
        for codec in ("webp", "avif")
    ]
    return [full, paper_poses, *plain]


def test_mutants_decode_or_raise_bitstream_error() -> None:
    report = fuzz_decoder(seed_streams(), count=400, seed=1, generator="warp")
    assert report.tried == 400
    assert report.outcomes["rejected"] > 0 and report.outcomes["decoded"] > 0
