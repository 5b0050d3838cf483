"""Metrics against known values."""

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
    ours, _ = m._ssim_maps(gray, noisy)
    ref = structural_similarity(gray, noisy, data_range=255, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False)
    assert ours == pytest.approx(ref, abs=2e-3)


def test_ms_ssim_identical_is_one_and_drops_with_blur(astronaut):
    clip = astronaut[None]
    blurred = cv2.GaussianBlur(astronaut, (0, 0), 2)[None]
    assert m.ms_ssim(clip, clip) == pytest.approx(1.0)
    assert 0.5 < m.ms_ssim(clip, blurred) < 0.99


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
