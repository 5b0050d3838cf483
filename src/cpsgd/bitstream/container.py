"""The .cpsgd file: a versioned header, then per GoP a small GoP header and typed sections.

Layout (all integers little-endian)::

    file    = magic "CPSG" | version u8 | header | crc32(header) | gop*
    header  = width u16 | height u16 | fps_num u32 | fps_den u32 | gop_size u16
              | num_frames u32 | num_gops u32 | generator u8
    gop     = num_frames varint | num_sections u8 | crc16(gop header) | section*
    section = tag u8 (type << 4 | backend code) | length varint | payload | crc16(tag..payload)

The counts in the header are patched when the writer closes, so a file cut at a GoP boundary is
still detected. CRC-16 (CCITT) per section keeps the fixed cost at 4-5 bytes a section, which
matters when a whole GoP is a few hundred bytes.

``generator`` (version 2) names the decoder-side generator the encoder made the stream for
(``GENERATOR_CODES``), which `cpsgd decode` uses unless told otherwise; version 1 streams, without
it, were all made for ``warp`` and are still read.
"""

from __future__ import annotations

import binascii
import enum
import io
import os
import struct
import zlib
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import BinaryIO, Iterator

from cpsgd.errors import BitstreamError, InputError

MAGIC = b"CPSG"
VERSION = 2
_HEADERS = {1: struct.Struct("<HHIIHII"), 2: struct.Struct("<HHIIHIIB")}  # by version
HEADER_STRUCT = _HEADERS[VERSION]  # the current header (crafted test streams pack it unchecked)
GENERATOR_CODES = ("warp", "diffusion")  # header code -> the generator a stream is made for

# Sane limits, checked before anything is allocated.
MAX_DIMENSION = 16384
MAX_FRAMES = 10_000_000
MAX_GOP_FRAMES = 1024
MAX_SECTIONS = 16
MAX_SECTION_BYTES = 64 << 20
# A GoP is decoded whole (frames and masks in memory, about 4 bytes a pixel): this bounds what a
# header can ask for, e.g. 129 frames of 1920x1080, 32 of 3840x2160, 4 of 8192x8192.
MAX_GOP_PIXELS = 1 << 28
MAX_RATE_TERM = 2**31 - 1  # frame rate numerator and denominator (FFmpeg's rationals are 32-bit)


class SectionType(enum.IntEnum):
    TEXT = 1
    INTRA = 2
    POSES = 3
    MASKS = 4
    GEOMETRY = 5
    OBJECTS = 6
    INTER = 7  # the GoP as video, instead of an intra picture (new with format version 2)

    @property
    def part(self) -> str:
        """The name of the part in `cpsgd info` (the paper's Table 1 columns)."""
        return {
            1: "text", 2: "intra", 3: "camera_pose", 4: "segmentation", 5: "geometry", 6: "object_motion",
            7: "inter",
        }[self.value]


