"""Pose codecs ("paper", "compact"): round trips with error bounds, odd/even lengths, slerp,
determinism, and corrupt payloads."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cpsgd.errors import BitstreamError, InputError
from cpsgd.poses import POSE_CODECS, Intrinsics, Trajectory, load_poses
from cpsgd.poses.codec_compact import CompactConfig, CompactPoseCodec
from cpsgd.poses.codec_paper import interpolate_dropped, kept_frames
from cpsgd.poses.geometry import camera_centres, compose_world_to_camera, slerp_rotation
from cpsgd.poses.metrics import pose_errors
from cpsgd.synth.trajectories import camera_to_world

from conftest import damaged_payloads

CODECS = ("paper", "compact")


def smooth_trajectory(n: int, seed: int = 0, intrinsics: Intrinsics | None = None) -> Trajectory:
    """A camera turning and travelling smoothly (a few degrees, about one unit), as in real clips."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, n)[:, None]
    rotvecs = np.radians(8) * (rng.normal(size=3) * t + 0.3 * rng.normal(size=3) * t**2)
    centres = rng.normal(size=3) * t + 0.2 * rng.normal(size=3) * t**2
    w2c = compose_world_to_camera(Rotation.from_rotvec(rotvecs).as_matrix(), centres)
    start = np.eye(4)
    start[:3, :3] = Rotation.from_rotvec(rng.normal(size=3)).as_matrix()
    start[:3, 3] = rng.normal(size=3)
    return Trajectory(intrinsics or Intrinsics(0.9, 1.2, 0.5, 0.5), w2c @ start)  # world frame arbitrary


def is_proper_rotation(r: np.ndarray) -> bool:
    return np.allclose(r @ np.swapaxes(r, 1, 2), np.eye(3), atol=1e-9) and np.allclose(np.linalg.det(r), 1.0)


def test_registered_codes():
    assert POSE_CODECS.by_code(0) is POSE_CODECS.get("paper")
    assert POSE_CODECS.by_code(1) is POSE_CODECS.get("compact")


def test_kept_frames_cover_odd_and_even_lengths():
    assert kept_frames(25).tolist() == [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 24]
    assert kept_frames(24).tolist() == list(range(1, 24, 2))
    assert kept_frames(2).tolist() == [1]
    assert kept_frames(3).tolist() == [1, 2]


def test_slerp_against_a_known_rotation():
    r0 = Rotation.from_rotvec([0, 0, np.radians(10)]).as_matrix()
    r1 = Rotation.from_rotvec([0, 0, np.radians(50)]).as_matrix()
    middle = slerp_rotation(r0, r1, 0.5)
    assert np.allclose(middle, Rotation.from_rotvec([0, 0, np.radians(30)]).as_matrix(), atol=1e-12)
    # Shorter arc: 170 and -170 degrees meet at 180, not at 0.
    a = Rotation.from_rotvec([np.radians(170), 0, 0]).as_matrix()
    b = Rotation.from_rotvec([np.radians(-170), 0, 0]).as_matrix()
    angle = np.degrees(np.linalg.norm(Rotation.from_matrix(slerp_rotation(a, b, 0.5)).as_rotvec()))
    assert angle == pytest.approx(180.0, abs=1e-6)


def test_paper_interpolation_is_exact_for_constant_motion():
    """Eq. 2-3 reproduce a constant angular velocity and a straight, uniform translation."""
    n = 9
    rot = Rotation.from_rotvec(np.outer(np.arange(n), [0.01, 0.02, -0.01])).as_matrix()
    w2c = compose_world_to_camera(rot, np.outer(np.arange(n), [0.1, 0.0, 0.2]))
    w2c[:, :3, 3] = np.outer(np.arange(n), [0.1, -0.1, 0.3])  # translation linear in time
    blanked = w2c.copy()
    blanked[2::2] = np.eye(4)
    filled = interpolate_dropped(blanked, kept_frames(n))
    assert np.allclose(filled[:-1], w2c[:-1], atol=1e-12)


