"""The default mask video codec: context-modelled binary arithmetic coding ("cabac", code 0).

Each object label of the GoP is coded as its own binary video ("layer"). A frame is first
downscaled by ``factor`` (area average, so each low-resolution pixel holds the object's coverage)
and thresholded; the decoder upsamples the decoded layers smoothly and takes the most covered label.

Coding a low-resolution frame:
- Temporal prediction: the previous decoded frame of the layer, moved by one integer shift per
  frame (chosen by the encoder, coded with adaptive Exp-Golomb bits).
- Interpolative (coarse-to-fine) pixel order: the frame is refined on dyadic grids; at each level
  the cell centres are coded from their four diagonal neighbours, then the edge midpoints from
  their four axial neighbours. Every pixel so has known neighbours on all sides, and each of the
  ~2 log2(size) passes is one vectorised step over the whole frame (no per-pixel loop).
- Context = level, pass, the four neighbours, the predicted pixel and how mixed the prediction
  is around it. Probabilities adapt: counts per context are updated after each pass.
- Lossy mode: where the coverage is close to one half (within ``tolerance``) the encoder codes
  whichever value the model finds more likely (usually the temporal prediction or the smooth
  continuation of the neighbours), so boundary noise costs almost no bits and shapes stay stable.

Operating point: a fixed ``factor``, or a region-similarity target (``j_target``): the encoder
then codes the GoP at the coarsest factor of ``J_TARGET_FACTORS`` whose decoded masks keep that
mean J (per object and frame, as DAVIS scores it), found by bisection (J falls as the factor
grows). Thin parts (limbs, a rider's legs) are the first to vanish under downscaling, and a fixed
factor loses them on some clips and wastes bits on others' blobs; the target spends the bits where
the shapes need them. The bitstream is the same either way: the factor is in the header.

All entropy coding goes through one constriction range coder; the payload is a few header bytes
and the coder's 32-bit words.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import constriction
import cv2
import numpy as np

from cpsgd.bitstream.bytes import ByteReader, ByteWriter
from cpsgd.errors import BitstreamError, InputError
from cpsgd.masks.base import MASK_CODECS, MaskCodec
from cpsgd.masks.metrics import region_similarity

MAX_LAYERS = 32
MAX_FACTOR = 64
# Factors the J target chooses from, finest first (1 is lossless, so every target can be met).
J_TARGET_FACTORS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 20, 24)
J_TARGET_TOLERANCES = (0.25, 0.1, 0.0)  # each tried with the target; the smallest coding wins
_COUNT_LIMIT = 1024.0  # halve a context's counts beyond this, to keep adapting
_PRIOR = 2.0  # pseudo-counts that start each context at its neighbours' majority
_NUM_KINDS = 9  # 4 level buckets x 2 passes + the single base pixel
_NUM_TEMPORAL = 16  # predicted pixel (2) x prediction mixedness (4) x has-prediction (2)
_NUM_CONTEXTS = _NUM_KINDS * 16 * _NUM_TEMPORAL
_SHIFT_CONTEXTS = 8
_MAX_EG_PREFIX = 16
_BERNOULLI = constriction.stream.model.Bernoulli(perfect=False)
# Decoder work bound: binary decisions (layers x frames x low-resolution pixels) a payload may ask
# for. An adaptive coder can make a decision cost next to nothing (and reads zeros past its end),
# so the bound is by payload size: real sections use under 6,000 decisions a byte (15-40 bytes a
# GoP at 480p, factor 16), and anything up to 4 M decisions (about 1 s) is always allowed.
_DECISIONS_PER_BYTE = 1 << 16
_FREE_DECISIONS = 1 << 22


@dataclass(frozen=True)
class _Pass:
    pixels: np.ndarray  # flat indices coded in this pass
    neighbours: np.ndarray  # (4, M) flat indices of already-coded neighbours
    kind: int


@lru_cache(maxsize=8)
def _passes(h: int, w: int) -> tuple[_Pass, ...]:
    """The coarse-to-fine pixel order of an h x w frame, with each pixel's known neighbours."""
    levels = max(1, int(np.ceil(np.log2(max(h, w)))))
    base = np.zeros(1, dtype=np.int64)
    passes = [_Pass(base, np.zeros((0, 1), dtype=np.int64), _NUM_KINDS - 1)]  # no known neighbour
    for level in range(levels, 0, -1):
        step, half = 1 << level, 1 << (level - 1)
        bucket = min(level - 1, 3)
        centres = np.meshgrid(np.arange(half, h, step), np.arange(half, w, step), indexing="ij")
        diagonal = [(-half, -half), (-half, half), (half, -half), (half, half)]
        edges_a = np.meshgrid(np.arange(0, h, step), np.arange(half, w, step), indexing="ij")
        edges_b = np.meshgrid(np.arange(half, h, step), np.arange(0, w, step), indexing="ij")
        edge_y = np.concatenate([edges_a[0].ravel(), edges_b[0].ravel()])
        edge_x = np.concatenate([edges_a[1].ravel(), edges_b[1].ravel()])
        axial = [(-half, 0), (half, 0), (0, -half), (0, half)]
        for kind, (ys, xs), offsets in (
            (2 * bucket, (centres[0].ravel(), centres[1].ravel()), diagonal),
            (2 * bucket + 1, (edge_y, edge_x), axial),
        ):
            if ys.size:
                passes.append(_Pass(ys * w + xs, _known_neighbours(ys, xs, offsets, h, w), kind))
    return tuple(passes)


