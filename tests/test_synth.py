"""Synthetic scenes: shapes, determinism, trajectory shapes, exact masks and poses, files, CLI."""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
import pytest

from cpsgd.errors import InputError
from cpsgd.poses.re10k import read_re10k
from cpsgd.poses.trajectory import Trajectory
from cpsgd.synth import SceneConfig, make_scene
from cpsgd.synth.check import reprojection_check, rigid_flow
from cpsgd.synth.cli import add_synth_command, parse_size
from cpsgd.synth.io import write_clip
from cpsgd.synth.trajectories import TRAJECTORIES, rotation_y


def small(**kwargs) -> SceneConfig:
    defaults = dict(width=96, height=72, num_frames=6, objects=2, noise=0.0)
    return SceneConfig(**{**defaults, **kwargs})


def rotation_angles_deg(traj: Trajectory) -> np.ndarray:
    cos = (np.trace(traj.rotations, axis1=1, axis2=2) - 1) / 2
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def camera_centres(traj: Trajectory) -> np.ndarray:
    return traj.camera_to_world()[:, :3, 3]


@pytest.mark.parametrize("traj", TRAJECTORIES)
def test_clip_layout(traj: str) -> None:
    clip = make_scene(small(traj=traj))
    n, h, w = 6, 72, 96
    assert clip.frames.shape == (n, h, w, 3) and clip.frames.dtype == np.uint8
    assert clip.masks.shape == (n, h, w) and clip.masks.dtype == np.uint8
    assert clip.depths.shape == (n, h, w)
    assert len(clip.trajectory) == n and clip.fps == 25.0
    np.testing.assert_allclose(clip.trajectory.world_to_camera[0], np.eye(4), atol=1e-12)
    # world-to-camera matrices are rigid
    rot = clip.trajectory.rotations
    np.testing.assert_allclose(rot @ np.transpose(rot, (0, 2, 1)), np.tile(np.eye(3), (n, 1, 1)), atol=1e-12)
    assert set(np.unique(clip.masks)) <= {0, 1, 2} and (clip.masks == 1).any() and (clip.masks == 2).any()
    assert np.isfinite(clip.depths).all()  # wall and ground fill the view
    assert clip.frames.std() > 20  # textured, not flat


def test_trajectory_kinds() -> None:
    tiny = dict(num_frames=25, width=32, height=32, objects=0)
    clips = {t: make_scene(small(traj=t, **tiny)) for t in TRAJECTORIES}
    static = clips["static"].trajectory.world_to_camera
    np.testing.assert_allclose(static, np.tile(np.eye(4), (25, 1, 1)))

    pan = clips["pan"].trajectory
    assert np.abs(pan.translations).max() < 1e-12  # pure rotation about the camera centre
    step = np.diff(rotation_angles_deg(pan))
    assert 0.3 <= step.min() and step.max() <= 0.6

    dolly = clips["dolly"].trajectory
    np.testing.assert_allclose(dolly.rotations, np.tile(np.eye(3), (25, 1, 1)), atol=1e-12)
    centres = camera_centres(dolly)
    assert np.abs(centres[:, :2]).max() < 1e-12 and np.all(np.diff(centres[:, 2]) > 0)  # forward (+z)

    orbit = clips["orbit"].trajectory
    assert rotation_angles_deg(orbit)[-1] > 5 and np.linalg.norm(camera_centres(orbit)[-1]) > 0.5
    # the camera keeps looking at the pivot on its initial optical axis
    pivot = orbit.world_to_camera[:, :3, :3] @ np.array([0, 0, 6.0]) + orbit.translations
    np.testing.assert_allclose(pivot[:, :2], 0, atol=1e-9)

    shake = clips["shake"].trajectory
    assert 0 < rotation_angles_deg(shake).max() < 3 and 0 < np.abs(camera_centres(shake)).max() < 0.2
    other_seed = make_scene(small(traj="shake", seed=1, **tiny))
    assert not np.allclose(other_seed.trajectory.world_to_camera, shake.world_to_camera)


def test_deterministic() -> None:
    config = small(traj="shake", noise=1.5)
    a, b = make_scene(config), make_scene(config)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.masks, b.masks)
    assert np.array_equal(a.trajectory.world_to_camera, b.trajectory.world_to_camera)
    assert not np.array_equal(a.frames, make_scene(small(traj="shake", noise=1.5, seed=7)).frames)


def test_masks_are_exactly_the_object_pixels() -> None:
    # Same seed without objects renders the same static scene: the frames may differ only under
    # the masks, and do differ almost everywhere under them.
    with_objects = make_scene(small(traj="orbit"))
    empty = make_scene(small(traj="orbit", objects=0))
    assert not empty.masks.any()
    changed = (with_objects.frames != empty.frames).any(axis=-1)
    under = with_objects.masks > 0
    assert not changed[~under].any()
    assert changed[under].mean() > 0.95


