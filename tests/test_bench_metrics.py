"""Metrics against known values."""

import sys

import cv2
import numpy as np
import pytest
from skimage import data
from skimage.metrics import structural_similarity

from cpsgd.bench import metrics as m


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return cv2.resize(data.astronaut(), (192, 192), interpolation=cv2.INTER_AREA)


def test_psnr_known_value_and_identical_frames():
    a = np.full((2, 16, 16, 3), 100, np.uint8)
    assert m.psnr(a, a + 5) == pytest.approx(10 * np.log10(255**2 / 25))
    assert m.psnr(a, a) == m.PSNR_CAP


def test_ssim_term_matches_scikit_image(astronaut):
    gray = m.luma(astronaut[None])[0].astype(np.float64)
    noisy = gray + np.random.default_rng(0).normal(0, 12, gray.shape)
    ours = float(np.mean(m._ssim_maps(gray, noisy)[0]))
    ref = structural_similarity(gray, noisy, data_range=255, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False)
    assert ours == pytest.approx(ref, abs=2e-3)


def test_ms_ssim_identical_is_one_and_drops_with_blur(astronaut):
    clip = astronaut[None]
    blurred = cv2.GaussianBlur(astronaut, (0, 0), 2)[None]
    assert m.ms_ssim(clip, clip) == pytest.approx(1.0)
    assert 0.5 < m.ms_ssim(clip, blurred) < 0.99


def test_rgb_ms_ssim_matches_pytorch_msssim(astronaut):
    torch = pytest.importorskip("torch")
    pytorch_msssim = pytest.importorskip("pytorch_msssim")
    rng = np.random.default_rng(0)
    clip = np.stack([astronaut, np.roll(astronaut, 5, axis=1)])
    noisy = np.clip(clip + rng.normal(0, 15, clip.shape), 0, 255).astype(np.uint8)
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 2.5) for f in clip])
    for decoded in (noisy, blurred):
        theirs = pytorch_msssim.ms_ssim(
            torch.from_numpy(clip).permute(0, 3, 1, 2).double(), torch.from_numpy(decoded).permute(0, 3, 1, 2).double(),
            data_range=255, size_average=True,
        ).item()
        assert m.ms_ssim_rgb(clip, decoded) == pytest.approx(theirs, abs=2e-3)
    assert m.ms_ssim_rgb(clip, noisy) != pytest.approx(m.ms_ssim(clip, noisy), abs=1e-3)  # not luma


def test_region_ms_ssim_scores_only_the_region(astronaut):
    clip = astronaut[None]
    damaged = clip.copy()
    damaged[0, :, 96:] = 128  # the right half flattened
    left = np.zeros((1, 192, 192), bool)
    left[0, 20:170, 10:80] = True
    assert m.ms_ssim_rgb(clip, damaged, left) > 0.97
    assert m.ms_ssim_rgb(clip, damaged, ~left) < m.ms_ssim_rgb(clip, damaged) < 0.9
    assert m.ms_ssim_rgb(clip, damaged, np.zeros_like(left)) is None


def test_metrics_of_the_bench_extra_report_missing_packages(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # as in the plain install
    assert m.missing_packages("vmaf") == "torch"
    assert m.missing_packages("psnr") is None


def test_vmaf_high_for_identical_and_low_for_blur(astronaut):
    clip = np.stack([astronaut, np.roll(astronaut, 2, axis=1)])
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 4) for f in clip])
    same = m.vmaf(clip, clip)
    assert 97 <= same <= 100
    assert m.vmaf(clip, blurred) < same - 30


def test_niqe_known_value_and_blur_is_less_natural():
    gray = cv2.cvtColor(cv2.resize(data.astronaut(), (384, 384)), cv2.COLOR_RGB2GRAY).astype(np.float64)
    # 11.8934 is what scikit-video's own niqe() gives on this image (run with SciPy's removed
    # imresize replaced by PIL's bicubic resize).
    assert m.niqe_frame(gray) == pytest.approx(11.8934, abs=0.01)
    assert m.niqe_frame(cv2.GaussianBlur(gray, (0, 0), 3)) > m.niqe_frame(gray) + 5


def test_niqe_needs_two_patches():
    assert m.niqe(np.zeros((1, 64, 64, 3), np.uint8)) is None
