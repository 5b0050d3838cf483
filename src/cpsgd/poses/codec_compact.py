"""The default pose codec, code 1: six numbers per pose, quantised to an error budget, predicted
from the decoded previous poses and coded with adaptive binary arithmetic coding (constriction).

- Each pose relative to frame 1 becomes a rotation vector (3) and a camera position (3) in the first
  camera's frame. Positions are divided by the largest distance travelled (sent once as a 16-bit
  log2): monocular scale is arbitrary and the errors that matter are measured after alignment.
- Rotations and positions are two groups, each with its own choices: a knot spacing (code every
  pose, or every k-th pose and the last, the rest filled by a cubic spline), a uniform grid step
  from a quarter-octave ladder, and a predictor (previous value, or constant velocity from the two
  previous decoded values). For each spacing the step is the coarsest that meets the error budget
  (ErrorBudget: mean and max rotation error, tightened for fields of view under 60 degrees, mean
  translation-direction error, measured as cpsgd.poses.metrics does, and the largest camera-position
  error), found by bisection; the cheapest spacing/predictor wins.
- A section over ``CompactConfig.bit_budget`` bits (jittery paths that no predictor follows) is
  coded again under each looser ``fallbacks`` budget in turn, until one fits. If none does, the bits
  are split: the rotations are coded to ``rotation_floor`` (never looser than 0.05 degree mean) and
  the camera positions get the bits left, on the finest grid (per knot spacing) that fits, the
  spacing with the smallest position error winning. Only when the rotations alone leave no room
  are they, too, fitted to a share of the bits. The smallest coding is kept.
- Integer residuals are binarised (zero?, sign, unary up to 6, then Exp-Golomb bypass bits); each
  binary decision has adaptive counts per group. The range coder's trailing bytes that the decoder
  does not need (it pads with zeros) are dropped.

Payload: flags (u8); fx, fy (f16) [cx, cy (f16) when not centred]; [spacing+predictor nibbles (u8)];
[rotation step (u8)]; [position step (u8), log2 scale x 256 + 32768 (u16)]; range-coder bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.spatial.transform import Rotation

from cpsgd.bitstream.adaptive import CONTEXTS_PER_GROUP, BinaryCoder, code_levels, encode_groups, ideal_bits
from cpsgd.bitstream.bytes import ByteReader, ByteWriter
from cpsgd.errors import BitstreamError, InputError
from cpsgd.poses.base import POSE_CODECS, PoseCodec
from cpsgd.poses.codec_paper import check_finite, check_num_frames
from cpsgd.poses.geometry import (
    camera_centres,
    compose_world_to_camera,
    rotation_angle_deg,
)
from cpsgd.poses.metrics import translation_direction_errors_deg
from cpsgd.poses.trajectory import Intrinsics, Trajectory, focal_of_fov

_HAS_ROTATION, _HAS_TRANSLATION, _OFF_CENTRE = 1, 2, 4
_STEP_LADDER = 64
_WHAT = "compact pose section"
_FOCAL_60_DEGREES = focal_of_fov(60.0)


def rotation_step(index: int) -> float:
    """Radians: 2^-5 (1.8 degrees) down in quarter octaves."""
    return 2.0 ** (-5 - index / 4)


def position_step(index: int) -> float:
    """Fraction of the largest distance travelled: 2^-3 down in quarter octaves."""
    return 2.0 ** (-3 - index / 4)


@dataclass(frozen=True)
class ErrorBudget:
    """Errors (degrees) the step sizes are chosen to meet. The rotation errors are for a field of
    view of 60 degrees or wider; a narrower view gets them tightened in proportion (``for_focal``),
    so that a rotation error moves the picture by no more pixels than at 60 degrees.

    ``position_max`` bounds each camera position's error, per axis, as a share of the largest
    distance travelled: the direction error alone let positions stray by 1.5% between spline knots
    on car-roundabout, a parallax error that cost the warp generator 0.04 MS-SSIM (0.003 BPP); the
    bound costs 8 bytes there."""

    rotation_mean_deg: float
    rotation_max_deg: float
    translation_direction_mean_deg: float
    position_max: float = np.inf  # per-axis camera position error / largest distance travelled

    def for_focal(self, focal: float) -> ErrorBudget:
        """The budget for a normalised focal length (focal length / width)."""
        tighter = min(1.0, _FOCAL_60_DEGREES / focal)
        return replace(self, rotation_mean_deg=self.rotation_mean_deg * tighter, rotation_max_deg=self.rotation_max_deg * tighter)


@dataclass(frozen=True)
class CompactConfig:
    target: ErrorBudget = ErrorBudget(0.04, 0.1, 0.75, 0.005)
    # Over bit_budget bits with the target, looser budgets are tried in turn: first without the
    # position bound, then 0.05 degree mean rotation error and 1 degree translation direction.
    bit_budget: int = 500
    fallbacks: tuple[ErrorBudget, ...] = (ErrorBudget(0.04, 0.1, 0.75), ErrorBudget(0.05, 0.25, 1.0))
    # Still over: rotations to this budget (its translation term unused), positions get the bits left.
    rotation_floor: ErrorBudget = ErrorBudget(0.05, 0.25, np.inf)


# --- the codec ------------------------------------------------------------------------------

# Knot spacings the encoder may use: 1 codes every pose; larger ones code every k-th pose (and the
# last) and fill the others with a cubic spline, far cheaper for the smooth motion of most videos.
_SPACINGS = (1, 2, 3, 4, 6, 8, 12, 16)


def knot_frames(num_frames: int, spacing: int) -> np.ndarray:
    """Frames (>= 1) whose values are coded: spacing, 2 spacing, ... and always the last one."""
    knots = list(range(spacing, num_frames - 1, spacing)) + [num_frames - 1]
    return np.array(knots if num_frames > 1 else [], dtype=int)


def expand_knots(values: np.ndarray, knots: np.ndarray, num_frames: int) -> np.ndarray:
    """(frames 1..N-1, 3) values from the knots' values, with frame 0 pinned at zero."""
    if len(knots) == num_frames - 1:
        return values
    times = np.concatenate([[0], knots])
    spline = CubicSpline(times, np.vstack([np.zeros(3), values]), axis=0)
    return spline(np.arange(1, num_frames))


