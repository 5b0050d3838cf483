"""Decoder-side generators: rebuild a GoP's frames from the decoded intra picture, poses and masks.

The backends (warp, hold, diffusion) load when GENERATORS first gives them out."""

from cpsgd.generators.base import GENERATORS, Generator, GopConditions

__all__ = ["GENERATORS", "Generator", "GopConditions"]
