"""Fréchet Video Distance (Unterthiner et al., 2018) between source and decoded clips.

Features: the 400 Kinetics logits of an I3D (``cpsgd.bench.i3d``) loaded from a local weight file,
as in the reference FVD. Preprocessing as FVD's: frames resized to 224x224 (bilinear, no crop,
no antialiasing) and scaled to [-1, 1]; one 16-frame clip per sequence, the centred window of the
coded frames (frames 4-19 of the paper's 25-frame clips, which leaves out the intra-coded first
frame: the window judges what the generator made).

FVD compares distributions, so it is computed across sequences: at a (codec, target BPP) every
sequence contributes one decoded clip (its point nearest the target, see ``fvd_table``) and its
source clip, and the two sets are fitted with Gaussians. With a handful of sequences this is
statistically weak: n clips give covariances of rank at most n - 1, far below the 400 feature
dimensions, and the estimate carries a large small-sample bias (positive even between two sets
drawn from one distribution). The distance stays well defined for singular covariances; it is
computed exactly in the span of the centred features and the mean difference (at most 2n - 1
dimensions; both Gaussians agree outside it), where the matrix square root is of a small matrix,
instead of adding a regulariser to 400x400 ones.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import scipy.linalg

from cpsgd.bench.hull import rd_hull
from cpsgd.bench.metrics import LOWER_IS_BETTER

# FVD's clip: 16 frames at 224x224, for which I3D's final pool leaves one position.
CLIP_FRAMES = 16
I3D_SIZE = 224
# A sequence counts at a target when a point within this factor of the target's rate exists.
RATE_TOLERANCE = 1.25
# Reference metrics, in order of preference, whose per-sequence hulls choose the points.
REFERENCE_METRICS = ("vmaf", "psnr")


def clip_window(frames: np.ndarray) -> np.ndarray:
    """The centred ``CLIP_FRAMES``-frame window of (N, H, W, 3) frames, N >= 16."""
    start = (len(frames) - CLIP_FRAMES) // 2
    return frames[start : start + CLIP_FRAMES]


def i3d_input(frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (1, 3, 16, 224, 224) float32 in [-1, 1], FVD's preprocessing."""
    resized = np.stack([cv2.resize(f, (I3D_SIZE, I3D_SIZE), interpolation=cv2.INTER_LINEAR)
                        for f in clip_window(frames)])
    x = resized.astype(np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2)[None])


@lru_cache(maxsize=2)
def _i3d_net(path: Path, device: str):
    from cpsgd.bench.i3d import load_i3d

    return load_i3d(path).to(device)


def i3d_logits(net, frames: np.ndarray, device: str = "cpu") -> np.ndarray:
    """(classes,) float64 I3D logits of the centred 16-frame window of ``frames``."""
    import torch

    with torch.no_grad():
        out = net(torch.from_numpy(i3d_input(frames)).to(device))
    return out[0].double().cpu().numpy()


def clip_features(path: Path, frames: np.ndarray, device: str = "cpu") -> list[float]:
    """The I3D logits of a clip from the weights at ``path``, rounded for the results file."""
    return [float(f"{v:.6g}") for v in i3d_logits(_i3d_net(path, device), frames, device)]


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, cov1) and N(mu2, cov2):
    |mu1 - mu2|^2 + tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2))."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    cov1, cov2 = np.atleast_2d(cov1), np.atleast_2d(cov2)
    root = scipy.linalg.sqrtm(cov1 @ cov2)
    if not np.isfinite(root).all():
        # sqrtm can fail on a (near-)singular product: shift both covariances off singularity.
        offset = eps * np.eye(len(cov1))
        root = scipy.linalg.sqrtm((cov1 + offset) @ (cov2 + offset))
    # The product has real non-negative eigenvalues; an imaginary part is rounding error.
    trace_root = float(np.real(np.trace(root)))
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_root)
    return max(value, 0.0)


