"""The "motion" segmenter on synthetic scenes with exact masks (and DAVIS when present)."""

from pathlib import Path

import numpy as np
import pytest

from cpsgd.errors import InputError
from cpsgd.masks import SEGMENTERS
from cpsgd.masks.metrics import region_similarity
from cpsgd.masks.motion import MotionSegmenter

DATA = Path(__file__).parents[2] / "shared" / "data"


@pytest.mark.parametrize("traj", ["static", "pan"])
def test_motion_segmenter_finds_the_moving_object(traj):
    from cpsgd.synth import SceneConfig, make_scene

    clip = make_scene(SceneConfig(traj=traj, objects=1, num_frames=12, width=192, height=192, seed=1))
    masks = SEGMENTERS.get("motion")().segment(clip.frames)
    assert masks.shape == clip.masks.shape and masks.dtype == np.uint8
    assert set(np.unique(masks)) <= {0, 1}
    assert region_similarity(masks, clip.masks).mean() >= 0.6


def test_still_video_has_no_foreground():
    rng = np.random.default_rng(0)
    frame = (rng.random((64, 80, 3)) * 255).astype(np.uint8)
    frames = np.repeat(frame[None], 6, axis=0)
    assert not MotionSegmenter().segment(frames).any()
    assert MotionSegmenter().segment(frames[:1]).shape == (1, 64, 80)


def test_rejects_bad_frames():
    with pytest.raises(InputError):
        MotionSegmenter().segment(np.zeros((3, 16, 16), np.uint8))


@pytest.mark.skipif(not (DATA / "davis2016").is_dir(), reason="needs ../shared/data/davis2016 (DAVIS clips)")
def test_motion_segmenter_on_davis_dog():
    from cpsgd.masks.davis import load_davis_clip

    frames, truth = load_davis_clip(DATA / "davis2016", "dog")
    assert region_similarity(MotionSegmenter().segment(frames), truth).mean() >= 0.6
