"""Inter stage: a GoP coded as a conventional video by a real codec (the rate control's fallback
where the generator cannot follow the content)."""

from cpsgd.inter.base import INTER_CODECS, InterResult, VideoCodec, decode_inter
from cpsgd.inter.search import InterSearch
from cpsgd.inter import svtav1  # noqa: F401  (registers svtav1)

__all__ = ["INTER_CODECS", "InterResult", "InterSearch", "VideoCodec", "decode_inter"]