def fvd(source: np.ndarray, decoded: np.ndarray) -> float:
    """FVD between two sets of clip features, (n, D) and (m, D), n, m >= 2: Gaussian fits with
    sample covariances, compared in the span of the centred features and of the mean difference,
    outside which both fits agree (so the result is the full-dimensional distance)."""
    source, decoded = np.asarray(source, dtype=np.float64), np.asarray(decoded, dtype=np.float64)
    if len(source) < 2 or len(decoded) < 2:
        raise ValueError("FVD needs at least two clips in each set")
    mu1, mu2 = source.mean(0), decoded.mean(0)
    spanning = np.concatenate([source - mu1, decoded - mu2, (mu1 - mu2)[None]])
    _, s, vt = np.linalg.svd(spanning, full_matrices=False)
    basis = vt[s > s[0] * 1e-12] if s[0] > 0 else vt[:1]
    a, b = source @ basis.T, decoded @ basis.T
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


@dataclass
class FvdCell:
    value: float | None
    clips: int  # sequences pooled (decoded clips and as many source clips)
    total: int  # sequences with FVD features for this codec
    bpp: float | None  # mean rate of the pooled points

    def text(self) -> str:
        if self.clips == 0:
            return "unreachable"
        if self.value is None:
            return f"needs 2 clips ({self.clips}/{self.total})"
        return f"{self.value:.5g} @ {self.bpp:.5f} ({self.clips}/{self.total})"


def reference_metric(rows: list[dict]) -> str | None:
    """The metric whose hulls pick FVD's points: VMAF, else PSNR, else none (all points)."""
    for name in REFERENCE_METRICS:
        if any(r["metrics"].get(name) is not None for r in rows):
            return name
    return None


def _candidates(rows: list[dict], metric: str | None) -> list[dict]:
    """The rows of one (sequence, codec) on its ``metric`` hull (all of them without a metric)."""
    if metric is None:
        return rows
    scored = [r for r in rows if r["metrics"].get(metric) is not None]
    hull = set(rd_hull(((r["bpp"], r["metrics"][metric]) for r in scored), metric not in LOWER_IS_BETTER))
    return [r for r in scored if (r["bpp"], r["metrics"][metric]) in hull]


def fvd_table(rows: list[dict], targets: tuple[float, ...]) -> dict[str, list[FvdCell]]:
    """codec -> one cell per target. Per sequence, the point used at a target is the one nearest
    it in log-BPP among the codec's points on that sequence's reference-metric hull, if within
    ``RATE_TOLERANCE``; the FVD pools those decoded clips against the same sequences' sources."""
    metric = reference_metric(rows)
    groups: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get("fvd_features"):
            groups[r["codec"]][r["sequence"]].append(r)
    table = {}
    for codec, by_seq in groups.items():
        cands = {seq: _candidates(seq_rows, metric) for seq, seq_rows in by_seq.items()}
        cells = []
        for target in targets:
            chosen = []
            for seq_rows in cands.values():
                near = min(seq_rows, key=lambda r: abs(math.log(r["bpp"] / target)), default=None)
                if near is not None and abs(math.log(near["bpp"] / target)) <= math.log(RATE_TOLERANCE):
                    chosen.append(near)
            value = None
            if len(chosen) >= 2:
                value = fvd(np.array([r["fvd_features"]["source"] for r in chosen]),
                            np.array([r["fvd_features"]["decoded"] for r in chosen]))
            bpp = float(np.mean([r["bpp"] for r in chosen])) if chosen else None
            cells.append(FvdCell(value, len(chosen), len(by_seq), bpp))
        table[codec] = cells
    return table


def fvd_explanation(rows: list[dict]) -> str:
    """How the FVD table was made, for the summary and the HTML report."""
    metric = reference_metric(rows)
    chooser = f"the codec's points on that sequence's {metric} hull" if metric else "the codec's points"
    dims = next(len(r["fvd_features"]["source"]) for r in rows if r.get("fvd_features"))
    return (
        f"FVD: I3D class logits ({dims}) of the centred {CLIP_FRAMES}-frame window, frames resized to "
        f"{I3D_SIZE}x{I3D_SIZE} and scaled to [-1, 1]; Fréchet distance between Gaussian fits of the "
        "source clips and the decoded clips across sequences. At each target every sequence "
        f"contributes its point nearest the target in log-BPP among {chooser}, if within a factor "
        f"{RATE_TOLERANCE:g} of it; cells read 'FVD @ mean BPP of those points (clips/sequences)'. "
        "Lower is better. Statistically weak with few sequences: n clips give covariances of rank at "
        f"most n - 1 (of {dims} dimensions), the estimate is biased upwards and noisy, so compare "
        "codecs only over the same clips and treat small differences as noise."
    )
