"""Shared fixtures: tiny textured clips and the optional development data beside the repo."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def textured_clip(num_frames: int, height: int, width: int, step: int = 2) -> np.ndarray:
    """A photograph sliding sideways: cheap, natural-looking test video."""
    image = cv2.resize(skimage.data.astronaut(), (width + step * num_frames, height))
    return np.stack([image[:, i * step : i * step + width] for i in range(num_frames)])


def damaged_payloads(data: bytes, flips: int, tail: bytes = b"\x00") -> list[bytes]:
    """Every truncation of ``data``, ``data`` with ``tail`` appended, and ``flips`` copies with one
    random bit flipped (seeded): what a section parser must survive."""
    rng = np.random.default_rng(0)
    damaged = [data[:cut] for cut in range(len(data))] + [data + tail]
    for _ in range(flips):
        broken = bytearray(data)
        broken[rng.integers(len(data))] ^= 1 << rng.integers(8)
        damaged.append(bytes(broken))
    return damaged


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"development data not found at {SHARED_DATA} (real clips and trajectories beside the repository: see BENCHMARKS.md, Data)")
    return SHARED_DATA
