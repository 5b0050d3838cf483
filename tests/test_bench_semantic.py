"""Semantic fidelity: a lossless codec scores zero pose error and J = 1, a frozen clip does not."""

from __future__ import annotations

import numpy as np
import pytest

from cpsgd.bench.semantic import SemanticReference
from cpsgd.synth import SceneConfig, make_scene


@pytest.fixture(scope="module")
def clip():
    return make_scene(SceneConfig(traj="pan", objects=1, num_frames=10, width=160, height=160, seed=2))


def test_the_source_itself_scores_perfectly(clip):
    """Both pose fits see the same masks (the annotations), so the source against itself is exact."""
    reference = SemanticReference.of(clip.frames, clip.masks)
    scores = reference.scores(clip.frames)
    assert scores["rot_err_deg"] == 0.0
    assert scores["mask_j"] == pytest.approx(1.0)


def test_a_frozen_clip_loses_the_camera_motion(clip):
    reference = SemanticReference.of(clip.frames, clip.masks)
    frozen = np.repeat(clip.frames[:1], len(clip.frames), axis=0)
    assert reference.scores(frozen)["rot_err_deg"] > 0.5