@pytest.mark.parametrize("name", CODECS)
@pytest.mark.parametrize("n", [1, 2, 3, 16, 24, 25])
def test_round_trip_synthetic(name, n):
    codec = POSE_CODECS.get(name)()
    trajectory = smooth_trajectory(n, seed=n)
    data = codec.compress(trajectory)
    decoded = POSE_CODECS.by_code(codec.code)().decompress(data, n)
    assert len(decoded) == n
    assert np.allclose(decoded.world_to_camera[0], np.eye(4))
    assert is_proper_rotation(decoded.rotations)
    assert decoded.intrinsics.fx == pytest.approx(0.9, rel=1e-3)
    assert decoded.intrinsics.fy == pytest.approx(1.2, rel=1e-3)
    if n > 1:
        errors = pose_errors(decoded, trajectory)
        assert errors.rotation_mean_deg < (0.15 if name == "paper" else 0.05)
        assert errors.translation_direction_mean_deg < (1.0 if n > 2 else 2.0)
    assert codec.compress(trajectory) == data  # deterministic


def test_compact_meets_its_budget_and_is_smaller():
    trajectory = smooth_trajectory(25, seed=7)
    compact = POSE_CODECS.get("compact")().compress(trajectory)
    paper = POSE_CODECS.get("paper")().compress(trajectory)
    errors = pose_errors(POSE_CODECS.get("compact")().decompress(compact, 25), trajectory)
    assert errors.rotation_max_deg <= 0.1 and errors.rotation_mean_deg <= 0.04
    assert errors.translation_direction_mean_deg <= 0.75
    assert len(compact) * 3 < len(paper)


@pytest.mark.parametrize("motion, rotation_mean_deg, position_error", [(1.0, 0.05, 0.2), (2.0, 0.1, 0.3)])
def test_compact_codes_a_shaky_path_under_its_bit_budget(motion, rotation_mean_deg, position_error):
    """A jittery hand-held path costs more than the bit budget at the target errors (and at every
    fallback budget): the rotations keep 0.05 degree mean error and the camera positions get the
    bits left, so the GoP still fits; twice as violent a shake leaves the rotations too little
    room, and they, too, get a share of the bits; a smooth path never needs any of it."""
    c2w = camera_to_world("shake", 25, motion, np.random.default_rng(0))
    shaky = Trajectory(Intrinsics(0.866, 0.866), np.linalg.inv(c2w))
    default = CompactPoseCodec()
    target_only = CompactPoseCodec(CompactConfig(bit_budget=10**9))
    loosest_fallback = CompactPoseCodec(CompactConfig(target=default.config.fallbacks[-1], bit_budget=10**9))
    data, strict = default.compress(shaky), target_only.compress(shaky)
    assert 8 * len(loosest_fallback.compress(shaky)) > default.config.bit_budget
    assert 8 * len(data) <= default.config.bit_budget < 8 * len(strict)
    decoded = default.decompress(data, 25)
    errors = pose_errors(decoded, shaky)
    assert errors.rotation_mean_deg <= rotation_mean_deg
    assert errors.rotation_max_deg <= default.config.rotation_floor.rotation_max_deg
    truth = camera_centres(shaky.relative_to_first().world_to_camera)
    travel = np.linalg.norm(truth, axis=1).max()
    assert np.abs(camera_centres(decoded.world_to_camera) - truth).max() < position_error * travel  # positions kept, coarsely
    assert default.compress(shaky) == data  # deterministic
    smooth = smooth_trajectory(25, seed=7)
    assert default.compress(smooth) == target_only.compress(smooth)


def test_compact_fits_a_violently_turning_camera_that_does_not_move():
    """No camera positions to code: the rotations get all of the bit budget."""
    c2w = camera_to_world("shake", 25, 12.0, np.random.default_rng(1))
    c2w[:, :3, 3] = 0.0
    turning = Trajectory(Intrinsics(0.866, 0.866), np.linalg.inv(c2w))
    codec = CompactPoseCodec()
    data = codec.compress(turning)
    assert 8 * len(data) <= codec.config.bit_budget
    decoded = codec.decompress(data, 25)
    assert np.allclose(decoded.translations, 0.0)
    assert pose_errors(decoded, turning).rotation_mean_deg < 0.5


def test_compact_bounds_camera_position_errors():
    """Between spline knots a decoded camera may keep its direction of travel and still stray
    along it, a parallax error for the warp generator: the target bounds each position's error
    (share of the largest distance travelled), and without the bound the same path strays further."""
    trajectory = Trajectory(Intrinsics(0.866, 0.866), np.linalg.inv(camera_to_world("dolly", 25, 1.0, np.random.default_rng(3))))
    truth = camera_centres(trajectory.relative_to_first().world_to_camera)
    travel = np.linalg.norm(truth, axis=1).max()

    def position_error(codec: CompactPoseCodec) -> float:
        decoded = codec.decompress(codec.compress(trajectory), 25)
        return float(np.linalg.norm(camera_centres(decoded.world_to_camera) - truth, axis=1).max() / travel)

    default = CompactPoseCodec()
    unbounded = CompactPoseCodec(CompactConfig(target=CompactConfig.fallbacks[0], bit_budget=10**9))
    assert 8 * len(default.compress(trajectory)) <= default.config.bit_budget  # the target held
    bounded_error = position_error(default)
    assert bounded_error <= default.config.target.position_max * np.sqrt(3)  # per axis -> distance
    assert position_error(unbounded) > bounded_error


