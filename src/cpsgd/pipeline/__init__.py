"""Encoder and decoder: the stages run per GoP through their registries.

The encoder and decoder load on first use, so that the command line reads the presets without
importing every stage."""

from cpsgd.lazy import lazy_exports
from cpsgd.pipeline.config import PRESETS, EncoderConfig

__getattr__ = lazy_exports(__name__, {
    "decode_bytes": "decoder", "decode_gops": "decoder", "make_generator": "decoder",
    "EncodeReport": "encoder", "Encoder": "encoder", "encode_frames": "encoder", "encode_gops": "encoder",
    "encode_video": "encoder",
})

__all__ = [
    "PRESETS", "EncoderConfig", "EncodeReport", "Encoder", "encode_frames", "encode_gops", "encode_video",
    "decode_bytes", "decode_gops", "make_generator",
]
