"""Intra stage: the first picture of each GoP, coded with an image codec under a byte budget."""

from cpsgd.intra.base import INTRA_CODECS, ImageCodec
from cpsgd.intra.budget import IntraResult, decode_intra, encode_intra
from cpsgd.intra import av1_codec, pillow_codecs  # noqa: F401  (registers av1, avif, webp)

__all__ = ["INTRA_CODECS", "ImageCodec", "IntraResult", "encode_intra", "decode_intra"]
