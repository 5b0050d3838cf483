"""The `hold` generator: every frame is the decoded first frame. A baseline and an ablation.

When the intra picture is a background mosaic, the first frame is its window at the layout's
position (the same window the warp generator starts from), not the whole mosaic.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from cpsgd.generators.base import GENERATORS, Generator, GopConditions
from cpsgd.generators.warp import intra_frame


@GENERATORS.register("hold")
class HoldGenerator(Generator):
    def generate(self, conditions: GopConditions) -> np.ndarray:
        return np.repeat(intra_frame(conditions)[None], conditions.num_frames, axis=0)

    def frames(self, conditions: GopConditions) -> Iterator[np.ndarray]:
        first = intra_frame(conditions)
        for _ in range(conditions.num_frames):
            yield first
