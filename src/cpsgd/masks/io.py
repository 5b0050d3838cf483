"""Mask folders (DAVIS annotation layout) and standalone mask files (.bin).

A mask folder holds one PNG per frame, in name order. Binary masks are 8-bit grey with
255 = object (DAVIS-2016); label maps are palette PNGs whose indices are the object ids
(DAVIS-2017), or grey PNGs whose values are the ids. We write frame_00000.png, ...

A standalone mask file is a small header followed by the GoPs' mask-codec payloads:
magic "CPSM", version, codec code, frame count, height, width, GoP length, CRC-32 of the rest,
then per GoP a length-prefixed payload.
"""

from __future__ import annotations

import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from cpsgd.bitstream.bytes import ByteReader, ByteWriter
from cpsgd.bitstream.container import MAX_GOP_PIXELS
from cpsgd.errors import BitstreamError, InputError
from cpsgd.masks.base import MASK_CODECS, MaskCodec
from cpsgd.video.reader import frame_order, square_resize
from cpsgd.video.writer import check_output, commit_path, create_temporary, frame_file_name

MAGIC = b"CPSM"
VERSION = 1
MAX_FRAMES = 1_000_000
MAX_SIDE = 8192
MAX_GOP = 1024


def mask_files(path: Path) -> list[Path]:
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"mask folder {path} does not exist")
    files = sorted((p for p in path.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith(".")), key=frame_order)
    if not files:
        raise InputError(f"{path} holds no PNG masks")
    return files


def read_mask(path: Path) -> np.ndarray:
    """One mask PNG -> (H, W) uint8 labels (0 = background)."""
    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode in ("RGB", "RGBA"):
                rgb = np.asarray(image.convert("RGB"))
                if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
                    raise InputError(f"{path.name} is a colour mask: save object ids as a palette or grey PNG")
                values = rgb[..., 0]
            elif mode == "P":
                values = np.asarray(image)
            else:
                values = np.asarray(image.convert("L"))
    except OSError as exc:
        raise InputError(f"cannot read mask {path}: {exc}") from None
    if mode != "P" and set(np.unique(values).tolist()) <= {0, 255}:
        return (values == 255).astype(np.uint8)
    return values.astype(np.uint8)


def read_mask_dir(path: str | Path, expected_count: int | None = None, size: int | None = None) -> np.ndarray:
    """A mask folder -> (N, H, W) uint8 labels. ``size``: centre-crop and resize to a square,
    as ``cpsgd encode --size`` does to the frames (nearest neighbour, so labels stay labels)."""
    files = mask_files(Path(path))
    if expected_count is not None and len(files) != expected_count:
        raise InputError(f"{path} holds {len(files)} masks, but the video has {expected_count} frames")
    masks, first_shape = [], None
    for file in files:
        mask = read_mask(file)
        first_shape = first_shape or mask.shape
        if mask.shape != first_shape:
            raise InputError(f"{file.name} is {mask.shape[1]}x{mask.shape[0]}, unlike the first mask")
        masks.append(square_resize(mask, size, cv2.INTER_NEAREST) if size else mask)
    return np.stack(masks)


class MaskFolder:
    """The user's masks for `cpsgd encode --masks`, read GoP by GoP so that memory does not grow
    with the video (a ``MaskProvider`` for the encoder)."""

    def __init__(self, path: str | Path, frame_shape: tuple[int, int], size: int | None = None) -> None:
        self.files = mask_files(Path(path))
        self.frame_shape = frame_shape
        self.size = size

    def __call__(self, start: int, count: int) -> np.ndarray:
        files = self.files[start : start + count]
        if len(files) < count:
            raise InputError(f"the mask folder has {len(self.files)} masks, fewer than the video's frames")
        masks = []
        for file in files:
            mask = read_mask(file)
            if self.size:
                mask = square_resize(mask, self.size, cv2.INTER_NEAREST)
            if mask.shape != self.frame_shape:
                raise InputError(
                    f"mask {file.name} is {mask.shape[1]}x{mask.shape[0]}, the frames are "
                    f"{self.frame_shape[1]}x{self.frame_shape[0]}"
                )
            masks.append(mask)
        return np.stack(masks)


