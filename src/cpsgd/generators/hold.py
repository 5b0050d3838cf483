"""The `hold` generator: every frame is the decoded intra picture. A baseline and an ablation."""

from __future__ import annotations

import numpy as np

from cpsgd.generators.base import GENERATORS, Generator, GopConditions
from cpsgd.intra.budget import resample


@GENERATORS.register("hold")
class HoldGenerator(Generator):
    def generate(self, conditions: GopConditions) -> np.ndarray:
        frame = resample(conditions.intra, conditions.width, conditions.height)
        return np.repeat(frame[None], conditions.num_frames, axis=0)
