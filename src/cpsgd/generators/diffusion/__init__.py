"""Stable Video Diffusion generator with camera and segmentation adapters (the paper's generator).

Importing this package registers ``"diffusion"`` in ``GENERATORS`` without importing torch or
diffusers; those load with the model. Needs the ``diffusion`` extra: ``pip install 'cpsgd[diffusion]'``.
"""

from cpsgd.generators.diffusion.generator import (
    DiffusionConfig,
    DiffusionGenerator,
    add_diffusion_decode_args,
    chunk_plan,
)

__all__ = ["DiffusionConfig", "DiffusionGenerator", "add_diffusion_decode_args", "chunk_plan"]
