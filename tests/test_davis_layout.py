"""DAVIS as distributed: JPEGImages/480p/<seq> and Annotations/480p/<seq>, JPEG or PNG frames,
DAVIS-2016 grey or DAVIS-2017 palette annotations, and a clear message when frames are missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cpsgd.bench.datasets import Protocol, find_sources, load_sequence
from cpsgd.errors import InputError
from cpsgd.masks.davis import davis_sequences, load_davis_clip

from conftest import textured_clip


def make_davis(root: Path, names: list[str], frames: int = 4, suffix: str = ".jpg", level: str = "480p",
               palette: bool = False) -> Path:
    for name in names:
        images, annotations = root / "JPEGImages" / level / name, root / "Annotations" / level / name
        images.mkdir(parents=True)
        annotations.mkdir(parents=True)
        for i, frame in enumerate(textured_clip(frames, 48, 80)):
            Image.fromarray(frame).save(images / f"{i:05d}{suffix}")
            mask = np.zeros((48, 80), np.uint8)
            mask[10:30, 20 + i : 50 + i] = 1 if palette else 255
            image = Image.fromarray(mask, "P" if palette else "L")
            if palette:
                image.putpalette([0, 0, 0, 128, 0, 0])  # object 1 is dark red: its grey value is under half
            image.save(annotations / f"{i:05d}.png")
    return root


@pytest.mark.parametrize("level", ["480p", ""])
def test_sequences_are_found_below_the_resolution_folder(tmp_path: Path, level: str) -> None:
    root = make_davis(tmp_path / "DAVIS", ["bear", "dog"], level=level)
    assert [s.name for s in find_sources(root)] == ["bear", "dog"]
    assert davis_sequences(root) == ["bear", "dog"]
    sequence = load_sequence(find_sources(root)[0], Protocol(frames=3, size=32))
    assert sequence.frames.shape == (3, 32, 32, 3) and sequence.masks.shape == (3, 32, 32)


@pytest.mark.parametrize("palette", [False, True])
def test_png_frames_and_both_annotation_kinds(tmp_path: Path, palette: bool) -> None:
    root = make_davis(tmp_path / "DAVIS", ["bear"], suffix=".png", palette=palette)
    frames, masks = load_davis_clip(root, "bear", num_frames=4, size=48)
    assert frames.shape == (4, 48, 48, 3)
    assert 0.1 < masks.mean() < 0.4  # the object, neither lost nor everything


def test_too_few_frames_says_what_it_found_and_where(tmp_path: Path) -> None:
    root = make_davis(tmp_path / "DAVIS", ["bear"], frames=2)
    with pytest.raises(InputError, match=r"2 frames in .*480p/bear and 2 annotations in .*480p/bear, 25 needed"):
        load_davis_clip(root, "bear")
