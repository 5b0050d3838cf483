"""Decoder-side generators: rebuild a GoP's frames from the decoded intra picture, poses and masks."""

from cpsgd.generators import diffusion, hold, warp  # noqa: F401  (registers the backends; diffusion loads torch lazily)
from cpsgd.generators.base import GENERATORS, Generator, GopConditions

__all__ = ["GENERATORS", "Generator", "GopConditions"]
