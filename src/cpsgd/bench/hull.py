"""Operational rate-distortion hulls and quality at a target rate.

A codec's hull for one metric is the upper envelope of (BPP, quality) over all of its settings:
the points that no other point beats with fewer or equal bits. Between hull points quality is
interpolated linearly in log-BPP (rate axes of RD plots are logarithmic at these rates); below
the codec's smallest rate the target is unreachable; above its largest, the best point that fits
the budget is what a user gets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def rd_hull(points: Iterable[tuple[float, float]], higher_is_better: bool = True) -> list[tuple[float, float]]:
    """Pareto front of (bpp, quality) points, sorted by rate; quality strictly improves along it."""
    sign = 1.0 if higher_is_better else -1.0
    hull: list[tuple[float, float]] = []
    for bpp, q in sorted(points, key=lambda p: (p[0], -sign * p[1])):
        if not (math.isfinite(bpp) and bpp > 0 and not math.isnan(q)):
            continue
        if not hull or sign * q > sign * hull[-1][1]:
            hull.append((bpp, q))
    return hull


def quality_at(hull: list[tuple[float, float]], bpp: float) -> float | None:
    """Quality on ``hull`` at ``bpp`` (log-BPP interpolation); None when below the minimum rate."""
    if not hull or bpp < hull[0][0]:
        return None
    rates = np.log([p[0] for p in hull])
    quality = np.array([p[1] for p in hull], dtype=float)
    # np.interp holds the last value past the end: the best point that fits the budget.
    return float(np.interp(math.log(bpp), rates, quality))
