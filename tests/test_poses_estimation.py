"""The "flow" pose estimator on synthetic scenes with exact poses, and on DAVIS' static clip."""

from __future__ import annotations

import numpy as np
import pytest

from cpsgd.errors import InputError
from cpsgd.poses import POSE_ESTIMATORS
from cpsgd.poses.metrics import pose_errors
from cpsgd.synth import SceneConfig, make_scene


def estimate(clip, use_masks: bool = True):
    return POSE_ESTIMATORS.get("flow")().estimate(clip.frames, clip.masks if use_masks else None)


def test_static_scene_comes_out_static():
    clip = make_scene(SceneConfig(traj="static", objects=2, num_frames=12, width=192, height=192, seed=1))
    trajectory = estimate(clip, use_masks=False)
    assert np.allclose(trajectory.world_to_camera, np.eye(4))


def test_pan_is_a_pure_rotation():
    clip = make_scene(SceneConfig(traj="pan", objects=1, num_frames=25, width=256, height=256, seed=2, fov_deg=50))
    trajectory = estimate(clip)
    errors = pose_errors(trajectory, clip.trajectory)
    assert errors.rotation_median_deg < 0.5
    assert errors.focal_error < 0.05  # the prior is 60 degrees: the tracks decided
    assert np.abs(trajectory.translations).max() == 0.0


def test_orbit_with_masked_objects():
    clip = make_scene(SceneConfig(traj="orbit", objects=2, num_frames=25, width=384, height=384, seed=3))
    trajectory = estimate(clip)
    errors = pose_errors(trajectory, clip.trajectory)
    assert errors.rotation_median_deg < 0.5
    assert errors.focal_error < 0.05
    assert errors.translation_direction_mean_deg < 5.0


def test_bad_input():
    estimator = POSE_ESTIMATORS.get("flow")()
    with pytest.raises(InputError):
        estimator.estimate(np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(InputError):
        estimator.estimate(np.zeros((3, 8, 8, 3), np.uint8), np.zeros((3, 4, 4), np.uint8))
    single = estimator.estimate(np.zeros((1, 16, 16, 3), np.uint8))
    assert len(single) == 1 and np.allclose(single.world_to_camera, np.eye(4))


def test_davis_breakdance_is_static(shared_data):
    from cpsgd.video import open_video

    root = shared_data / "davis2016"
    frames = np.stack(list(open_video(root / "JPEGImages" / "breakdance", size=512, max_frames=25).iter_frames()))
    masks = np.stack(
        [f[:, :, 0] > 127 for f in open_video(root / "Annotations" / "breakdance", size=512, max_frames=25).iter_frames()]
    ).astype(np.uint8)
    estimator = POSE_ESTIMATORS.get("flow")()
    for fg in (None, masks):
        assert np.allclose(estimator.estimate(frames, fg).world_to_camera, np.eye(4))


@pytest.mark.parametrize(("fov", "objects", "masked"), [(60.0, 2, False), (75.0, 1, True)])
def test_forward_motion_holds_the_focal_length_at_the_prior(fov, objects, masked):
    """Under a pure forward motion the focal length is unobservable: the estimator holds it at its
    60-degree prior instead of letting it trade against the rotations (with two unmasked objects
    a free focal slid to a 113-degree view and the rotations 0.8 degree off)."""
    from cpsgd.poses.trajectory import focal_of_fov

    clip = make_scene(SceneConfig(traj="dolly", objects=objects, width=384, height=384, seed=0, fov_deg=fov))
    trajectory = estimate(clip, use_masks=masked)
    errors = pose_errors(trajectory, clip.trajectory)
    assert errors.rotation_median_deg < 0.5
    assert trajectory.intrinsics.fx == pytest.approx(focal_of_fov(60.0))
    assert errors.translation_direction_mean_deg < 5.0


def test_orbit_with_unmasked_objects():
    clip = make_scene(SceneConfig(traj="orbit", objects=2, num_frames=25, width=384, height=384, seed=0))
    errors = pose_errors(estimate(clip, use_masks=False), clip.trajectory)
    assert errors.rotation_median_deg < 0.5
    assert errors.focal_error < 0.05