def test_compact_tightens_rotation_errors_for_narrow_views():
    """The same rotation error moves a 20-degree view's picture 3x as far as a 60-degree one's:
    the budget is tightened in proportion."""
    codec = CompactPoseCodec()
    wide = smooth_trajectory(25, seed=5, intrinsics=Intrinsics(0.866, 0.866))
    narrow = Trajectory(Intrinsics(2.836, 2.836), wide.world_to_camera)
    errors = {}
    for name, trajectory in (("wide", wide), ("narrow", narrow)):
        errors[name] = pose_errors(codec.decompress(codec.compress(trajectory), 25), trajectory)
    assert errors["wide"].rotation_mean_deg <= codec.config.target.rotation_mean_deg
    assert errors["narrow"].rotation_mean_deg <= codec.config.target.rotation_mean_deg * 0.866 / 2.836
    assert errors["narrow"].rotation_mean_deg < errors["wide"].rotation_mean_deg


def test_compact_keeps_scale_and_principal_point():
    trajectory = smooth_trajectory(25, seed=3, intrinsics=Intrinsics(0.7, 0.7, 0.45, 0.55))
    trajectory.world_to_camera[:, :3, 3] *= 37.0
    decoded = POSE_CODECS.get("compact")().decompress(POSE_CODECS.get("compact")().compress(trajectory), 25)
    assert (decoded.intrinsics.cx, decoded.intrinsics.cy) == pytest.approx((0.45, 0.55), abs=1e-3)
    assert pose_errors(decoded, trajectory).ate < 0.01 * 37.0
    length = np.linalg.norm(trajectory.camera_to_world()[-1, :3, 3] - trajectory.camera_to_world()[0, :3, 3])
    assert np.linalg.norm(decoded.camera_to_world()[-1, :3, 3]) == pytest.approx(length, rel=0.02)


def test_static_trajectory_is_almost_free():
    static = Trajectory.identity(25, Intrinsics(0.8, 0.8))
    for name in CODECS:
        codec = POSE_CODECS.get(name)()
        decoded = codec.decompress(codec.compress(static), 25)
        assert np.allclose(decoded.world_to_camera, np.eye(4), atol=1e-9)
    assert len(POSE_CODECS.get("compact")().compress(static)) == 5  # flags + fx + fy


@pytest.mark.parametrize("name", CODECS)
def test_non_finite_input_is_rejected(name):
    trajectory = smooth_trajectory(5)
    trajectory.world_to_camera[2, 0, 3] = np.nan
    with pytest.raises(InputError):
        POSE_CODECS.get(name)().compress(trajectory)


@pytest.mark.parametrize("name", CODECS)
def test_corrupt_payloads_raise_bitstream_error(name):
    codec = POSE_CODECS.get(name)()
    data = codec.compress(smooth_trajectory(25, seed=1))
    damaged = damaged_payloads(data, 150, tail=b"\x00\x01") + [b"\x00\x7c" * 40]  # float16 infinities
    for payload in damaged:
        try:
            decoded = codec.decompress(payload, 25)
        except BitstreamError:
            continue
        assert np.all(np.isfinite(decoded.world_to_camera))  # a flip may still decode, never garbage
    with pytest.raises(BitstreamError):
        codec.decompress(data, 0)
    with pytest.raises(BitstreamError):
        codec.decompress(b"", 25)


@pytest.mark.parametrize("name", CODECS)
def test_real_trajectories(shared_data, name):
    files = sorted((shared_data / "poses" / "re10k").glob("*_svdxt.txt"))
    assert files
    for path in files:
        trajectory = load_poses(path)
        codec = POSE_CODECS.get(name)()
        data = codec.compress(trajectory)
        errors = pose_errors(codec.decompress(data, len(trajectory)), trajectory)
        if name == "paper":
            assert errors.rotation_mean_deg < 0.1 and 8 * len(data) < 2200
        else:
            assert errors.rotation_mean_deg < 0.05 and errors.rotation_max_deg < 0.1
            assert errors.translation_direction_mean_deg < 1.0 and 8 * len(data) < 500
