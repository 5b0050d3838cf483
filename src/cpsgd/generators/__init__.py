"""Decoder-side generators: rebuild a GoP's frames from the decoded intra picture, poses and masks."""

from cpsgd.generators import hold  # noqa: F401  (registers the backends)
from cpsgd.generators.base import GENERATORS, Generator, GopConditions

__all__ = ["GENERATORS", "Generator", "GopConditions"]