def _palette() -> list[int]:
    """DAVIS-style palette: index bits spread over the colour channels' high bits."""
    colours = []
    for index in range(256):
        r = g = b = 0
        for shift in range(8):
            r |= ((index >> (3 * shift)) & 1) << (7 - shift)
            g |= ((index >> (3 * shift + 1)) & 1) << (7 - shift)
            b |= ((index >> (3 * shift + 2)) & 1) << (7 - shift)
        colours += [r, g, b]
    return colours


def write_mask_dir(masks: Iterator[np.ndarray] | np.ndarray, path: str | Path, force: bool = False) -> int:
    """Write masks as frame_00000.png, ... (grey 0/255 when binary, palette PNG for label maps).
    The folder appears complete or not at all. Returns the number of frames written."""
    path = Path(path)
    path = check_output(path, force, folder=True)
    tmp = create_temporary(path, folder=True)
    palette = _palette()
    count = 0
    try:
        for block in masks:
            block = block[None] if block.ndim == 2 else block
            binary = int(block.max(initial=0)) <= 1
            for mask in block:
                if binary:
                    image = Image.fromarray((mask * 255).astype(np.uint8), mode="L")
                else:
                    image = Image.fromarray(mask.astype(np.uint8), mode="P")
                    image.putpalette(palette)
                image.save(tmp / frame_file_name(count))
                count += 1
    except BaseException:
        shutil.rmtree(tmp)
        raise
    commit_path(tmp, path)
    return count


def compress_mask_dir(path: str | Path, codec: MaskCodec, gop: int = 25) -> bytes:
    """A mask folder -> standalone mask file bytes, coded GoP by GoP (memory: one GoP)."""
    if not 1 <= gop <= MAX_GOP:
        raise InputError(f"GoP length must be 1..{MAX_GOP}, got {gop}")
    files = mask_files(Path(path))
    first = read_mask(files[0])
    height, width = first.shape
    if height > MAX_SIDE or width > MAX_SIDE:
        raise InputError(f"masks of {width}x{height} exceed {MAX_SIDE} pixels a side")
    if min(gop, len(files)) * height * width > MAX_GOP_PIXELS:
        raise InputError(f"GoPs of {gop} masks of {width}x{height} exceed {MAX_GOP_PIXELS:,} pixels: use a shorter --gop")
    body = ByteWriter()
    for start in range(0, len(files), gop):
        block = read_mask_dir_files(files[start : start + gop], (height, width))
        body.blob(codec.compress(block))
    payload = body.getvalue()
    head = ByteWriter()
    head.raw(MAGIC)
    head.u8(VERSION)
    head.u8(codec.code)
    head.u32(len(files))
    head.u16(height)
    head.u16(width)
    head.u16(gop)
    head.u32(zlib.crc32(payload))
    return head.getvalue() + payload


def read_mask_dir_files(files: list[Path], shape: tuple[int, int]) -> np.ndarray:
    block = np.stack([read_mask(f) for f in files])
    if block.shape[1:] != shape:
        raise InputError(f"all masks must be {shape[1]}x{shape[0]}")
    return block


def decompress_mask_file(data: bytes) -> Iterator[np.ndarray]:
    """Standalone mask file bytes -> (n, H, W) label blocks, one per GoP. Any malformed or
    corrupted input raises BitstreamError (the CRC is checked before decoding)."""
    reader = ByteReader(data, "mask file")
    if reader.raw(4) != MAGIC:
        raise BitstreamError("not a cpsgd mask file (bad magic)")
    if (version := reader.u8()) != VERSION:
        raise BitstreamError(f"mask file version {version} is not supported")
    codec = MASK_CODECS.by_code(reader.u8())()
    frames, height, width, gop = reader.u32(), reader.u16(), reader.u16(), reader.u16()
    if not (0 < frames <= MAX_FRAMES and 0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE and 0 < gop <= MAX_GOP):
        raise BitstreamError(f"mask file header out of range ({frames} frames of {width}x{height}, GoP {gop})")
    if min(gop, frames) * height * width > MAX_GOP_PIXELS:
        raise BitstreamError(f"mask file: GoPs of {gop} masks of {width}x{height} exceed {MAX_GOP_PIXELS:,} pixels")
    crc = reader.u32()
    body = reader.rest()
    if zlib.crc32(body) != crc:
        raise BitstreamError("mask file is corrupted (CRC mismatch)")
    reader = ByteReader(body, "mask file")
    for start in range(0, frames, gop):
        yield codec.decompress(reader.blob(), min(gop, frames - start), height, width)
    reader.expect_end()