def _known_neighbours(ys: np.ndarray, xs: np.ndarray, offsets: list, h: int, w: int) -> np.ndarray:
    """Flat indices of the neighbours at ``offsets``; one outside the frame is replaced by its
    mirror, and failing that by the first neighbour that exists (every pass has one)."""
    ny = np.stack([ys + dy for dy, _ in offsets])
    nx = np.stack([xs + dx for _, dx in offsets])
    mirror = [1, 0, 3, 2]
    inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
    ny = np.where(inside, ny, ny[mirror])
    nx = np.where(inside, nx, nx[mirror])
    inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
    first = np.argmax(inside, axis=0)
    cols = np.arange(ys.size)
    ny = np.where(inside, ny, ny[first, cols])
    nx = np.where(inside, nx, nx[first, cols])
    return ny * w + nx


def _initial_counts() -> tuple[np.ndarray, np.ndarray]:
    """Pseudo-counts leaning each context towards the majority of its neighbours and prediction."""
    ctx = np.arange(_NUM_CONTEXTS)
    temporal, spatial = ctx % _NUM_TEMPORAL, (ctx // _NUM_TEMPORAL) % 16
    has_pred, predicted = temporal % 2, temporal // 8
    ones = sum((spatial >> b) & 1 for b in range(4)) + 2 * predicted * has_pred
    vote = ones / (4 + 2 * has_pred)
    return _PRIOR * (1 - vote) + 0.05, _PRIOR * vote + 0.05


def _temporal_features(prediction: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """Per-pixel temporal context (flat): predicted value, mixedness of its 3x3 neighbourhood."""
    if prediction is None:
        return np.zeros(shape[0] * shape[1], dtype=np.int64)
    total = cv2.boxFilter(prediction, cv2.CV_16S, (3, 3), normalize=False, borderType=cv2.BORDER_REPLICATE)
    mixed = np.select([total == 0, total <= 4, total <= 8], [0, 1, 2], 3)
    return ((prediction.astype(np.int64) * 4 + mixed) * 2 + 1).ravel()


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Move a mask by (dy, dx) pixels, repeating its edge rows/columns into the uncovered part."""
    h, w = mask.shape
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    return mask[rows[:, None], cols[None, :]]


def _choose_shift(previous: np.ndarray, target: np.ndarray) -> tuple[int, int]:
    """Integer shift of the previous mask that best matches the target: centroid estimate, refined."""
    if not previous.any() or not target.any():
        return 0, 0
    ys, xs = np.nonzero(previous)
    yt, xt = np.nonzero(target)
    guess = (round(yt.mean() - ys.mean()), round(xt.mean() - xs.mean()))
    candidates = {(0, 0)} | {(guess[0] + a, guess[1] + b) for a in (-1, 0, 1) for b in (-1, 0, 1)}
    limit = max(previous.shape)
    costs = {
        (dy, dx): int(np.count_nonzero(_shift(previous, dy, dx) != target))
        for dy, dx in candidates
        if abs(dy) < limit and abs(dx) < limit
    }
    return min(costs, key=lambda d: (costs[d], abs(d[0]) + abs(d[1]), d))


class _Model:
    """Adaptive context statistics shared by the encoder and decoder."""

    def __init__(self) -> None:
        self.c0, self.c1 = _initial_counts()
        self.shift_counts = np.ones((_SHIFT_CONTEXTS, 2))

    def probabilities(self, ctx: np.ndarray) -> np.ndarray:
        return self.c1[ctx] / (self.c0[ctx] + self.c1[ctx])

    def update(self, ctx: np.ndarray, bits: np.ndarray) -> None:
        ones = np.bincount(ctx, weights=bits, minlength=_NUM_CONTEXTS)
        self.c1 += ones
        self.c0 += np.bincount(ctx, minlength=_NUM_CONTEXTS) - ones
        full = self.c0 + self.c1 > _COUNT_LIMIT
        self.c0[full] *= 0.5
        self.c1[full] *= 0.5

    def shift_probability(self, k: int) -> float:
        c = self.shift_counts[k]
        return c[1] / c.sum()

    def update_shift(self, k: int, bit: int) -> None:
        self.shift_counts[k, bit] += 1


def _contexts(frame: np.ndarray, step: _Pass, temporal: np.ndarray) -> np.ndarray:
    weights = np.array([1, 2, 4, 8])[: len(step.neighbours), None]
    spatial = (frame[step.neighbours] * weights).sum(axis=0)
    return (step.kind * 16 + spatial) * _NUM_TEMPORAL + temporal[step.pixels]


def _zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def _unzigzag(u: int) -> int:
    return u // 2 if u % 2 == 0 else -(u + 1) // 2


class _Encoder:
    def __init__(self) -> None:
        self.coder = constriction.stream.queue.RangeEncoder()
        self.model = _Model()

    def bit(self, bit: int, p: float) -> None:
        self.coder.encode(np.array([bit], dtype=np.int32), _BERNOULLI, np.array([p]))

    def shift(self, value: int) -> None:
        """Adaptive Exp-Golomb code of a signed shift: prefix bits adapt, suffix bits are plain."""
        u = _zigzag(value) + 1
        k = u.bit_length() - 1
        for i in range(k + 1):
            bit = int(i < k)
            ctx = min(i, _SHIFT_CONTEXTS - 1)
            self.bit(bit, self.model.shift_probability(ctx))
            self.model.update_shift(ctx, bit)
        for i in range(k - 1, -1, -1):
            self.bit((u >> i) & 1, 0.5)

    def frame(self, frame: np.ndarray, free: np.ndarray, temporal: np.ndarray) -> np.ndarray:
        """Code ``frame``; pixels where ``free`` is set take the value the model finds more
        likely (they cost almost nothing). Returns the frame as the decoder will see it."""
        flat, free = frame.ravel().copy(), free.ravel()
        for step in _passes(*frame.shape):
            ctx = _contexts(flat, step, temporal)
            p = self.model.probabilities(ctx)
            bits = np.where(free[step.pixels], p >= 0.5, flat[step.pixels]).astype(np.int32)
            flat[step.pixels] = bits
            self.coder.encode(bits, _BERNOULLI, p)
            self.model.update(ctx, bits)
        return flat.reshape(frame.shape)


class _Decoder:
    def __init__(self, words: np.ndarray) -> None:
        self.coder = constriction.stream.queue.RangeDecoder(words)
        self.model = _Model()

    def bit(self, p: float) -> int:
        return int(self.coder.decode(_BERNOULLI, np.array([p]))[0])

    def shift(self, limit: int) -> int:
        k = 0
        while True:
            ctx = min(k, _SHIFT_CONTEXTS - 1)
            bit = self.bit(self.model.shift_probability(ctx))
            self.model.update_shift(ctx, bit)
            if not bit:
                break
            k += 1
            if k > _MAX_EG_PREFIX:
                raise BitstreamError("mask section: shift code too long")
        u = 1
        for _ in range(k):
            u = 2 * u + self.bit(0.5)
        value = _unzigzag(u - 1)
        if abs(value) >= limit:
            raise BitstreamError(f"mask section: shift {value} exceeds the frame")
        return value

    def frame(self, shape: tuple[int, int], temporal: np.ndarray) -> np.ndarray:
        flat = np.zeros(shape[0] * shape[1], dtype=np.uint8)
        for step in _passes(*shape):
            ctx = _contexts(flat, step, temporal)
            bits = self.coder.decode(_BERNOULLI, self.model.probabilities(ctx))
            flat[step.pixels] = bits
            self.model.update(ctx, bits)
        return flat.reshape(shape)


def mean_object_j(decoded: np.ndarray, masks: np.ndarray, labels: list[int]) -> float:
    """Mean over objects and frames of the region similarity J (IoU) of each label; 1 for none."""
    if not labels:
        return 1.0
    return float(np.mean([region_similarity(decoded == label, masks == label) for label in labels]))


def low_resolution_shape(height: int, width: int, factor: int) -> tuple[int, int]:
    return -(-height // factor), -(-width // factor)


def downscale_coverage(layer: np.ndarray, factor: int) -> np.ndarray:
    """(H, W) binary -> low-resolution coverage in [0, 1]."""
    if factor == 1:
        return layer.astype(np.float32)
    h, w = low_resolution_shape(*layer.shape, factor)
    return cv2.resize(layer.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)


def upscale_smooth(low: np.ndarray, height: int, width: int, factor: int) -> np.ndarray:
    """Low-resolution binary -> smooth full-resolution coverage in [0, 1] (bilinear, then a
    Gaussian of about half a low-resolution pixel, which rounds the staircase into curves)."""
    if factor == 1:
        return low.astype(np.float32)
    up = cv2.resize(low.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(up, (0, 0), sigmaX=0.5 * factor, borderType=cv2.BORDER_REPLICATE)


@MASK_CODECS.register("cabac", code=0)
class ContextMaskCodec(MaskCodec):
    """Context-modelled binary arithmetic coding of label-map videos; see the module docstring.

    factor: downscale factor (1 = lossless). tolerance: coverage band around one half in which
    the encoder codes the model's more likely value (0 = plain thresholding). j_target: when set,
    each GoP's factor is instead the coarsest of ``J_TARGET_FACTORS`` whose decoded masks keep this
    mean region similarity J (``factor`` is then unused).
    """

    def __init__(self, factor: int = 10, tolerance: float = 0.25, j_target: float | None = None) -> None:
        if not 1 <= factor <= MAX_FACTOR:
            raise InputError(f"mask downscale factor must be 1..{MAX_FACTOR}, got {factor}")
        if not 0.0 <= tolerance < 0.5:
            raise InputError(f"mask tolerance must be in [0, 0.5), got {tolerance}")
        if j_target is not None and not 0.0 < j_target <= 1.0:
            raise InputError(f"mask J target must be in (0, 1], got {j_target}")
        self.factor = factor
        self.tolerance = tolerance
        self.j_target = j_target

    def compress(self, masks: np.ndarray) -> bytes:
        masks = np.asarray(masks)
        if masks.ndim != 3 or masks.dtype != np.uint8:
            raise InputError(f"masks must be a (N, H, W) uint8 label array, got {masks.dtype} {masks.shape}")
        labels = [int(v) for v in np.unique(masks) if v]
        if len(labels) > MAX_LAYERS:
            raise InputError(f"masks hold {len(labels)} objects; at most {MAX_LAYERS} are supported")
        if self.j_target is None:
            return self._compress_at(masks, labels, self.factor, self.tolerance)
        return self._compress_to_target(masks, labels, self.j_target)

    def _compress_to_target(self, masks: np.ndarray, labels: list[int], j_target: float) -> bytes:
        """The smallest coding whose decoded masks keep a mean J of ``j_target``: for each tolerance
        of ``J_TARGET_TOLERANCES`` the coarsest factor that does (bisection over ``J_TARGET_FACTORS``;
        the finest, lossless, always does). Thin shapes fare better at a coarser factor with a
        narrower tolerance (the band left to the model is where they vanish), blobs the other way."""
        codings = []
        for tolerance in J_TARGET_TOLERANCES:
            fine, coarse = 0, len(J_TARGET_FACTORS)  # invariant: fine meets the target, coarse does not
            best = None
            while coarse - fine > 1:
                middle = (fine + coarse) // 2
                data = self._compress_at(masks, labels, J_TARGET_FACTORS[middle], tolerance)
                if mean_object_j(self.decompress(data, *masks.shape), masks, labels) >= j_target:
                    fine, best = middle, data
                else:
                    coarse = middle
            codings.append(best if best is not None else self._compress_at(masks, labels, 1, tolerance))
        return min(codings, key=len)

    def _compress_at(self, masks: np.ndarray, labels: list[int], factor: int, tolerance: float) -> bytes:
        writer = ByteWriter()
        writer.u8(factor)
        writer.u8(len(labels))
        for label in labels:
            writer.u8(label)
        encoder = _Encoder()
        for label in labels:
            self._encode_layer(encoder, masks == label, factor, tolerance)
        writer.raw(encoder.coder.get_compressed().astype("<u4").tobytes())
        return writer.getvalue()

    @staticmethod
    def _encode_layer(encoder: _Encoder, layer: np.ndarray, factor: int, tolerance: float) -> None:
        previous = None
        for frame in layer:
            coverage = downscale_coverage(frame, factor)
            target = (coverage >= 0.5).astype(np.uint8)
            prediction = None
            if previous is not None:
                dy, dx = _choose_shift(previous, target)
                encoder.shift(dy)
                encoder.shift(dx)
                prediction = _shift(previous, dy, dx)
            unsure = np.abs(coverage - 0.5) < tolerance
            previous = encoder.frame(target, unsure, _temporal_features(prediction, target.shape))

    def decompress(self, data: bytes, num_frames: int, height: int, width: int) -> np.ndarray:
        if num_frames < 0 or height < 1 or width < 1:
            raise BitstreamError(f"mask section: invalid size {num_frames}x{height}x{width}")
        reader = ByteReader(data, "mask section")
        factor = reader.u8()
        if not 1 <= factor <= MAX_FACTOR:
            raise BitstreamError(f"mask section: invalid downscale factor {factor}")
        num_layers = reader.u8()
        if num_layers > MAX_LAYERS:
            raise BitstreamError(f"mask section: {num_layers} layers exceed the limit of {MAX_LAYERS}")
        labels = [reader.u8() for _ in range(num_layers)]
        if 0 in labels or len(set(labels)) != len(labels):
            raise BitstreamError("mask section: invalid object labels")
        words = reader.rest()
        if len(words) % 4:
            raise BitstreamError("mask section: coded data is not a whole number of words")
        out = np.zeros((num_frames, height, width), dtype=np.uint8)
        if not labels or num_frames == 0:
            return out
        low_shape = low_resolution_shape(height, width, factor)
        decisions = len(labels) * num_frames * low_shape[0] * low_shape[1]
        if decisions > max(_FREE_DECISIONS, _DECISIONS_PER_BYTE * len(data)):
            raise BitstreamError(
                f"mask section: {len(labels)} layers of {num_frames} frames at {low_shape[1]}x{low_shape[0]} "
                f"from {len(data)} bytes exceed the decoder's work limit"
            )
        decoder = _Decoder(np.frombuffer(words, dtype="<u4").astype(np.uint32))
        try:
            layers = [self._decode_layer(decoder, num_frames, low_shape) for _ in labels]
        except (AssertionError, ValueError, RuntimeError, OverflowError) as exc:
            raise BitstreamError(f"mask section: entropy decoding failed ({exc})") from None
        for t in range(num_frames):
            # an empty layer never wins a pixel (its coverage is 0 < 0.5): only the others are upscaled
            present = [i for i, layer in enumerate(layers) if layer[t].any()]
            if not present:
                continue
            cover = np.stack([upscale_smooth(layers[i][t], height, width, factor) for i in present])
            best = np.argmax(cover, axis=0)
            chosen = np.take_along_axis(cover, best[None], axis=0)[0]
            out[t] = np.where(chosen >= 0.5, np.asarray(labels, dtype=np.uint8)[present][best], 0)
        return out

    @staticmethod
    def _decode_layer(decoder: _Decoder, num_frames: int, shape: tuple[int, int]) -> np.ndarray:
        frames = np.empty((num_frames, *shape), dtype=np.uint8)
        previous = None
        for t in range(num_frames):
            prediction = None
            if previous is not None:
                limit = max(shape)
                dy, dx = decoder.shift(limit), decoder.shift(limit)
                prediction = _shift(previous, dy, dx)
            frames[t] = decoder.frame(shape, _temporal_features(prediction, shape))
            previous = frames[t]
        return frames
