"""Optional learned metrics: skipped with a note without weights, run with random tiny networks."""

import numpy as np
import pytest
import torch

from cpsgd.bench.optional import (
    ALEX_CHANNELS,
    OptionalMetrics,
    aesthetic_head,
    aesthetic_score,
    build_lpips_alex,
    clip_embeddings,
)
from tests.conftest import textured_clip


@pytest.fixture(scope="module")
def clips() -> tuple[np.ndarray, np.ndarray]:
    clip = textured_clip(2, 64, 64)
    noisy = np.clip(clip + np.random.default_rng(0).normal(0, 25, clip.shape), 0, 255).astype(np.uint8)
    return clip, noisy


def test_without_weights_everything_is_skipped_with_notes(clips):
    metrics = OptionalMetrics()
    assert metrics.scores(*clips) == {}
    notes = " ".join(metrics.notes(25))
    for name in ("lpips", "clip_sim", "aesthetic", "fvd"):
        assert name in notes


def test_lpips_loads_state_dicts_from_files(tmp_path, clips):
    torch.manual_seed(0)
    net = build_lpips_alex()
    state = net.state_dict()
    # As shipped: torchvision's AlexNet file (features + a classifier) and LPIPS's heads file.
    backbone = {k: v for k, v in state.items() if k.startswith("features.")}
    backbone["classifier.1.weight"] = torch.zeros(2, 2)
    heads = {k: v.abs() for k, v in state.items() if k.startswith("lin")}
    torch.save(backbone, tmp_path / "alexnet.pth")
    torch.save(heads, tmp_path / "lpips_alex.pth")
    assert [heads[f"lin{k}.model.1.weight"].shape[1] for k in range(5)] == list(ALEX_CHANNELS)
    metrics = OptionalMetrics(lpips=(tmp_path / "alexnet.pth", tmp_path / "lpips_alex.pth"))
    clip, noisy = clips
    assert metrics.scores(clip, clip)["lpips"] == pytest.approx(0.0, abs=1e-6)
    assert metrics.scores(clip, noisy)["lpips"] > 0


def test_clip_similarity_and_aesthetic_with_a_tiny_random_clip(tmp_path, clips):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                              image_size=32, patch_size=8, projection_dim=16)
    CLIPVisionModelWithProjection(config).save_pretrained(tmp_path / "clip")
    head = aesthetic_head(None, 16)
    torch.save(head.state_dict(), tmp_path / "head.pth")
    metrics = OptionalMetrics(clip=tmp_path / "clip", aesthetic_head=tmp_path / "head.pth")
    clip, noisy = clips
    same = metrics.scores(clip, clip)
    assert same["clip_sim"] == pytest.approx(1.0, abs=1e-5)
    assert metrics.scores(clip, noisy)["clip_sim"] < 1.0
    # The aesthetic score is the loaded head on the decoded frames' normalised embeddings.
    model = CLIPVisionModelWithProjection.from_pretrained(tmp_path / "clip")
    expected = aesthetic_score(head, clip_embeddings(model, clip))
    assert same["aesthetic"] == pytest.approx(expected, abs=1e-6)
