"""Mask folders, standalone mask files and the `masks` commands."""

import argparse
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cpsgd.errors import BitstreamError, InputError
from cpsgd.masks.cli import add_mask_commands
from cpsgd.masks.io import decompress_mask_file, read_mask_dir, write_mask_dir


def run(*argv: str) -> None:
    parser = argparse.ArgumentParser()
    add_mask_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.handler(args)


def labels(n=6, h=40, w=48) -> np.ndarray:
    masks = np.zeros((n, h, w), np.uint8)
    for t in range(n):
        masks[t, 5 + t : 20 + t, 4:18] = 1
        masks[t, 22:34, 20 + t : 40 + t] = 2
    return masks


def test_read_davis_layout_binary_and_palette(tmp_path):
    binary = tmp_path / "binary"
    binary.mkdir()
    for i in range(3):
        m = np.zeros((10, 12), np.uint8)
        m[2:6, 3 + i : 8 + i] = 255
        Image.fromarray(m, mode="L").save(binary / f"{i:05d}.png")
    masks = read_mask_dir(binary, expected_count=3)
    assert masks.shape == (3, 10, 12) and set(np.unique(masks)) == {0, 1}
    assert read_mask_dir(binary, size=8).shape == (3, 8, 8)
    with pytest.raises(InputError):
        read_mask_dir(binary, expected_count=4)
    with pytest.raises(InputError):
        read_mask_dir(tmp_path / "missing")

    out = tmp_path / "labels"
    assert write_mask_dir(labels(), out) == 6
    assert min(p.name for p in out.iterdir()) == "frame_00000.png"
    assert Image.open(out / "frame_00000.png").mode == "P"
    assert np.array_equal(read_mask_dir(out), labels())
    with pytest.raises(InputError):
        write_mask_dir(labels(), out)  # exists, no force


def test_compress_decompress_commands_round_trip(tmp_path):
    src, out, binfile = tmp_path / "src", tmp_path / "out", tmp_path / "m.bin"
    write_mask_dir(labels(n=7), src)
    run("masks", "compress", str(src), "-o", str(binfile), "--factor", "1", "--gop", "3")
    run("masks", "decompress", str(binfile), "-o", str(out))
    assert np.array_equal(read_mask_dir(out), labels(n=7))
    with pytest.raises(InputError):
        run("masks", "compress", str(src), "-o", str(binfile))
    run("masks", "compress", str(src), "-o", str(binfile), "--force")  # lossy default
    decoded = read_mask_dir(_decompressed(binfile, tmp_path / "lossy"))
    assert decoded.shape == (7, 40, 48)


def _decompressed(binfile: Path, folder: Path) -> Path:
    run("masks", "decompress", str(binfile), "-o", str(folder))
    return folder


def test_corrupt_mask_file_raises_bitstream_error(tmp_path):
    src, binfile = tmp_path / "src", tmp_path / "m.bin"
    write_mask_dir(labels(), src)
    run("masks", "compress", str(src), "-o", str(binfile))
    data = binfile.read_bytes()
    for bad in (b"", data[:10], b"XXXX" + data[4:], data[:-1], data[:30] + bytes([data[30] ^ 4]) + data[31:]):
        with pytest.raises(BitstreamError):
            list(decompress_mask_file(bad))
    binfile.write_bytes(data[:-2])
    with pytest.raises(BitstreamError):
        run("masks", "decompress", str(binfile), "-o", str(tmp_path / "never"))
    assert not (tmp_path / "never").exists()


def test_estimate_command_writes_a_mask_folder(tmp_path):
    from cpsgd.synth import SceneConfig, make_scene

    clip = make_scene(SceneConfig(traj="static", objects=1, num_frames=6, width=96, height=96, seed=2))
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, f in enumerate(clip.frames):
        Image.fromarray(f).save(frames / f"{i:03d}.png")
    run("masks", "estimate", str(frames), "-o", str(tmp_path / "masks"), "--gop", "4")
    assert read_mask_dir(tmp_path / "masks", expected_count=6).shape == (6, 96, 96)
    with pytest.raises(InputError):
        run("masks", "estimate", str(frames), "-o", str(tmp_path / "m2"), "--segmenter", "sam2")
