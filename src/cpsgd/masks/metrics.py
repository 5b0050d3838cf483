"""DAVIS mask metrics: region similarity J (IoU) and contour accuracy F (boundary F-measure).

Both follow the DAVIS-2016 definitions: an empty prediction of an empty mask scores 1, and F
matches boundary pixels within a tolerance of 0.8 % of the image diagonal.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class MaskScores:
    j: np.ndarray  # (N,) per-frame region similarity
    f: np.ndarray  # (N,) per-frame contour accuracy

    @property
    def j_mean(self) -> float:
        return float(self.j.mean())

    @property
    def f_mean(self) -> float:
        return float(self.f.mean())


def region_similarity(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-frame IoU of two (N, H, W) (or (H, W)) masks; nonzero = foreground."""
    pred, truth = _as_stack(pred), _as_stack(truth)
    inter = np.logical_and(pred, truth).sum(axis=(1, 2))
    union = np.logical_or(pred, truth).sum(axis=(1, 2))
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))


def _boundary(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundary: foreground pixels with a background 4-neighbour (image edge counts)."""
    eroded = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return (mask > 0) & (eroded == 0)


def contour_accuracy(pred: np.ndarray, truth: np.ndarray, bound_th: float = 0.008) -> np.ndarray:
    """Per-frame boundary F-measure with a match tolerance of ``bound_th`` x image diagonal."""
    pred, truth = _as_stack(pred), _as_stack(truth)
    h, w = pred.shape[1:]
    radius = max(1, int(np.ceil(bound_th * np.hypot(h, w))))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    scores = np.empty(len(pred))
    for i, (p, t) in enumerate(zip(pred, truth)):
        bp, bt = _boundary(p), _boundary(t)
        n_p, n_t = int(bp.sum()), int(bt.sum())
        if n_p == 0 and n_t == 0:
            scores[i] = 1.0
            continue
        if n_p == 0 or n_t == 0:
            scores[i] = 0.0
            continue
        near_t = cv2.dilate(bt.astype(np.uint8), disk) > 0
        near_p = cv2.dilate(bp.astype(np.uint8), disk) > 0
        precision = (bp & near_t).sum() / n_p
        recall = (bt & near_p).sum() / n_t
        scores[i] = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return scores


def score_masks(pred: np.ndarray, truth: np.ndarray) -> MaskScores:
    """J and F per frame for binary foreground (any nonzero label counts as foreground)."""
    return MaskScores(region_similarity(pred, truth), contour_accuracy(pred, truth))


def _as_stack(masks: np.ndarray) -> np.ndarray:
    masks = np.asarray(masks) > 0
    return masks[None] if masks.ndim == 2 else masks