@pytest.mark.parametrize("traj", ["pan", "dolly", "orbit", "shake"])
def test_poses_are_exact(traj: str) -> None:
    clip = make_scene(small(traj=traj, width=160, height=128, num_frames=8))
    report = reprojection_check(clip)
    # depth maps and poses agree to float32 rounding (a 0.5 degree error gives about 2e-3)
    assert report.max_depth_error < 1e-5
    assert min(f.valid_fraction for f in report.frames) > 0.4
    assert report.colour_error < 3.0  # grey levels: only resampling blur, no sensor noise here

    # a pose off by half a degree, or by 5 cm, is clearly visible in the same measure
    wrong_rot = clip.trajectory.world_to_camera.copy()
    wrong_rot[1:, :3, :3] = rotation_y(np.radians(0.5)) @ wrong_rot[1:, :3, :3]
    wrong_shift = clip.trajectory.world_to_camera.copy()
    wrong_shift[1:, 0, 3] += 0.05
    for wrong in (wrong_rot, wrong_shift):
        bad = reprojection_check(clip, trajectory=Trajectory(clip.trajectory.intrinsics, wrong))
        assert bad.colour_error > 1.8 * report.colour_error


def test_dense_flow_recovers_true_flow() -> None:
    # the textures carry enough detail for an off-the-shelf flow method to find the true motion
    clip = make_scene(SceneConfig(traj="orbit", width=160, height=128, num_frames=4))
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in clip.frames]
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(grey[0], grey[3], None)
    truth = rigid_flow(clip, 3)
    static = (clip.masks[0] == 0) & (clip.masks[3] == 0)
    error = np.linalg.norm(flow - truth, axis=-1)[static]
    assert np.median(np.linalg.norm(truth, axis=-1)[static]) > 1.0  # the camera really moved
    assert np.median(error) < 0.5


def test_noise_level_of_check() -> None:
    clip = make_scene(small(traj="static", noise=2.0, objects=0))
    # a static camera only sees the sensor noise: E|a - b| = 2 sigma / sqrt(pi) for two samples
    assert reprojection_check(clip).colour_error == pytest.approx(2 * 2.0 / np.sqrt(np.pi), rel=0.1)


def test_write_clip(tmp_path) -> None:
    clip = make_scene(small(traj="dolly", num_frames=4))
    out = tmp_path / "clip"
    paths = write_clip(clip, out)
    frames = sorted((out / "frames").glob("*.png"))
    masks = sorted((out / "masks").glob("*.png"))
    assert [p.name for p in frames] == [f"frame_{i:05d}.png" for i in range(4)] == [p.name for p in masks]
    assert paths["poses"] == out / "poses.txt"
    assert np.array_equal(cv2.imread(str(frames[2]))[..., ::-1], clip.frames[2])
    mask = cv2.imread(str(masks[2]), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(mask)) == {0, 255} and np.array_equal(mask == 255, clip.masks[2] > 0)

    traj, stamps = read_re10k(out / "poses.txt")
    np.testing.assert_allclose(traj.world_to_camera, clip.trajectory.world_to_camera, atol=1e-8)
    assert list(stamps) == [0, 40000, 80000, 120000]
    info = json.loads((out / "intrinsics.json").read_text())
    assert (info["width"], info["height"]) == (96, 72)
    assert info["fx"] == pytest.approx(traj.intrinsics.fx)
    assert info["fy_px"] == pytest.approx(traj.intrinsics.fy * 72)
    assert info["cx_px"] == pytest.approx(48.0)

    with pytest.raises(InputError, match="not empty"):
        write_clip(clip, out)
    write_clip(make_scene(small(traj="dolly", num_frames=2)), out, force=True)
    assert len(list((out / "frames").glob("*.png"))) == 2  # no stale frames left behind
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError):
        write_clip(clip, tmp_path / "file", force=True)


def test_config_validation() -> None:
    bad_options = (dict(traj="zoom"), dict(objects=3), dict(num_frames=0), dict(width=2), dict(noise=-1),
                   dict(seed=-1))
    for bad in bad_options:
        with pytest.raises(InputError):
            SceneConfig(**bad)


def test_cli(tmp_path, capsys) -> None:
    parser = argparse.ArgumentParser(prog="cpsgd")
    add_synth_command(parser.add_subparsers())
    args = parser.parse_args(
        ["synth", str(tmp_path / "o"), "--traj", "orbit", "--objects", "2", "--frames", "3",
         "--size", "64x48", "--seed", "2", "--check"]
    )
    assert args.handler(args) == 0
    printed = capsys.readouterr().out
    assert "poses.txt" in printed and "self-check" in printed
    assert cv2.imread(str(tmp_path / "o" / "frames" / "frame_00002.png")).shape == (48, 64, 3)
    with pytest.raises(InputError):
        args.handler(args)  # refuses to overwrite without --force
    assert parse_size("128") == (128, 128) and parse_size("320x240") == (320, 240)
    with pytest.raises(InputError):
        parse_size("big")
