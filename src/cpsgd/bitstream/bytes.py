"""Bounds-checked little-endian byte writing and reading for section payloads.

Every read checks the remaining length first, so a truncated or lying payload raises
``BitstreamError`` instead of an IndexError, a huge allocation or a hang.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from cpsgd.errors import BitstreamError


class ByteWriter:
    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, value: int) -> None:
        self._parts.append(struct.pack("<B", value))

    def u16(self, value: int) -> None:
        self._parts.append(struct.pack("<H", value))

    def u32(self, value: int) -> None:
        self._parts.append(struct.pack("<I", value))

    def f16(self, value: float) -> None:
        self._parts.append(np.float16(value).tobytes())

    def varint(self, value: int) -> None:
        """Unsigned LEB128: small numbers (lengths, counts) take one byte."""
        if value < 0:
            raise ValueError("varint must be non-negative")
        out = bytearray()
        while True:
            byte = value & 0x7F
            value >>= 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                break
        self._parts.append(bytes(out))

    def raw(self, data: bytes) -> None:
        self._parts.append(bytes(data))

    def blob(self, data: bytes) -> None:
        """Length-prefixed bytes."""
        self.varint(len(data))
        self.raw(data)

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class ByteReader:
    def __init__(self, data: bytes, what: str = "section") -> None:
        self._data = memoryview(data)
        self._pos = 0
        self.what = what

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def _take(self, n: int) -> memoryview:
        if n < 0 or n > self.remaining:
            raise BitstreamError(f"{self.what} is truncated (needs {n} bytes, {self.remaining} left)")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def u8(self) -> int:
        return self._take(1)[0]

    def u16(self) -> int:
        return struct.unpack("<H", self._take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self._take(4))[0]

    def f16(self) -> float:
        return self._finite(float(np.frombuffer(self._take(2), dtype="<f2")[0]))

    def varint(self, limit: int = 2**32) -> int:
        value = shift = 0
        while True:
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 63:
                raise BitstreamError(f"{self.what}: varint too long")
        if value > limit:
            raise BitstreamError(f"{self.what}: value {value} exceeds limit {limit}")
        return value

    def raw(self, n: int) -> bytes:
        return bytes(self._take(n))

    def blob(self, limit: int | None = None) -> bytes:
        n = self.varint(self.remaining if limit is None else min(limit, self.remaining))
        return self.raw(n)

    def rest(self) -> bytes:
        return self.raw(self.remaining)

    def expect_end(self) -> None:
        if self.remaining:
            raise BitstreamError(f"{self.what} has {self.remaining} unexpected trailing bytes")

    def _finite(self, value: float) -> float:
        if not math.isfinite(value):
            raise BitstreamError(f"{self.what} holds a non-finite number")
        return value
