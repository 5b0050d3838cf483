"""``cpsgd poses estimate|compress|decompress`` through ``add_pose_commands``."""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import pytest

from cpsgd.errors import BitstreamError, InputError
from cpsgd.poses import load_poses
from cpsgd.poses.cli import add_pose_commands, chain, windows
from cpsgd.poses.metrics import pose_errors
from cpsgd.poses.re10k import write_re10k
from cpsgd.synth import SceneConfig, make_scene


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_pose_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args([str(a) for a in argv])
    return args.handler(args)


def test_windows_share_their_boundary_frame():
    assert list(windows(49, 25)) == [(0, 25), (24, 49)]
    assert list(windows(50, 25)) == [(0, 25), (24, 49), (48, 50)]
    assert list(windows(1, 25)) == [(0, 1)]


@pytest.mark.parametrize("codec", ["paper", "compact"])
def test_compress_decompress_long_trajectory(tmp_path, codec):
    clip_poses = make_scene(SceneConfig(traj="orbit", objects=0, num_frames=60, width=32, height=32)).trajectory
    write_re10k(tmp_path / "poses.txt", clip_poses)
    assert run("poses", "compress", tmp_path / "poses.txt", "-o", tmp_path / "p.bin", "--codec", codec) == 0
    assert run("poses", "decompress", tmp_path / "p.bin", "-o", tmp_path / "back.txt") == 0
    back = load_poses(tmp_path / "back.txt")
    errors = pose_errors(back, clip_poses)
    assert len(back) == 60 and errors.rotation_max_deg < 0.3 and errors.translation_direction_mean_deg < 1.0
    with pytest.raises(InputError, match="exists"):
        run("poses", "decompress", tmp_path / "p.bin", "-o", tmp_path / "back.txt")
    assert run("poses", "decompress", tmp_path / "p.bin", "-o", tmp_path / "back.txt", "--force") == 0


def test_corrupt_pose_file(tmp_path):
    write_re10k(tmp_path / "poses.txt", make_scene(SceneConfig(traj="pan", num_frames=25, width=32, height=32)).trajectory)
    run("poses", "compress", tmp_path / "poses.txt", "-o", tmp_path / "p.bin")
    data = (tmp_path / "p.bin").read_bytes()
    for broken in (data[:-3], b"XXXX" + data[4:], data + b"\x00", data[:5] + b"\x09" + data[6:]):
        (tmp_path / "bad.bin").write_bytes(broken)
        with pytest.raises(BitstreamError):
            run("poses", "decompress", tmp_path / "bad.bin", "-o", tmp_path / "out.txt", "--force")


def test_chain_composes_relative_windows():
    trajectory = make_scene(SceneConfig(traj="shake", num_frames=30, width=32, height=32)).trajectory
    parts = [trajectory.slice(a, b) for a, b in windows(30, 10)]
    assert np.allclose(chain(parts, trajectory.intrinsics).world_to_camera, trajectory.world_to_camera)


def test_estimate_from_a_frame_folder(tmp_path):
    clip = make_scene(SceneConfig(traj="pan", objects=0, num_frames=14, width=160, height=160, seed=4))
    (tmp_path / "frames").mkdir()
    for i, frame in enumerate(clip.frames):
        cv2.imwrite(str(tmp_path / "frames" / f"frame_{i:05d}.png"), frame[:, :, ::-1])
    out = tmp_path / "poses.txt"
    assert run("poses", "estimate", tmp_path / "frames", "-o", out, "--gop", "8") == 0
    estimated = load_poses(out)
    assert len(estimated) == 14
    assert pose_errors(estimated, clip.trajectory).rotation_median_deg < 0.5
