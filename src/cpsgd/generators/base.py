"""The decoder's generator stage: rebuild a GoP's frames from what the bitstream carries."""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from cpsgd.poses.trajectory import Trajectory
from cpsgd.registry import Registry


@dataclass
class GopConditions:
    """Everything decoded for one GoP. ``intra`` is the decoded intra image (H, W, 3) uint8;
    ``trajectory`` and ``masks`` are None when the stream carries no such section."""

    num_frames: int
    height: int
    width: int
    intra: np.ndarray
    trajectory: Trajectory | None = None
    masks: np.ndarray | None = None
    caption: str | None = None
    side_channels: dict[str, object] = field(default_factory=dict)


class Generator(ABC):
    name: str

    @classmethod
    def from_cli_args(cls, args: argparse.Namespace) -> Generator:
        """Build from `cpsgd decode`'s parsed options; generators with options override this."""
        return cls()

    @abstractmethod
    def generate(self, conditions: GopConditions) -> np.ndarray:
        """Return (num_frames, height, width, 3) uint8 RGB frames, deterministically."""

    def frames(self, conditions: GopConditions) -> Iterator[np.ndarray]:
        """The same frames one at a time ((height, width, 3) each). This default generates the GoP
        whole; generators that work frame by frame override it, so that a decoder writing frames as
        they come holds one frame, not the GoP."""
        yield from self.generate(conditions)


GENERATORS: Registry[Generator] = Registry("generator", {
    "warp": "cpsgd.generators.warp", "hold": "cpsgd.generators.hold", "diffusion": "cpsgd.generators.diffusion",
})
