"""Trajectory file formats (COLMAP text, TUM, RealEstate10K) and the pose metrics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cpsgd.errors import InputError
from cpsgd.poses import Intrinsics, Trajectory, load_poses, save_poses
from cpsgd.poses.formats import (
    crop_intrinsics,
    detect_format,
    read_colmap,
    read_tum,
    square_crop_box,
    write_colmap,
    write_tum,
)
from cpsgd.poses.geometry import compose_world_to_camera
from cpsgd.poses.metrics import (
    absolute_trajectory_error,
    pose_errors,
    relative_pose_error,
    rotation_errors_deg,
    translation_direction_errors_deg,
    umeyama_alignment,
)

COLMAP_CAMERAS = """# Camera list with one line of data per camera:
#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]
# Number of cameras: 1
3 SIMPLE_RADIAL 640 480 500 320 240 0.01
"""

# Two images, listed out of name order; the first has an empty POINTS2D line, the second points.
COLMAP_IMAGES = """# Image list with two lines of data per image:
#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME
#   POINTS2D[] as (X, Y, POINT3D_ID)
2 0.7071067811865476 0 0.7071067811865476 0 1 2 3 3 frame_00001.png
10.5 20.5 -1 30 40 7
1 1 0 0 0 0 0 0 3 frame_00000.png

