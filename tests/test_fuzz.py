"""A bounded fuzz run over the whole decoder: every mutant decodes or raises BitstreamError."""

from __future__ import annotations

from cpsgd.bitstream.fuzz import fuzz_decoder
from cpsgd.pipeline import EncoderConfig, encode_frames

from conftest import textured_clip


def test_mutants_decode_or_raise_bitstream_error() -> None:
    clip = textured_clip(6, 48, 64)
    seeds = [
        encode_frames(clip, 25, EncoderConfig(gop=3, bpp=0.2, caption="a photograph slides to the left")),
        encode_frames(clip[:2], 25, EncoderConfig(bpp=0.5, intra_codec="webp")),
        encode_frames(clip[:2], 25, EncoderConfig(bpp=0.5, intra_codec="avif")),
    ]
    report = fuzz_decoder(seeds, count=300, seed=1)
    assert report.tried == 300
    assert report.outcomes["rejected"] > 0
