"""PSNR, shared by the intra search, the rate control, the demo and the benchmarks."""

from __future__ import annotations

import numpy as np

PSNR_CAP = 100.0  # dB given to identical frames, so that means stay finite


def frame_psnr(reference: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """Per-frame RGB PSNR (dB) of (N, H, W, C) uint8 frames, capped at ``PSNR_CAP``."""
    diff = reference.astype(np.float64) - decoded.astype(np.float64)
    mse = np.mean(diff**2, axis=tuple(range(1, diff.ndim)))
    with np.errstate(divide="ignore"):
        return np.minimum(10.0 * np.log10(255.0**2 / mse), PSNR_CAP)


def psnr(reference: np.ndarray, decoded: np.ndarray) -> float:
    """Mean per-frame PSNR of (N, H, W, C) frames, or the PSNR of one (H, W, C) image."""
    if reference.ndim == 3:
        reference, decoded = reference[None], decoded[None]
    return float(np.mean(frame_psnr(reference, decoded)))
