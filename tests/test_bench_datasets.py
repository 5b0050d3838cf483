"""Dataset discovery and the paper's protocol."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cpsgd.bench.datasets import Protocol, find_sources, load_dataset
from cpsgd.errors import InputError
from cpsgd.video import open_writer
from tests.conftest import textured_clip


def make_davis(root: Path, names: tuple[str, ...], frames: int = 5, annotate: bool = True) -> Path:
    """A DAVIS-layout folder of wide frames (80x48) with a box annotation."""
    for name in names:
        (root / "JPEGImages" / name).mkdir(parents=True)
        if annotate:
            (root / "Annotations" / name).mkdir(parents=True)
        for i, frame in enumerate(textured_clip(frames, 48, 80)):
            Image.fromarray(frame).save(root / "JPEGImages" / name / f"{i:05d}.jpg", quality=95)
            if annotate:
                mask = np.zeros((48, 80), np.uint8)
                mask[10:30, 30 + i : 50 + i] = 255
                Image.fromarray(mask).save(root / "Annotations" / name / f"{i:05d}.png")
    return root


def test_davis_layout_center_crop_and_masks(tmp_path):
    root = make_davis(tmp_path / "davis", ("b", "a"))
    seqs = list(load_dataset(root, Protocol(frames=3, size=32)))
    assert [s.name for s in seqs] == ["a", "b"]
    assert seqs[0].frames.shape == (3, 32, 32, 3) and seqs[0].fps == 24.0
    assert seqs[0].masks.shape == (3, 32, 32) and set(np.unique(seqs[0].masks)) == {0, 1}


def test_video_folder_and_list(tmp_path):
    (tmp_path / "videos").mkdir()
    writer = open_writer(tmp_path / "videos" / "clip.mp4", 25)
    for frame in textured_clip(4, 48, 64):
        writer.write(frame)
    writer.close()
    make_davis(tmp_path / "davis", ("s",), annotate=False)
    listing = tmp_path / "list.txt"
    listing.write_text("# sequences\nvideos\ndavis\n")
    sources = find_sources(listing)
    assert [(s.name, s.kind) for s in sources] == [("clip", "video"), ("s", "davis")]
    seqs = list(load_dataset(listing, Protocol(frames=3, size=16)))
    assert [s.frames.shape for s in seqs] == [(3, 16, 16, 3)] * 2
    assert seqs[0].fps == 25 and seqs[1].masks is None


def test_missing_dataset_is_an_input_error(tmp_path):
    with pytest.raises(InputError):
        find_sources(tmp_path / "nope")


def test_folder_of_clip_folders_with_optional_masks(tmp_path):
    """The layout of ../shared/data/more: <clip>/frames and, for some clips, <clip>/masks."""
    for name, masked in (("walk", True), ("bed", False)):
        (tmp_path / name / "frames").mkdir(parents=True)
        for i, frame in enumerate(textured_clip(4, 48, 80)):
            Image.fromarray(frame).save(tmp_path / name / "frames" / f"{i:05d}.png")
            if masked:
                (tmp_path / name / "masks").mkdir(exist_ok=True)
                mask = np.zeros((48, 80), np.uint8)
                mask[8:40, 24:56] = 255
                Image.fromarray(mask).save(tmp_path / name / "masks" / f"{i:05d}.png")
    assert [(s.name, s.kind) for s in find_sources(tmp_path)] == [("bed", "clip"), ("walk", "clip")]
    bed, walk = load_dataset(tmp_path, Protocol(frames=3, size=32))
    assert bed.masks is None and bed.frames.shape == (3, 32, 32, 3)
    # Cropped to the centre 48x48 square and resized to 32 as the frames are: the 32x32 box becomes
    # about 21x21, centred.
    assert walk.masks.shape == (3, 32, 32) and walk.masks[0].sum() == pytest.approx(21.3**2, rel=0.1)
    assert walk.masks[0, 16, 16] == 1 and walk.masks[0, 2, 2] == 0
    assert find_sources(tmp_path / "walk")[0].name == "walk"
