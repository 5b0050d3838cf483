"""The `hold` generator: every frame is the decoded first frame. A baseline and an ablation.

When the intra picture is a background mosaic, the first frame is its window at the layout's
position (the same window the warp generator starts from), not the whole mosaic.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from cpsgd.generators.base import GENERATORS, Generator, GopConditions
from cpsgd.generators.warp import unpack_intra


@GENERATORS.register("hold")
class HoldGenerator(Generator):
    def generate(self, conditions: GopConditions) -> np.ndarray:
        return np.repeat(self._first(conditions)[None], conditions.num_frames, axis=0)

    def frames(self, conditions: GopConditions) -> Iterator[np.ndarray]:
        first = self._first(conditions)
        for _ in range(conditions.num_frames):
            yield first

    @staticmethod
    def _first(conditions: GopConditions) -> np.ndarray:
        h, w = conditions.height, conditions.width
        geometry = conditions.side_channels.get("geometry")
        canvas, layout, _ = unpack_intra(conditions.intra, h, w, geometry.layout if geometry else None)
        return np.ascontiguousarray(canvas[layout.y0 : layout.y0 + h, layout.x0 : layout.x0 + w])
