"""Meeting a byte budget with the inter codec: its quantiser and a downscale factor searched
together, each candidate scored as the decoder will see it (``IntraSearch``'s method, for video)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cpsgd.inter.base import InterResult, VideoCodec, coded_size, decode_inter, pack_inter, resize_frames

# The anchors' encoded sizes at 512 px (512, 384, 256, 192, 128) and one coarser.
INTER_SCALES = (1.0, 4 / 3, 2.0, 8 / 3, 4.0, 6.0)

Score = Callable[[np.ndarray, np.ndarray], float]  # (source frames, decoded frames) -> higher is better


class InterSearch:
    """Budgeted coding of one GoP as video. Every (scale, quantiser) coded is remembered without
    its frames (a decoded 512x512 GoP is 20 MB); ``score`` is computed on the frames at
    ``picks`` only, and only for the candidates compared (the bisection needs sizes alone)."""

    def __init__(self, frames: np.ndarray, codec: VideoCodec, score: Score, picks: np.ndarray,
                 scales: tuple[float, ...] = INTER_SCALES) -> None:
        self.frames = frames
        self.codec = codec
        self.score = score
        self.picks = picks
        self.scales = tuple(sorted(scales, reverse=True))  # coarsest first
        self._small: dict[float, np.ndarray] = {}
        self._coded: dict[tuple[float, int], bytes] = {}
        self._scores: dict[tuple[float, int], float] = {}

    def payload(self, scale: float, quantiser: int) -> bytes:
        key = (scale, quantiser)
        if key not in self._coded:
            num_frames, height, width = self.frames.shape[:3]
            if scale not in self._small:
                self._small[scale] = resize_frames(self.frames, *coded_size(width, height, scale))
            small = self._small[scale]
            self._coded[key] = pack_inter(small.shape[2], small.shape[1], self.codec.encode(small, quantiser))
        return self._coded[key]

    def decoded(self, scale: float, quantiser: int) -> np.ndarray:
        num_frames, height, width = self.frames.shape[:3]
        return decode_inter(self.payload(scale, quantiser), self.codec.code, num_frames, width, height)

    def score_of(self, scale: float, quantiser: int) -> float:
        key = (scale, quantiser)
        if key not in self._scores:
            self._scores[key] = self.score(self.frames[self.picks], self.decoded(scale, quantiser)[self.picks])
        return self._scores[key]

    def result(self, scale: float, quantiser: int) -> InterResult:
        """A candidate with its decoded frames."""
        return InterResult(
            self.payload(scale, quantiser), self.codec.code, quantiser, scale, self.score_of(scale, quantiser),
            self.decoded(scale, quantiser),
        )

    def _finest_within(self, scale: float, budget: int, low: int, high: int, step: int) -> int | None:
        """Binary search for the lowest quantiser on the grid ``low, low + step, ..`` up to
        ``high`` whose payload fits (bytes fall as the quantiser rises), or None."""
        found = None
        first, last = 0, (high - low) // step
        if last >= 0 and len(self.payload(scale, low + last * step)) > budget:
            return None  # the coarsest does not fit: no need to bisect
        while first <= last:
            middle = (first + last) // 2
            quantiser = low + middle * step
            if len(self.payload(scale, quantiser)) <= budget:
                found, last = quantiser, middle - 1
            else:
                first = middle + 1
        return found

    def best_quantiser(self, scale: float, budget: int, near: int | None = None) -> int | None:
        """The lowest fitting quantiser at ``scale`` on the codec's coarse grid; with ``near`` (one
        a faster search chose), the lowest in unit steps within a coarse step or two of it, or
        failing that the lowest coarser one that fits."""
        codec = self.codec
        step = codec.quantiser_step
        if near is None:
            return self._finest_within(scale, budget, codec.min_quantiser, codec.max_quantiser, step)
        low, high = max(codec.min_quantiser, near - 2 * step), min(codec.max_quantiser, near + 2 * step)
        found = self._finest_within(scale, budget, low, high, 1)
        if found is None and high < codec.max_quantiser:
            return self._finest_within(scale, budget, high + 1, codec.max_quantiser, step)
        while found == low and low > codec.min_quantiser:  # the answer may lie lower still
            low, high = max(codec.min_quantiser, low - 4 * step), low - 1
            found = self._finest_within(scale, budget, low, high, 1) or found
        return found

    def within(self, budget: int, scales: tuple[float, ...] | None = None, near: int | None = None) -> InterResult | None:
        """The best-scoring candidate within ``budget`` bytes, or None when nothing fits. Each
        scale is coded at its lowest fitting quantiser; the search climbs from the middle scale
        towards finer ones while the score rises, else towards coarser ones (one peak over
        scale), so it codes two or three scales, not all."""
        order = self.scales if scales is None else tuple(sorted(scales, reverse=True))
        scored: dict[int, tuple[float, int] | None] = {}  # scale index -> (score, quantiser)

        def score(index: int) -> float:
            if index not in scored:
                quantiser = self.best_quantiser(order[index], budget, near)
                scored[index] = None if quantiser is None else (self.score_of(order[index], quantiser), quantiser)
            entry = scored[index]
            return -np.inf if entry is None else entry[0]

        index = len(order) // 2
        while index > 0 and score(index) == -np.inf:  # nothing fits: coarser
            index -= 1
        for step in (1, -1):  # finer (higher index) first, then coarser
            while 0 <= index + step < len(order) and score(index + step) > score(index):
                index += step
        if score(index) == -np.inf:
            return None
        entry = scored[index]
        assert entry is not None
        return self.result(order[index], entry[1])
