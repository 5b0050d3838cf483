"""Encoder and decoder: the stages run per GoP through their registries."""

from cpsgd.pipeline.config import PRESETS, EncoderConfig
from cpsgd.pipeline.decoder import decode_bytes, decode_gops, make_generator
from cpsgd.pipeline.encoder import EncodeReport, Encoder, encode_frames, encode_gops, encode_video

__all__ = [
    "PRESETS", "EncoderConfig", "EncodeReport", "Encoder", "encode_frames", "encode_gops", "encode_video",
    "decode_bytes", "decode_gops", "make_generator",
]
