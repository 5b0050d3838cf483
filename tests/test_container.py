"""The container: round trip, exact accounting, and every kind of damage raising BitstreamError."""

from __future__ import annotations

import io
import struct
import zlib
from fractions import Fraction

import pytest

from cpsgd.bitstream.container import (
    HEADER_BYTES, MAGIC, BitstreamReader, BitstreamWriter, Section, SectionType, StreamHeader,
)
from cpsgd.bitstream.info import inspect_stream
from cpsgd.errors import BitstreamError


def make_stream(gops: list[tuple[int, list[Section]]], width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    writer = BitstreamWriter(out, StreamHeader(width, height, Fraction(30000, 1001), 8))
    for count, sections in gops:
        writer.write_gop(count, sections)
    writer.close()
    return out.getvalue()


SAMPLE = [
    (8, [Section(SectionType.TEXT, 1, b"caption"), Section(SectionType.INTRA, 2, b"x" * 300)]),
    (3, [Section(SectionType.INTRA, 2, b"y" * 40), Section(SectionType.POSES, 1, b"")]),
]


def read_all(data: bytes):
    reader = BitstreamReader.from_bytes(data)
    return reader.header, list(reader.gops())


def test_round_trip_keeps_header_and_sections() -> None:
    header, gops = read_all(make_stream(SAMPLE))
    assert (header.width, header.height, header.fps, header.num_frames, header.num_gops) == (
        64, 48, Fraction(30000, 1001), 11, 2,
    )
    assert [g.num_frames for g in gops] == [8, 3]
    assert gops[0].find(SectionType.TEXT).payload == b"caption"
    assert gops[1].find(SectionType.INTRA).payload == b"y" * 40
    assert gops[1].find(SectionType.POSES).payload == b""


def test_info_parts_add_up_to_file_size() -> None:
    data = make_stream(SAMPLE)
    info = inspect_stream(io.BytesIO(data))
    assert info.total_bits == 8 * len(data) == sum(info.bits.values())
    assert info.bits["intra"] == 8 * 340 and info.bits["text"] == 8 * 7
    assert sum(sum(g.bits.values()) for g in info.gops) + 8 * HEADER_BYTES == info.total_bits


@pytest.mark.parametrize("cut", range(1, 60, 3))
def test_every_truncation_is_detected(cut: int) -> None:
    data = make_stream(SAMPLE)
    with pytest.raises(BitstreamError):
        read_all(data[: len(data) - cut])


def test_truncation_at_a_gop_boundary_is_detected() -> None:
    one = make_stream(SAMPLE[:1])
    two = make_stream(SAMPLE)
    # the first GoP of `two` ends where `one` ends, but `two`'s header promises two GoPs
    with pytest.raises(BitstreamError, match="frame count|truncated"):
        read_all(two[: len(one)])


def test_every_bit_flip_is_detected() -> None:
    data = bytearray(make_stream(SAMPLE))
    for position in range(len(data)):
        for bit in (0, 7):
            damaged = bytearray(data)
            damaged[position] ^= 1 << bit
            with pytest.raises(BitstreamError):
                read_all(bytes(damaged))


def _with_header(width: int, height: int, version: int = 1) -> bytes:
    packed = struct.pack("<HHIIHII", width, height, 25, 1, 25, 1, 1)
    return MAGIC + bytes([version]) + packed + struct.pack("<I", zlib.crc32(packed))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "not a cpsgd file"),  # short or foreign: the same answer
        (b"RIF", "not a cpsgd file"),
        (b"RIFF" + b"\0" * 40, "not a cpsgd file"),
        (MAGIC + b"\1", "file header is truncated"),
        (_with_header(64, 48, version=9), "version"),
        (_with_header(0, 48), "out of range"),
        (_with_header(65535, 65535), "out of range"),
    ],
)
def test_bad_headers(data: bytes, message: str) -> None:
    with pytest.raises(BitstreamError, match=message):
        read_all(data)


def test_huge_declared_section_length_fails_before_allocating() -> None:
    data = bytearray(make_stream([(1, [Section(SectionType.INTRA, 0, b"ab")])]))
    # GoP header is 4 bytes after the file header; then tag, then the length varint.
    length_at = HEADER_BYTES + 4 + 1
    data[length_at : length_at + 1] = bytes([0xFF, 0xFF, 0xFF, 0xFF, 0x0F])
    with pytest.raises(BitstreamError):
        read_all(bytes(data))


def test_trailing_garbage_is_rejected() -> None:
    with pytest.raises(BitstreamError, match="unexpected bytes"):
        read_all(make_stream(SAMPLE) + b"\0")
