"""The paper's pose codec (§2.1.2), code 0.

Encoder: poses relative to frame 1; keep frames 2, 4, ... (1-based; the last frame too when the
GoP length is odd, so that every dropped frame lies between two kept ones); code the differences of
the 12 extrinsic entries between consecutive kept poses in closed loop (each difference is taken
from the *decoded* previous kept pose, so quantisation errors do not pile up); quantise each of the
12 parameters to 8 bits with its own float16 scale s and bias n (e = s B + n); Huffman-code the
bytes. Intrinsics are 4 float16 numbers.

Scale and bias: n is the float16 at or below the smallest difference and s the smallest float16
step that reaches the largest one in 255 steps. In closed loop a difference is the open-loop one
plus the previous error (at most s/2), so no value is ever clipped and every entry's error stays
within s/2: the smallest worst-case error an 8-bit uniform quantiser without clipping can give.

Payload: fx fy cx cy (f16); 12 x (s, n) (f16); then a bit stream: the Huffman table (number of
distinct bytes, then per byte in increasing order the gap to the previous one and its count, Elias
gamma; the decoder rebuilds the same tree from these counts) and the Huffman code words.

Decoder: kept poses from the differences (rotations projected onto SO(3)), dropped frames by slerp
of the neighbours' rotations and the mean of their translations (Eq. 2-3).
"""

from __future__ import annotations

import constriction
import numpy as np

from cpsgd.bitstream.bytes import ByteReader, ByteWriter
from cpsgd.errors import BitstreamError, InputError
from cpsgd.poses._bits import BitReader, BitWriter
from cpsgd.poses.base import POSE_CODECS, PoseCodec
from cpsgd.poses.geometry import nearest_rotation, slerp_rotation
from cpsgd.poses.trajectory import Intrinsics, Trajectory

MAX_FRAMES = 4096
_IDENTITY_PARAMS = np.eye(4)[:3, :4].ravel()
_F16_MAX = float(np.finfo(np.float16).max)


def kept_frames(num_frames: int) -> np.ndarray:
    """0-based indices of the coded poses: 1, 3, 5, ... plus the last frame when it is even."""
    kept = list(range(1, num_frames, 2))
    if num_frames > 1 and (num_frames - 1) % 2 == 0:
        kept.append(num_frames - 1)
    return np.array(kept, dtype=int)


def _f16_down(x: float) -> float:
    v = np.float16(x)
    if float(v) > x:
        v = np.nextafter(v, np.float16(-np.inf))
    return float(v)


def _f16_up(x: float) -> float:
    v = np.float16(x)
    if float(v) < x:
        v = np.nextafter(v, np.float16(np.inf))
    return float(v)


def check_finite(trajectory: Trajectory) -> None:
    k = trajectory.intrinsics
    if not np.all(np.isfinite(trajectory.world_to_camera)) or not np.all(np.isfinite([k.fx, k.fy, k.cx, k.cy])):
        raise InputError("trajectory holds NaN or infinite numbers")
    if k.fx <= 0 or k.fy <= 0:
        raise InputError("focal lengths must be positive")


def write_intrinsics_f16(writer: ByteWriter, k: Intrinsics) -> None:
    for v in (k.fx, k.fy, k.cx, k.cy):
        if abs(v) > _F16_MAX:
            raise InputError(f"intrinsic value {v} does not fit a float16")
        writer.f16(v)


def read_intrinsics_f16(reader: ByteReader) -> Intrinsics:
    fx, fy, cx, cy = (reader.f16() for _ in range(4))
    if fx <= 0 or fy <= 0:
        raise BitstreamError(f"{reader.what}: focal lengths must be positive")
    return Intrinsics(fx, fy, cx, cy)


def check_num_frames(num_frames: int, what: str) -> None:
    if not 1 <= num_frames <= MAX_FRAMES:
        raise BitstreamError(f"{what}: frame count {num_frames} out of range 1..{MAX_FRAMES}")


