"""Foreground motion: moving-object segmentation, the mask video codec and mask metrics.

Importing the package registers the backends: the mask codec "cabac" (code 0) in MASK_CODECS,
the segmenters "motion" (default, CPU) and "sam2" (optional extra) in SEGMENTERS.
"""

from cpsgd.masks import codec, motion, sam2_segmenter  # noqa: F401  (register the backends)
from cpsgd.masks.base import MASK_CODECS, SEGMENTERS, MaskCodec, Segmenter
from cpsgd.masks.metrics import contour_accuracy, region_similarity, score_masks

DEFAULT_SEGMENTER = "motion"
DEFAULT_MASK_CODEC = "cabac"

__all__ = [
    "DEFAULT_MASK_CODEC",
    "DEFAULT_SEGMENTER",
    "MASK_CODECS",
    "SEGMENTERS",
    "MaskCodec",
    "Segmenter",
    "contour_accuracy",
    "region_similarity",
    "score_masks",
]
