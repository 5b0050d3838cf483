"""Bit-level writing and reading (LSB-first within each byte) with Elias-gamma integers, for the
small tables of the pose codecs. Reads past the end raise BitstreamError."""

from __future__ import annotations

import numpy as np

from cpsgd.errors import BitstreamError


class BitWriter:
    def __init__(self) -> None:
        self._bits: list[int] = []

    def bits(self, value: int, count: int) -> None:
        self._bits.extend((value >> i) & 1 for i in range(count))

    def gamma(self, value: int) -> None:
        """Elias gamma of value >= 1: (bit length - 1) zeros, then the value's bits, MSB first."""
        if value < 1:
            raise ValueError("gamma codes need value >= 1")
        length = value.bit_length()
        self._bits.extend([0] * (length - 1))
        self._bits.extend((value >> i) & 1 for i in range(length - 1, -1, -1))

    def extend(self, bits: np.ndarray) -> None:
        self._bits.extend(int(b) for b in bits)

    def __len__(self) -> int:
        return len(self._bits)

    def getvalue(self) -> bytes:
        return np.packbits(np.array(self._bits, dtype=np.uint8), bitorder="little").tobytes()


class BitReader:
    def __init__(self, data: bytes, what: str = "section") -> None:
        self._bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
        self._pos = 0
        self.what = what

    @property
    def remaining(self) -> int:
        return len(self._bits) - self._pos

    def take(self, count: int) -> np.ndarray:
        if count > self.remaining:
            raise BitstreamError(f"{self.what} is truncated")
        chunk = self._bits[self._pos : self._pos + count]
        self._pos += count
        return chunk

    def bits(self, count: int) -> int:
        return int(sum(int(b) << i for i, b in enumerate(self.take(count))))

    def gamma(self, max_bits: int = 32) -> int:
        zeros = 0
        while self.take(1)[0] == 0:
            zeros += 1
            if zeros >= max_bits:
                raise BitstreamError(f"{self.what}: integer code too long")
        value = 1
        for b in self.take(zeros):
            value = (value << 1) | int(b)
        return value

    def expect_end(self) -> None:
        """Only the zero padding of the last byte may be left."""
        if self.remaining >= 8 or self._bits[self._pos :].any():
            raise BitstreamError(f"{self.what} has unexpected trailing data")
