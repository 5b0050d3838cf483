"""Foreground motion: moving-object segmentation, the mask video codec and mask metrics."""