def interpolate_dropped(w2c: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Fill the frames between kept ones: slerp of rotations and mean of translations (Eq. 2-3)."""
    out = w2c.copy()
    for i in range(2, len(w2c), 2):
        if i in kept:
            continue
        before, after = w2c[i - 1], w2c[i + 1]
        out[i, :3, :3] = slerp_rotation(before[:3, :3], after[:3, :3], 0.5)
        out[i, :3, 3] = 0.5 * (before[:3, 3] + after[:3, 3])
    return out


@POSE_CODECS.register("paper", code=0)
class PaperPoseCodec(PoseCodec):
    # Sizes of the last compressed payload's Huffman table and code words, for the benchmark.
    last_table_bits = 0
    last_code_bits = 0

    def compress(self, trajectory: Trajectory) -> bytes:
        check_finite(trajectory)
        writer = ByteWriter()
        write_intrinsics_f16(writer, trajectory.intrinsics)
        if len(trajectory) == 1:
            return writer.getvalue()
        kept = kept_frames(len(trajectory))
        params = trajectory.relative_to_first().world_to_camera[kept, :3, :4].reshape(len(kept), 12)
        chain = np.vstack([_IDENTITY_PARAMS, params])
        open_loop = np.diff(chain, axis=0)
        lo, hi = open_loop.min(axis=0), open_loop.max(axis=0)
        if np.any(np.abs(lo) > _F16_MAX / 2) or np.any(np.abs(hi) > _F16_MAX / 2):
            raise InputError("pose differences too large for the paper codec's float16 scale and bias")
        bias = np.array([_f16_down(v) for v in lo])
        scale = np.array([_f16_up((h - b) / 255.0) for h, b in zip(hi, bias)])
        for s, n in zip(scale, bias):
            writer.f16(s)
            writer.f16(n)

        symbols = np.zeros((len(kept), 12), dtype=np.int64)
        decoded = _IDENTITY_PARAMS.copy()
        for k in range(len(kept)):  # closed loop: difference from the decoded previous kept pose
            diff = params[k] - decoded
            symbols[k] = np.clip(np.round((diff - bias) / np.where(scale > 0, scale, 1.0)), 0, 255)
            decoded = decoded + scale * symbols[k] + bias

        bits = BitWriter()
        self.last_code_bits = _huffman_encode(bits, symbols.ravel())
        self.last_table_bits = len(bits) - self.last_code_bits
        writer.raw(bits.getvalue())
        return writer.getvalue()

    def decompress(self, data: bytes, num_frames: int) -> Trajectory:
        check_num_frames(num_frames, "paper pose section")
        reader = ByteReader(data, "paper pose section")
        intrinsics = read_intrinsics_f16(reader)
        if num_frames == 1:
            reader.expect_end()
            return Trajectory.identity(1, intrinsics)
        scale_bias = np.array([reader.f16() for _ in range(24)]).reshape(12, 2)
        scale, bias = scale_bias[:, 0], scale_bias[:, 1]
        kept = kept_frames(num_frames)
        bits = BitReader(reader.rest(), "paper pose section")
        symbols = _huffman_decode(bits, 12 * len(kept)).reshape(len(kept), 12)

        w2c = np.tile(np.eye(4), (num_frames, 1, 1))
        decoded = _IDENTITY_PARAMS.copy()
        for k, index in enumerate(kept):
            decoded = decoded + scale * symbols[k] + bias
            w2c[index, :3, :4] = decoded.reshape(3, 4)
        w2c[kept, :3, :3] = nearest_rotation(w2c[kept, :3, :3])
        return Trajectory(intrinsics, interpolate_dropped(w2c, kept))


def _huffman_encode(bits: BitWriter, symbols: np.ndarray) -> int:
    """Write the table and the code words; returns the number of code-word bits."""
    values, counts = np.unique(symbols, return_counts=True)
    bits.gamma(len(values))
    previous = -1
    for value, count in zip(values, counts):
        bits.gamma(int(value - previous))
        bits.gamma(int(count))
        previous = value
    tree = constriction.symbol.huffman.EncoderHuffmanTree(counts.astype(np.float64))
    encoder = constriction.symbol.QueueEncoder()
    for index in np.searchsorted(values, symbols):
        encoder.encode_symbol(int(index), tree)
    words, num_bits = encoder.get_compressed()
    stream = np.unpackbits(words.astype("<u4").view(np.uint8), bitorder="little")[:num_bits]
    bits.extend(stream)
    return int(num_bits)


def _huffman_decode(bits: BitReader, count: int) -> np.ndarray:
    num_values = bits.gamma()
    if num_values > 256:
        raise BitstreamError(f"{bits.what}: Huffman table too large")
    values, counts = [], []
    previous = -1
    for _ in range(num_values):
        previous += bits.gamma()
        values.append(previous)
        counts.append(bits.gamma())
    if previous > 255 or sum(counts) != count:
        raise BitstreamError(f"{bits.what}: Huffman table does not match the pose count")
    tree = constriction.symbol.huffman.DecoderHuffmanTree(np.array(counts, dtype=np.float64))
    # The code words are at most ``count`` x (table size) bits long; hand the decoder the bits left,
    # padded to whole 32-bit words with zeros, and find out afterwards how many it used.
    rest = bits.take(bits.remaining)
    padded = np.concatenate([rest, np.zeros((-len(rest)) % 32, dtype=np.uint8)])
    words = np.packbits(padded, bitorder="little").view("<u4").astype(np.uint32)
    decoder = constriction.symbol.QueueDecoder(words)
    try:
        indices = [decoder.decode_symbol(tree) for _ in range(count)]
    except ValueError:
        raise BitstreamError(f"{bits.what}: Huffman data truncated") from None
    # Re-encode to learn how many bits were consumed, then put the rest back for expect_end.
    encoder_tree = constriction.symbol.huffman.EncoderHuffmanTree(np.array(counts, dtype=np.float64))
    encoder = constriction.symbol.QueueEncoder()
    for index in indices:
        encoder.encode_symbol(index, encoder_tree)
    used = encoder.get_compressed()[1]
    if len(rest) - used >= 8 or rest[used:].any():
        raise BitstreamError(f"{bits.what} has unexpected trailing data")
    return np.array(values, dtype=np.int64)[indices]