@dataclass(frozen=True)
class StreamHeader:
    width: int
    height: int
    fps: Fraction
    gop_size: int
    num_frames: int = 0
    num_gops: int = 0
    generator: str = "warp"  # the decoder-side generator the stream was made for

    def problem(self) -> str | None:
        """What puts this header out of the limits the reader enforces (None: nothing)."""
        width, height, gop = self.width, self.height, self.gop_size
        if not (1 <= width <= MAX_DIMENSION and 1 <= height <= MAX_DIMENSION):
            return f"frame size {width}x{height} is out of range (1 to {MAX_DIMENSION} a side)"
        if self.fps <= 0 or max(self.fps.numerator, self.fps.denominator) > MAX_RATE_TERM:
            return f"frame rate {self.fps} is out of range"
        if not 1 <= gop <= MAX_GOP_FRAMES:
            return f"GoP size {gop} is out of range (1 to {MAX_GOP_FRAMES})"
        if gop * width * height > MAX_GOP_PIXELS:
            return (
                f"GoPs of {gop} frames of {width}x{height} exceed the limit of {MAX_GOP_PIXELS:,} pixels "
                f"a GoP (at this size at most {max(MAX_GOP_PIXELS // (width * height), 1)} frames)"
            )
        if self.num_frames > MAX_FRAMES or self.num_gops > self.num_frames or (self.num_frames and not self.num_gops):
            return f"frame count {self.num_frames} / GoP count {self.num_gops} is out of range"
        return None

    def pack(self) -> bytes:
        return HEADER_STRUCT.pack(
            self.width, self.height, self.fps.numerator, self.fps.denominator,
            self.gop_size, self.num_frames, self.num_gops, GENERATOR_CODES.index(self.generator),
        )

    @classmethod
    def unpack(cls, data: bytes, version: int = VERSION) -> StreamHeader:
        width, height, num, den, gop_size, num_frames, num_gops, *rest = _HEADERS[version].unpack(data)
        code = rest[0] if rest else 0  # version 1 streams were made for warp
        if code >= len(GENERATOR_CODES):
            raise BitstreamError(f"unknown generator code {code} in the header")
        if num == 0 or den == 0:
            raise BitstreamError("frame rate is zero")
        header = cls(width, height, Fraction(num, den), gop_size, num_frames, num_gops, GENERATOR_CODES[code])
        if problem := header.problem():
            raise BitstreamError(problem)
        if not num_frames:
            raise BitstreamError("the stream holds no frames")
        return header


@dataclass(frozen=True)
class Section:
    type: SectionType
    backend: int
    payload: bytes


@dataclass(frozen=True)
class Gop:
    index: int
    num_frames: int
    sections: tuple[Section, ...]
    coded_bytes: int  # everything this GoP occupies in the file, headers and CRCs included
    damage: str | None = None  # set (instead of raising) when reading with keep_going

    def find(self, section_type: SectionType) -> Section | None:
        return next((s for s in self.sections if s.type == section_type), None)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _crc16(data: bytes) -> bytes:
    return struct.pack("<H", binascii.crc_hqx(data, 0xFFFF))


def pack_gop(num_frames: int, sections: list[Section]) -> bytes:
    """Serialise one GoP (used by the writer and by tools that splice GoPs)."""
    if not 1 <= num_frames <= MAX_GOP_FRAMES or len(sections) > MAX_SECTIONS:
        raise ValueError("GoP out of limits")
    head = _varint(num_frames) + bytes([len(sections)])
    out = [head, _crc16(head)]
    for section in sections:
        if not 0 <= section.backend <= 15:
            raise ValueError("backend code must fit in 4 bits")
        body = bytes([section.type << 4 | section.backend]) + _varint(len(section.payload)) + section.payload
        out += [body, _crc16(body)]
    return b"".join(out)


class BitstreamWriter:
    """Writes a stream GoP by GoP to a seekable binary file; `close` fills in the counts."""

    def __init__(self, file: BinaryIO, header: StreamHeader) -> None:
        if problem := header.problem():
            raise InputError(f"cannot code this video: {problem}")
        self._file = file
        self._header = header
        self._frames = 0
        self._gops = 0
        self._start = file.tell()
        self._write_header()

    def _write_header(self) -> None:
        header = replace(self._header, num_frames=self._frames, num_gops=self._gops).pack()
        self._file.write(MAGIC + bytes([VERSION]) + header + struct.pack("<I", zlib.crc32(header)))

    def write_gop(self, num_frames: int, sections: list[Section]) -> int:
        """Append one GoP; returns the bytes it took."""
        data = pack_gop(num_frames, sections)
        self._file.write(data)
        self._frames += num_frames
        self._gops += 1
        return len(data)

    def close(self) -> None:
        end = self._file.tell()
        self._file.seek(self._start)
        self._write_header()
        self._file.seek(end)


HEADER_BYTES = len(MAGIC) + 1 + HEADER_STRUCT.size + 4