@dataclass
class _GroupCode:
    spacing_index: int
    order: int  # predictor order, 1 or 2
    step_index: int
    levels: np.ndarray  # (knots, 3) integers

    @property
    def nibble(self) -> int:
        return self.spacing_index | (self.order - 1) << 3

    def knots(self, num_frames: int) -> np.ndarray:
        return knot_frames(num_frames, _SPACINGS[self.spacing_index])


def _rotations(rotvecs: np.ndarray) -> np.ndarray:
    return np.vstack([np.eye(3)[None], Rotation.from_rotvec(rotvecs).as_matrix()])


@dataclass
class _Section:
    """What one coding of a trajectory needs: the values to code and how to check their errors."""

    intrinsics: Intrinsics
    num_frames: int
    rotvecs: np.ndarray  # (N-1, 3)
    positions: np.ndarray  # (N-1, 3) camera centres / scale
    log_scale: int
    rotation_errors: Callable[[np.ndarray], np.ndarray]  # decoded rotvecs -> per-frame degrees
    direction_errors: Callable[[np.ndarray], np.ndarray]  # decoded positions -> per-frame degrees


@POSE_CODECS.register("compact", code=1)
class CompactPoseCodec(PoseCodec):
    def __init__(self, config: CompactConfig | None = None) -> None:
        self.config = config or CompactConfig()

    def compress(self, trajectory: Trajectory) -> bytes:
        check_finite(trajectory)
        focal = max(trajectory.intrinsics.fx, trajectory.intrinsics.fy)
        section = self._section(trajectory)
        limit = self.config.bit_budget
        data = self._encode(section, self.config.target.for_focal(focal))
        for budget in self.config.fallbacks:
            if 8 * len(data) <= limit:
                return data
            data = min(data, self._encode(section, budget.for_focal(focal)), key=len)
        if 8 * len(data) > limit:
            data = min(data, self._encode_within(section, self.config.rotation_floor.for_focal(focal), limit), key=len)
        return data

    def _section(self, trajectory: Trajectory) -> _Section:
        k = trajectory.intrinsics
        relative = trajectory.relative_to_first()
        truth = relative.rotations
        centres = camera_centres(relative.world_to_camera)[1:]
        scale = float(np.linalg.norm(centres, axis=1).max()) if len(relative) > 1 else 0.0
        log_scale = int(np.clip(np.round(np.log2(scale) * 256), -32768, 32767)) if scale > 0 else 0

        def rotation_errors(decoded: np.ndarray) -> np.ndarray:
            return rotation_angle_deg(_rotations(decoded) @ np.swapaxes(truth, 1, 2))[1:]

        def direction_errors(decoded: np.ndarray) -> np.ndarray:
            w2c = compose_world_to_camera(truth, np.vstack([np.zeros(3), decoded]))
            return translation_direction_errors_deg(Trajectory(k, w2c), relative)

        return _Section(
            intrinsics=k,
            num_frames=len(relative),
            rotvecs=Rotation.from_matrix(truth[1:]).as_rotvec() if len(relative) > 1 else np.zeros((0, 3)),
            positions=centres / scale if scale > 0 else np.zeros((0, 3)),
            log_scale=log_scale,
            rotation_errors=rotation_errors,
            direction_errors=direction_errors,
        )

    def _rotation_within(self, section: _Section, budget: ErrorBudget) -> _GroupCode:
        def rotation_ok(decoded: np.ndarray) -> bool:
            err = section.rotation_errors(decoded)
            return err.mean() <= budget.rotation_mean_deg and err.max() <= budget.rotation_max_deg

        return self._choose(section.rotvecs, rotation_step, rotation_ok)

    def _encode(self, section: _Section, budget: ErrorBudget) -> bytes:
        rotation = translation = None
        if section.num_frames > 1:
            rotation = self._rotation_within(section, budget)
        if len(section.positions):
            positions = section.positions

            def translation_ok(decoded: np.ndarray) -> bool:
                if np.abs(decoded - positions).max() > budget.position_max:
                    return False
                err = section.direction_errors(decoded)
                return not np.isfinite(err).any() or np.nanmean(err) <= budget.translation_direction_mean_deg

            translation = self._choose(positions, position_step, translation_ok)
        return self._write(section, rotation, translation)

    def _encode_within(self, section: _Section, rotation_budget: ErrorBudget, limit: int) -> bytes:
        """Rotations to ``rotation_budget``, the camera positions in the bits left of ``limit``
        (both fitted to shares of it when the rotations alone leave no room). The positions may be
        sent against 2-8x the distance travelled: the step ladder's coarse end, 1/8 of the scale,
        would cost a jittery path more bits than are left, and a spline over sparse knots strays
        by half the distance travelled."""
        rotation = self._rotation_within(section, rotation_budget)
        header = 8 * len(self._write(section, None, None)) + 8 + 8 + 24  # + nibbles, steps, scale
        rotation_bits = ideal_bits(rotation.levels, rotation.order)
        rotation_share = 0.75 if len(section.positions) else 1.0  # a camera that only turns: all of it
        data = b""
        for slack in range(8, 72, 8):  # the range coder's last bytes: retry with room for them
            room = limit - header - slack
            if rotation_bits > rotation_share * room:
                rotation = self._fit(
                    section.rotvecs, rotation_step, rotation_share * room, lambda d: section.rotation_errors(d).mean()
                )
                rotation_bits = ideal_bits(rotation.levels, rotation.order)
            translation, shift = None, 0
            if len(section.positions):
                fits = []
                for shift in range(4 if section.log_scale + 3 * 256 <= 32767 else 1):
                    positions = section.positions / 2**shift
                    code = self._fit(positions, position_step, room - rotation_bits, lambda d, p=positions: np.abs(d - p).max())
                    knots = code.knots(section.num_frames)
                    decoded = expand_knots(code.levels * position_step(code.step_index), knots, section.num_frames)
                    fits.append((np.abs(decoded - positions).max() * 2**shift, shift, code))
                _, shift, translation = min(fits, key=lambda f: f[:2])
            data = self._write(section, rotation, translation, section.log_scale + 256 * shift)
            if 8 * len(data) <= limit:
                break
        return data

    def _write(
        self, section: _Section, rotation: _GroupCode | None, translation: _GroupCode | None, log_scale: int | None = None
    ) -> bytes:
        k = section.intrinsics
        log_scale = section.log_scale if log_scale is None else log_scale
        flags = 0
        flags |= _HAS_ROTATION if rotation is not None and np.any(rotation.levels) else 0
        flags |= _HAS_TRANSLATION if translation is not None and np.any(translation.levels) else 0
        centred = abs(k.cx - 0.5) < 1e-6 and abs(k.cy - 0.5) < 1e-6
        flags |= 0 if centred else _OFF_CENTRE

        writer = ByteWriter()
        writer.u8(flags)
        for v in (k.fx, k.fy) if centred else (k.fx, k.fy, k.cx, k.cy):
            if abs(v) > 60000:
                raise InputError(f"intrinsic value {v} does not fit a float16")
            writer.f16(v)
        groups = []
        if flags & (_HAS_ROTATION | _HAS_TRANSLATION):
            rot_nibble = rotation.nibble if flags & _HAS_ROTATION else 0
            pos_nibble = translation.nibble if flags & _HAS_TRANSLATION else 0
            writer.u8(rot_nibble | pos_nibble << 4)
        if flags & _HAS_ROTATION:
            writer.u8(rotation.step_index)
            groups.append((0, rotation.order, rotation.levels))
        if flags & _HAS_TRANSLATION:
            writer.u8(translation.step_index)
            writer.u16(log_scale + 32768)
            groups.append((1, translation.order, translation.levels))
        if groups:
            writer.raw(encode_groups(groups, 2 * CONTEXTS_PER_GROUP, _WHAT))
        return writer.getvalue()

    @staticmethod
    def _candidates(values: np.ndarray):
        """(spacing index, knots) for every knot spacing that fits the section's length."""
        num_frames = len(values) + 1
        for spacing_index, spacing in enumerate(_SPACINGS):
            if spacing > 1 and spacing >= num_frames - 1:
                break
            yield spacing_index, knot_frames(num_frames, spacing)

    @staticmethod
    def _levels(values: np.ndarray, knots: np.ndarray, step: float) -> np.ndarray:
        return np.round(values[knots - 1] / step).astype(np.int64)

    @staticmethod
    def _cheapest_order(levels: np.ndarray) -> tuple[int, float]:
        return min(((order, ideal_bits(levels, order)) for order in (1, 2)), key=lambda ob: ob[1])

    def _choose(self, values: np.ndarray, step_of: Callable[[int], float], ok: Callable[[np.ndarray], bool]) -> _GroupCode:
        """For each knot spacing the coarsest step that meets the budget (bisection over the step
        ladder, errors growing with the step); keep the cheapest spacing and predictor order."""
        num_frames = len(values) + 1
        best, best_bits = None, np.inf
        for spacing_index, knots in self._candidates(values):

            def meets(step_index: int, knots: np.ndarray = knots) -> bool:
                step = step_of(step_index)
                return ok(expand_knots(self._levels(values, knots, step) * step, knots, num_frames))

            if not meets(_STEP_LADDER - 1):
                continue
            coarse, fine = -1, _STEP_LADDER - 1  # invariant: fine meets the budget
            while fine - coarse > 1:
                middle = (coarse + fine) // 2
                coarse, fine = (coarse, middle) if meets(middle) else (middle, fine)
            levels = self._levels(values, knots, step_of(fine))
            order, bits = self._cheapest_order(levels)
            if bits < best_bits:
                best, best_bits = _GroupCode(spacing_index, order, fine, levels), bits
        if best is None:  # the budget is out of reach: code every pose on the finest grid
            levels = np.round(values / step_of(_STEP_LADDER - 1)).astype(np.int64)
            best = _GroupCode(0, 2, _STEP_LADDER - 1, levels)
        return best

    def _fit(
        self, values: np.ndarray, step_of: Callable[[int], float], bits: float, error: Callable[[np.ndarray], float]
    ) -> _GroupCode:
        """For each knot spacing the finest step whose cheaper predictor costs at most ``bits``
        (bisection, the cost falling with the step); keep the spacing with the smallest ``error``.
        Nothing fits: all zeros, which cost no bits (the group is left out)."""
        num_frames = len(values) + 1
        best, best_error = _GroupCode(0, 1, 0, np.zeros((max(num_frames - 1, 0), 3), np.int64)), np.inf
        for spacing_index, knots in self._candidates(values):

            def fits(step_index: int, knots: np.ndarray = knots) -> bool:
                return self._cheapest_order(self._levels(values, knots, step_of(step_index)))[1] <= bits

            if not fits(0):
                continue
            coarse, fine = 0, _STEP_LADDER  # invariant: coarse fits, fine does not (or is off the ladder)
            while fine - coarse > 1:
                middle = (coarse + fine) // 2
                coarse, fine = (middle, fine) if fits(middle) else (coarse, middle)
            levels = self._levels(values, knots, step_of(coarse))
            decoded_error = error(expand_knots(levels * step_of(coarse), knots, num_frames))
            if decoded_error < best_error:
                best, best_error = _GroupCode(spacing_index, self._cheapest_order(levels)[0], coarse, levels), decoded_error
        return best

    def decompress(self, data: bytes, num_frames: int) -> Trajectory:
        what = _WHAT
        check_num_frames(num_frames, what)
        reader = ByteReader(data, what)
        flags = reader.u8()
        if flags & ~(_HAS_ROTATION | _HAS_TRANSLATION | _OFF_CENTRE) or (num_frames == 1 and flags & 3):
            raise BitstreamError(f"{what}: invalid flags {flags}")
        fx, fy = reader.f16(), reader.f16()
        cx, cy = (reader.f16(), reader.f16()) if flags & _OFF_CENTRE else (0.5, 0.5)
        if fx <= 0 or fy <= 0:
            raise BitstreamError(f"{what}: focal lengths must be positive")
        intrinsics = Intrinsics(fx, fy, cx, cy)
        if num_frames == 1:
            reader.expect_end()
            return Trajectory.identity(1, intrinsics)
        spacings = reader.u8() if flags & (_HAS_ROTATION | _HAS_TRANSLATION) else 0
        groups = []
        for group, present, step_of, nibble in (
            (0, flags & _HAS_ROTATION, rotation_step, spacings & 15),
            (1, flags & _HAS_TRANSLATION, position_step, spacings >> 4),
        ):
            if not present:
                continue
            spacing_index, order = nibble & 7, 1 + (nibble >> 3)
            if spacing_index >= len(_SPACINGS):
                raise BitstreamError(f"{what}: knot spacing index {spacing_index} out of range")
            step_index = reader.u8()
            if step_index >= _STEP_LADDER:
                raise BitstreamError(f"{what}: step index {step_index} out of range")
            scale = 2.0 ** ((reader.u16() - 32768) / 256) if group == 1 else 1.0
            knots = knot_frames(num_frames, _SPACINGS[spacing_index])
            groups.append((group, order, knots, step_of(step_index) * scale))
        values = {0: np.zeros((num_frames - 1, 3)), 1: np.zeros((num_frames - 1, 3))}
        if groups:
            payload = reader.rest()
            if not payload:
                raise BitstreamError(f"{what} is truncated")
            coder = BinaryCoder.reading(2 * CONTEXTS_PER_GROUP, _WHAT, payload)
            for group, order, knots, step in groups:
                levels = code_levels(coder, group, order, None, (len(knots), 3))
                values[group] = expand_knots(levels * step, knots, num_frames)
        reader.expect_end()
        centres = np.vstack([np.zeros(3), values[1]])
        return Trajectory(intrinsics, compose_world_to_camera(_rotations(values[0]), centres))