"""


def test_read_colmap_hand_made(tmp_path):
    (tmp_path / "cameras.txt").write_text(COLMAP_CAMERAS)
    (tmp_path / "images.txt").write_text(COLMAP_IMAGES)
    trajectory, names, size = read_colmap(tmp_path)
    assert names == ["frame_00000.png", "frame_00001.png"] and size == (640, 480)
    k = trajectory.intrinsics
    assert (k.fx, k.fy, k.cx, k.cy) == pytest.approx((500 / 640, 500 / 480, 0.5, 0.5))
    assert np.allclose(trajectory.world_to_camera[0], np.eye(4))
    # w = cos 45, y = sin 45: 90 degrees about +y; COLMAP poses are world-to-camera.
    expected = np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], dtype=float)
    assert np.allclose(trajectory.rotations[1], expected, atol=1e-12)
    assert np.allclose(trajectory.translations[1], [1, 2, 3])
    assert detect_format(tmp_path) == "colmap"
    assert detect_format(tmp_path / "images.txt") == "colmap"


def test_colmap_round_trip(tmp_path):
    rot = Rotation.from_rotvec(np.random.default_rng(0).normal(size=(4, 3))).as_matrix()
    trajectory = Trajectory(Intrinsics(0.8, 1.1, 0.49, 0.52), compose_world_to_camera(rot, np.arange(12.0).reshape(4, 3)))
    write_colmap(tmp_path, trajectory, 640, 360)
    back, names, size = read_colmap(tmp_path)
    assert size == (640, 360) and names[0] == "frame_00000.png"
    assert np.allclose(back.world_to_camera, trajectory.world_to_camera, atol=1e-9)
    k = back.intrinsics
    assert (k.fx, k.fy, k.cx, k.cy) == pytest.approx((0.8, 1.1, 0.49, 0.52))


def test_colmap_errors(tmp_path):
    (tmp_path / "cameras.txt").write_text("1 FISHEYE_X 10 10 1 2 3\n")
    (tmp_path / "images.txt").write_text(COLMAP_IMAGES)
    with pytest.raises(InputError, match="camera model"):
        read_colmap(tmp_path)
    (tmp_path / "cameras.txt").write_text(COLMAP_CAMERAS)
    (tmp_path / "images.txt").write_text("1 1 0 0 0 0 0 0 9 a.png\n\n")
    with pytest.raises(InputError, match="unknown camera"):
        read_colmap(tmp_path)


def test_tum_hand_made_and_round_trip(tmp_path):
    path = tmp_path / "traj.txt"
    # Camera-to-world: frame 1 at x = 1, turned 90 degrees about z (qz = sin 45, qw = cos 45).
    path.write_text("# timestamp tx ty tz qx qy qz qw\n0.0 0 0 0 0 0 0 1\n0.1 1 0 0 0 0 0.70710678 0.70710678\n")
    trajectory, stamps = read_tum(path)
    assert stamps.tolist() == [0.0, 0.1]
    c2w = trajectory.camera_to_world()
    assert np.allclose(c2w[1, :3, 3], [1, 0, 0])
    assert np.allclose(c2w[1, :3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-7)
    assert detect_format(path) == "tum"
    out = tmp_path / "out.tum"
    write_tum(out, trajectory)
    assert np.allclose(read_tum(out)[0].world_to_camera, trajectory.world_to_camera, atol=1e-9)


def test_load_and_save_pick_the_format(tmp_path):
    trajectory = Trajectory(Intrinsics(0.6, 0.9), compose_world_to_camera(np.tile(np.eye(3), (3, 1, 1)), np.eye(3)))
    save_poses(tmp_path / "a.txt", trajectory)
    save_poses(tmp_path / "a.tum", trajectory)
    assert detect_format(tmp_path / "a.txt") == "re10k"
    assert np.allclose(load_poses(tmp_path / "a.txt").world_to_camera, trajectory.world_to_camera)
    tum = load_poses(tmp_path / "a.tum", intrinsics=Intrinsics(0.6, 0.9))
    assert np.allclose(tum.world_to_camera, trajectory.world_to_camera) and tum.intrinsics.fx == 0.6
    (tmp_path / "junk.txt").write_text("hello\n1 2 3\n")
    with pytest.raises(InputError):
        load_poses(tmp_path / "junk.txt")
    with pytest.raises(InputError):
        load_poses(tmp_path / "missing.txt")


def test_real_files_load(shared_data):
    re10k = load_poses(shared_data / "poses" / "re10k" / "0bf152ef84195293_svdxt.txt")
    assert len(re10k) == 25 and re10k.intrinsics.fx == pytest.approx(0.474812461)
    tum = load_poses(shared_data / "poses" / "tum" / "freiburg1_xyz-groundtruth.txt")
    assert len(tum) > 2500
    assert is_rotation(tum.rotations)


def is_rotation(r: np.ndarray) -> bool:
    return np.allclose(r @ np.swapaxes(r, 1, 2), np.eye(3), atol=1e-6)


# --- metrics --------------------------------------------------------------------------------


def _random_trajectory(n: int, seed: int) -> Trajectory:
    rng = np.random.default_rng(seed)
    rot = Rotation.from_rotvec(0.2 * rng.normal(size=(n, 3))).as_matrix()
    return Trajectory(Intrinsics(1.0, 1.0), compose_world_to_camera(rot, rng.normal(size=(n, 3))))


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(1)
    source = rng.normal(size=(20, 3))
    r = Rotation.from_rotvec([0.3, -0.2, 0.9]).as_matrix()
    target = 2.5 * source @ r.T + [1, 2, 3]
    s, r_est, t = umeyama_alignment(source, target)
    assert s == pytest.approx(2.5) and np.allclose(r_est, r) and np.allclose(t, [1, 2, 3])


def test_metrics_ignore_world_frame_and_scale():
    reference = _random_trajectory(10, 0)
    # Same motion in another world frame, with the scene scaled by 3.
    change = np.eye(4)
    change[:3, :3] = Rotation.from_rotvec([1.0, 0.5, -0.3]).as_matrix()
    change[:3, 3] = [5, -2, 1]
    moved = reference.world_to_camera @ np.linalg.inv(change)
    moved[:, :3, 3] *= 3.0
    estimate = Trajectory(reference.intrinsics, moved)
    assert np.allclose(rotation_errors_deg(estimate, reference), 0, atol=1e-6)
    assert np.nanmax(translation_direction_errors_deg(estimate, reference)) < 1e-5
    assert absolute_trajectory_error(estimate, reference) < 1e-9
    assert relative_pose_error(estimate, reference)[0] < 1e-9


def test_metrics_measure_known_errors():
    reference = _random_trajectory(6, 2)
    w2c = reference.world_to_camera.copy()
    w2c[3, :3, :] = Rotation.from_rotvec([0, 0, np.radians(2.0)]).as_matrix() @ w2c[3, :3, :]
    errors = rotation_errors_deg(Trajectory(reference.intrinsics, w2c), reference)
    assert errors[3] == pytest.approx(2.0, abs=1e-6) and np.delete(errors, 3).max() < 1e-6
    summary = pose_errors(Trajectory(Intrinsics(1.1, 1.0), w2c), reference)
    assert summary.focal_error == pytest.approx(0.1)
    assert summary.rotation_max_deg == pytest.approx(2.0, abs=1e-6)
    static = Trajectory.identity(4, reference.intrinsics)
    assert np.isnan(translation_direction_errors_deg(static, static)).all()


def test_square_crop_follows_the_intrinsics():
    # A 256x128 frame cut to its central 128x128: fx is relative to the width, which halves.
    k = Intrinsics(fx=0.866, fy=1.732, cx=0.5, cy=0.5)
    assert square_crop_box(128, 256) == (0, 64, 128, 128)
    cropped = crop_intrinsics(k, 128, 256, square_crop_box(128, 256))
    assert cropped == pytest.approx(Intrinsics(1.732, 1.732, 0.5, 0.5))
    # A principal point off centre moves by the crop's offset.
    shifted = crop_intrinsics(Intrinsics(0.5, 0.8, 0.25, 0.5), 20, 32, (0, 1, 20, 30))
    assert (shifted.fx, shifted.cx) == pytest.approx((0.5 * 32 / 30, (8 - 1) / 30))


def test_encode_with_poses_and_size_sends_the_cropped_intrinsics(tmp_path):
    from PIL import Image

    from cpsgd.bitstream.container import BitstreamReader
    from cpsgd.cli import main
    from cpsgd.pipeline.decoder import decode_conditions
    from tests.conftest import textured_clip

    frames = tmp_path / "frames"
    frames.mkdir()
    for i, frame in enumerate(textured_clip(4, 128, 256)):
        Image.fromarray(frame).save(frames / f"{i:03d}.png")
    c2w = np.tile(np.eye(4), (4, 1, 1))
    c2w[:, 0, 3] = np.arange(4) * 0.1
    save_poses(tmp_path / "poses.txt", Trajectory(Intrinsics(0.866, 1.732), np.linalg.inv(c2w)))
    out = tmp_path / "clip.cpsgd"
    options = ["--size", "64", "--segmenter", "none", "--no-rate-control", "--fixed-gop", "-q"]
    assert main(["encode", str(frames), "-o", str(out), "--poses", str(tmp_path / "poses.txt"), *options]) == 0
    reader = BitstreamReader.from_bytes(out.read_bytes())
    trajectory = decode_conditions(next(reader.gops()), reader.header, None).trajectory
    assert trajectory.intrinsics.fx == pytest.approx(1.732, rel=0.02)
    assert trajectory.intrinsics.fy == pytest.approx(1.732, rel=0.02)


def _colmap_bin(folder, cameras, images):
    """Write cameras.bin / images.bin as COLMAP does (little-endian; see its read_write_model.py).
    cameras: (id, model id, width, height, params); images: (id, qwxyz, t, camera id, name, points)."""
    import struct

    data = struct.pack("<Q", len(cameras))
    for camera_id, model_id, width, height, params in cameras:
        data += struct.pack(f"<iiQQ{len(params)}d", camera_id, model_id, width, height, *params)
    (folder / "cameras.bin").write_bytes(data)
    data = struct.pack("<Q", len(images))
    for image_id, q, t, camera_id, name, points in images:
        data += struct.pack("<i7di", image_id, *q, *t, camera_id) + name.encode() + b"\0"
        data += struct.pack("<Q", points) + struct.pack("<ddq", 1.5, 2.5, -1) * points
    (folder / "images.bin").write_bytes(data)


def test_read_colmap_binary_matches_text(tmp_path):
    half = np.sqrt(0.5)
    # The hand-made text model above, as binary: SIMPLE_RADIAL is model id 2.
    images = [
        (2, (half, 0, half, 0), (1, 2, 3), 3, "frame_00001.png", 2),
        (1, (1, 0, 0, 0), (0, 0, 0), 3, "frame_00000.png", 0),
    ]
    _colmap_bin(tmp_path, [(3, 2, 640, 480, (500, 320, 240, 0.01))], images)
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "cameras.txt").write_text(COLMAP_CAMERAS)
    (tmp_path / "text" / "images.txt").write_text(COLMAP_IMAGES)
    binary, text = read_colmap(tmp_path), read_colmap(tmp_path / "text")
    assert binary[1:] == text[1:] == (["frame_00000.png", "frame_00001.png"], (640, 480))
    assert binary[0].intrinsics == text[0].intrinsics
    np.testing.assert_allclose(binary[0].world_to_camera, text[0].world_to_camera, atol=1e-15)
    assert detect_format(tmp_path / "images.bin") == "colmap"
    np.testing.assert_allclose(load_poses(tmp_path / "cameras.bin").world_to_camera, text[0].world_to_camera)
    # A PINHOLE camera (id 1) with two focal lengths, in a sparse/0 folder as COLMAP lays it out.
    (tmp_path / "run" / "sparse" / "0").mkdir(parents=True)
    _colmap_bin(tmp_path / "run" / "sparse" / "0", [(3, 1, 200, 100, (150, 80, 99, 51))], images[1:])
    k = read_colmap(tmp_path / "run")[0].intrinsics
    assert (k.fx, k.fy, k.cx, k.cy) == pytest.approx((0.75, 0.8, 0.495, 0.51))


def test_colmap_binary_errors(tmp_path):
    images = [(1, (1, 0, 0, 0), (0, 0, 0), 1, "a.png", 1)]
    _colmap_bin(tmp_path, [(1, 7, 10, 10, (1, 2, 3, 4, 5))], images)  # FOV
    with pytest.raises(InputError, match="unsupported camera model FOV"):
        read_colmap(tmp_path)
    _colmap_bin(tmp_path, [(1, 0, 10, 10, (5, 5, 5))], [(1, (1, 0, 0, 0), (0, 0, 0), 4, "a.png", 0)])
    with pytest.raises(InputError, match="unknown camera 4"):
        read_colmap(tmp_path)
    _colmap_bin(tmp_path, [(1, 0, 10, 10, (5, 5, 5))], images)
    good = (tmp_path / "images.bin").read_bytes()
    for cut in (4, 30, len(good) - 1):
        (tmp_path / "images.bin").write_bytes(good[:cut])
        with pytest.raises(InputError, match="images.bin"):
            read_colmap(tmp_path)
    (tmp_path / "images.bin").write_bytes(good + b"\0")
    with pytest.raises(InputError, match="unexpected bytes"):
        read_colmap(tmp_path)
    # A huge declared count fails before anything is allocated.
    (tmp_path / "images.bin").write_bytes(b"\xff" * 8 + good[8:])
    with pytest.raises(InputError, match="do not fit"):
        read_colmap(tmp_path)