class BitstreamReader:
    """Reads and checks a stream. Every length is checked against the bytes that remain."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        start = file.tell()
        file.seek(0, os.SEEK_END)
        self._end = file.tell()
        file.seek(start)
        # the same answer for any file that does not start like a cpsgd file, whatever its size
        if self._file.read(len(MAGIC)) != MAGIC:
            raise BitstreamError("not a cpsgd file (bad magic)")
        file.seek(start + len(MAGIC))
        head = MAGIC + self._read(1, "file header")
        version = head[4]
        if version not in _HEADERS:
            readable = ", ".join(map(str, _HEADERS))
            raise BitstreamError(f"unsupported cpsgd version {version} (this build reads {readable})")
        packed = self._read(_HEADERS[version].size, "file header")
        (crc,) = struct.unpack("<I", self._read(4, "file header"))
        if zlib.crc32(packed) != crc:
            raise BitstreamError("file header is corrupt (CRC mismatch)")
        self.header = StreamHeader.unpack(packed, version)
        self.header_bytes = len(head) + len(packed) + 4

    @classmethod
    def from_bytes(cls, data: bytes) -> BitstreamReader:
        return cls(io.BytesIO(data))

    def _read(self, n: int, what: str) -> bytes:
        if n > self._end - self._file.tell():
            raise BitstreamError(f"{what} is truncated")
        return self._file.read(n)

    def _read_varint(self, what: str) -> int:
        value = shift = 0
        while True:
            byte = self._read(1, what)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 35:
                raise BitstreamError(f"{what}: malformed length")

    def _read_section(self, where: str) -> tuple[Section | None, str | None]:
        """Returns (section, None), or (None, what is wrong) when the section's framing is
        intact but its content is not; framing errors raise."""
        tag = self._read(1, where)[0]
        length = self._read_varint(where)
        if length > MAX_SECTION_BYTES:
            raise BitstreamError(f"{where}: section length {length} exceeds the limit")
        payload = self._read(length, where)
        crc = self._read(2, where)
        if _crc16(bytes([tag]) + _varint(length) + payload) != crc:
            return None, f"{where}: CRC mismatch (corrupt data)"
        if tag >> 4 not in SectionType._value2member_map_:
            return None, f"{where}: unknown section type {tag >> 4}"
        return Section(SectionType(tag >> 4), tag & 0x0F, payload), None

    def gops(self, keep_going: bool = False) -> Iterator[Gop]:
        """Yield every GoP. A GoP whose sections are damaged but whose framing is intact raises,
        or with ``keep_going`` comes out with ``damage`` set so that later GoPs can still be read."""
        frames = 0
        for index in range(self.header.num_gops):
            where = f"GoP {index}"
            start = self._file.tell()
            num_frames = self._read_varint(where)
            count = self._read(1, where)[0]
            if _crc16(_varint(num_frames) + bytes([count])) != self._read(2, where):
                raise BitstreamError(f"{where}: header CRC mismatch (corrupt data)")
            if not 1 <= num_frames <= self.header.gop_size or count > MAX_SECTIONS:
                raise BitstreamError(f"{where}: {num_frames} frames / {count} sections is out of range")
            frames += num_frames
            if frames > self.header.num_frames:
                raise BitstreamError(f"{where}: more frames than the header declares")
            read = [self._read_section(f"{where}, section {i}") for i in range(count)]
            sections = tuple(section for section, _ in read if section is not None)
            problems = [problem for _, problem in read if problem]
            types = [s.type for s in sections]
            if len(set(types)) != len(types):
                problems.append(f"{where}: a section type appears twice")
            if problems and not keep_going:
                raise BitstreamError(problems[0])
            yield Gop(index, num_frames, sections, self._file.tell() - start, problems[0] if problems else None)
        if frames != self.header.num_frames:
            raise BitstreamError("stream ends before the frame count in its header")
        if self._file.tell() != self._end:
            raise BitstreamError(f"{self._end - self._file.tell()} unexpected bytes after the last GoP")
