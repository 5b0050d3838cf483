"""Adaptive binary arithmetic coding of small integer tables (constriction's range coder), shared by
the section codecs that code a few numbers per frame: the compact pose codec and the object motion
codec.

Integers are coded as residuals of a temporal prediction (previous value, or constant velocity),
binarised as zero?, sign, unary up to 6, then Exp-Golomb bypass bits; each binary decision of a
group of columns has its own adaptive counts."""

from __future__ import annotations

import constriction
import numpy as np

from cpsgd.errors import BitstreamError

UNARY = 6
CONTEXTS_PER_GROUP = 3 + UNARY  # zero flag (2: previous residual zero or not), sign, unary bins
_MAX_PREFIX = 24
_MAX_LEVEL = 2**40


class BinaryCoder:
    """Adaptive binary decisions on a constriction range coder; encodes when ``decoder`` is None.
    ``what`` names the section in error messages."""

    def __init__(
        self, num_contexts: int, what: str, decoder: constriction.stream.queue.RangeDecoder | None = None
    ) -> None:
        self.counts = [[0.5, 0.5] for _ in range(num_contexts)]  # Krichevsky-Trofimov start
        self.what = what
        self.decoder = decoder
        self.encoder = None if decoder else constriction.stream.queue.RangeEncoder()
        self.information = 0.0  # ideal code length in bits, to compare candidate codings

    @classmethod
    def reading(cls, num_contexts: int, what: str, data: bytes) -> BinaryCoder:
        return cls(num_contexts, what, constriction.stream.queue.RangeDecoder(bytes_to_words(data)))

    def _code(self, p_one: float, bit: int | None) -> int:
        model = constriction.stream.model.Bernoulli(p_one, perfect=False)
        if self.decoder is None:
            self.encoder.encode(int(bit), model)
            self.information -= np.log2(p_one if bit else 1.0 - p_one)
            return int(bit)
        try:
            return int(self.decoder.decode(model))
        except (AssertionError, ValueError):
            raise BitstreamError(f"{self.what}: corrupt arithmetic-coded data") from None

    def adaptive(self, context: int, bit: int | None = None) -> int:
        c = self.counts[context]
        bit = self._code(c[1] / (c[0] + c[1]), bit)
        c[bit] += 1.0
        return bit

    def bypass(self, bit: int | None = None) -> int:
        return self._code(0.5, bit)

    def exp_golomb(self, value: int | None) -> int:
        """Order-0 Exp-Golomb of value >= 0 on bypass bits."""
        if value is not None:
            length = (value + 1).bit_length()
            for _ in range(length - 1):
                self.bypass(0)
            for i in range(length - 1, -1, -1):
                self.bypass(((value + 1) >> i) & 1)
            return value
        zeros = 0
        while self.bypass() == 0:
            zeros += 1
            if zeros > _MAX_PREFIX:
                raise BitstreamError(f"{self.what}: residual code too long")
        number = 1
        for _ in range(zeros):
            number = (number << 1) | self.bypass()
        return number - 1

    def residual(self, base: int, previous_zero: bool, value: int | None = None) -> int:
        encoding = value is not None
        if not self.adaptive(base + int(previous_zero), int(value != 0) if encoding else None):
            return 0
        negative = self.adaptive(base + 2, int(value < 0) if encoding else None)
        magnitude = abs(value) if encoding else 0
        level = 1
        while level <= UNARY:
            if not self.adaptive(base + 2 + level, int(magnitude > level) if encoding else None):
                break
            level += 1
        else:
            level = UNARY + 1 + self.exp_golomb(magnitude - UNARY - 1 if encoding else None)
        return -level if negative else level

    def compressed(self) -> bytes:
        return words_to_bytes(self.encoder.get_compressed())


def code_levels(
    coder: BinaryCoder, group: int, order: int, levels: np.ndarray | None, shape: tuple[int, int]
) -> np.ndarray:
    """Code (frames, columns) integer levels (decode them when ``levels`` is None) as residuals of
    a prediction from the decoded previous ones: the previous value (order 1) or 2 x previous - the
    one before (order 2). Group ``group`` uses contexts ``group * CONTEXTS_PER_GROUP`` onwards."""
    base = group * CONTEXTS_PER_GROUP
    out = np.zeros((shape[0] + 2, shape[1]), dtype=np.int64)  # two zero rows: frame 0 and before
    previous_zero = [True] * shape[1]
    for i in range(shape[0]):
        prediction = 2 * out[i + 1] - out[i] if order == 2 else out[i + 1]
        for j in range(shape[1]):
            value = None if levels is None else int(levels[i, j] - prediction[j])
            residual = coder.residual(base, previous_zero[j], value)
            previous_zero[j] = residual == 0
            out[i + 2, j] = prediction[j] + residual
            if abs(out[i + 2, j]) > _MAX_LEVEL:
                raise BitstreamError(f"{coder.what}: value out of range")
    return out[2:]


def words_to_bytes(words: np.ndarray) -> bytes:
    return words.astype(">u4").tobytes()


def bytes_to_words(data: bytes) -> np.ndarray:
    padded = data + b"\0" * ((-len(data)) % 4)
    return np.frombuffer(padded, dtype=">u4").astype(np.uint32)


Groups = list[tuple[int, int, np.ndarray]]  # (context group, predictor order, (frames, columns) levels)


def ideal_bits(levels: np.ndarray, order: int) -> float:
    """What ``levels`` would cost alone with predictor ``order`` (ideal code length, bits)."""
    coder = BinaryCoder(CONTEXTS_PER_GROUP, "cost estimate")
    code_levels(coder, 0, order, levels, levels.shape)
    return coder.information


def encode_groups(groups: Groups, num_contexts: int, what: str) -> bytes:
    """The range coder's bytes for ``groups`` in turn, without the trailing bytes the decoder does
    not need (it pads with zeros); at least one byte, since an empty payload reads as truncated."""
    coder = BinaryCoder(num_contexts, what)
    for group, order, levels in groups:
        code_levels(coder, group, order, levels, levels.shape)
    data = coder.compressed()
    while len(data) > 1 and _decodes_to(data[:-1], groups, num_contexts, what):
        data = data[:-1]
    return data


def _decodes_to(data: bytes, groups: Groups, num_contexts: int, what: str) -> bool:
    coder = BinaryCoder.reading(num_contexts, what, data)
    try:
        return all(np.array_equal(code_levels(coder, g, o, None, lv.shape), lv) for g, o, lv in groups)
    except BitstreamError:
        return False
