"""Encoder side: fit the scene geometry that makes the intra frame warp best onto the GoP.

Background points of frame 0 are tracked through the GoP (pyramidal Lucas-Kanade, chained frame
to frame with a forward-backward check). Given the poses, each track constrains the inverse depth
at its frame-0 position linearly (the projection is a ratio of two functions linear in rho), so
a grid of any size is a (robustly reweighted, smoothed) linear least-squares fit. Candidate grids
(at infinity, constant, plane, full grid) are then compared by the photometric warp error of
frame 0 against the real frames, the decoder's own test."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from cpsgd.geometry.model import SceneGeometry, grid_corners, relative_poses, unproject
from cpsgd.poses.trajectory import Trajectory

F16_MAX = 60000.0


@dataclass(frozen=True)
class GeometryFitConfig:
    grid: tuple[int, int] = (8, 8)  # rows, cols of the finest candidate (one byte per cell)
    work_size: int = 256  # tracking and photometric checks run at about this size
    max_points: int = 600
    smoothness: float = 0.3  # weight of neighbour differences against the data
    eval_frames: int = 6  # frames used by the photometric comparison of candidates
    simpler_margin: float = 0.01  # a simpler candidate wins when within this relative error


def _gray(frames: np.ndarray, scale: float) -> list[np.ndarray]:
    h, w = frames.shape[1:3]
    size = (max(16, round(w * scale)), max(16, round(h * scale)))
    return [
        cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA) for f in frames
    ]


def _background(masks: np.ndarray | None, n: int, size: tuple[int, int], radius: int = 3) -> list[np.ndarray]:
    """Per frame, uint8 background masks at work size (foreground dilated away)."""
    if masks is None:
        return [np.full(size[::-1], 255, np.uint8)] * n
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    out = []
    for m in masks:
        fg = cv2.resize((m > 0).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        out.append(np.where(cv2.dilate(fg, kernel) > 0, 0, 255).astype(np.uint8))
    return out


def track_background(
    gray: list[np.ndarray], bg: list[np.ndarray], max_points: int
) -> tuple[np.ndarray, np.ndarray]:
    """Tracks of frame-0 corners: positions (N, P, 2) in work pixels, alive flags (N, P)."""
    pts = cv2.goodFeaturesToTrack(gray[0], max_points, 0.005, 5, mask=bg[0], blockSize=5)
    n = len(gray)
    if pts is None:
        return np.zeros((n, 0, 2), np.float32), np.zeros((n, 0), bool)
    pts = pts.reshape(-1, 2).astype(np.float32)
    tracks = np.zeros((n, len(pts), 2), np.float32)
    alive = np.zeros((n, len(pts)), bool)
    tracks[0], alive[0] = pts, True
    lk = dict(
        winSize=(21, 21), maxLevel=3, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)
    )
    h, w = gray[0].shape
    for i in range(1, n):
        prev = tracks[i - 1]
        nxt, st, _ = cv2.calcOpticalFlowPyrLK(gray[i - 1], gray[i], prev, None, **lk)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(gray[i], gray[i - 1], nxt, None, **lk)
        ok = alive[i - 1] & (st[:, 0] == 1) & (st2[:, 0] == 1) & (np.linalg.norm(back - prev, axis=1) < 0.5)
        inside = (nxt[:, 0] >= 0) & (nxt[:, 0] < w) & (nxt[:, 1] >= 0) & (nxt[:, 1] < h)
        ok &= inside
        xi = np.clip(nxt[:, 0].astype(int), 0, w - 1)
        yi = np.clip(nxt[:, 1].astype(int), 0, h - 1)
        ok &= bg[i][yi, xi] > 0
        tracks[i] = np.where(ok[:, None], nxt, prev)
        alive[i] = ok
    return tracks, alive


def _equations(tracks: np.ndarray, alive: np.ndarray, poses: np.ndarray, k: np.ndarray, scale: float):
    """Per observation: frame-0 point (full-res continuous), c (2,) and d (2,) with c * rho = d."""
    k_inv = np.linalg.inv(k)
    p0s, cs, ds = [], [], []
    p0 = (tracks[0].astype(np.float64) + 0.5) / scale
    for i in range(1, len(poses)):
        sel = alive[i]
        if not sel.any() or not np.any(poses[i][:3, 3]):
            continue
        pi = (tracks[i][sel].astype(np.float64) + 0.5) / scale
        a = np.c_[p0[sel], np.ones(sel.sum())] @ (k @ poses[i][:3, :3] @ k_inv).T
        b = k @ poses[i][:3, 3]
        cs.append(pi * b[2] - b[:2])
        ds.append(a[:, :2] - pi * a[:, 2:3])
        p0s.append(p0[sel])
    if not cs:
        return None
    return np.concatenate(p0s), np.concatenate(cs), np.concatenate(ds)


def _smoothness_rows(gh: int, gw: int) -> np.ndarray:
    rows = []
    for r in range(gh):
        for c in range(gw):
            for dr, dc in ((0, 1), (1, 0)):
                if r + dr < gh and c + dc < gw:
                    row = np.zeros(gh * gw)
                    row[r * gw + c], row[(r + dr) * gw + c + dc] = 1.0, -1.0
                    rows.append(row)
    return np.array(rows).reshape(-1, gh * gw)


def solve_grid(
    eqs: tuple[np.ndarray, np.ndarray, np.ndarray],
    shape: tuple[int, int],
    width: int,
    height: int,
    smoothness: float,
) -> np.ndarray:
    """Robust least squares for the grid values from the linear constraints c * rho(p0) = d."""
    p0, c, d = eqs
    index, weight = grid_corners(shape, p0[:, 0], p0[:, 1], width, height)
    cells = shape[0] * shape[1]
    basis = np.zeros((len(p0), cells))
    np.add.at(basis, (np.arange(len(p0))[:, None], index), weight)
    a = np.concatenate([basis * c[:, :1], basis * c[:, 1:]])
    b = np.concatenate([d[:, 0], d[:, 1]])
    smooth = _smoothness_rows(*shape)
    scale = np.median(np.abs(c)) * np.sqrt(len(p0) / cells) * smoothness
    prior = smooth.T @ smooth * scale**2 + np.eye(cells) * 1e-9 * scale**2
    w = np.ones(len(b))
    for _ in range(4):  # iteratively reweighted least squares with a Huber loss (1 pixel)
        aw = a * w[:, None]
        g = np.linalg.solve(aw.T @ a + prior, aw.T @ b)
        r = np.abs(a @ g - b)
        w = np.where(r < 1.0, 1.0, 1.0 / np.maximum(r, 1e-9))
    return np.clip(g, -F16_MAX, F16_MAX).reshape(shape)


def warp_error(
    geometry: SceneGeometry,
    gray: list[np.ndarray],
    bg: list[np.ndarray],
    poses: np.ndarray,
    k: np.ndarray,
    frames: list[int],
    scale: float,
    width: int,
    height: int,
) -> float:
    """Mean absolute error of frame 0 warped onto the given frames, over background seen by both."""
    h, w = gray[0].shape
    xs, ys = np.meshgrid((np.arange(w) + 0.5) / scale, (np.arange(h) + 0.5) / scale)
    total, count = 0.0, 0
    for i in frames:
        sx, sy, ok = unproject(geometry, poses[i], k, xs, ys, width, height)
        mx = (sx * scale - 0.5).astype(np.float32)
        my = (sy * scale - 0.5).astype(np.float32)
        warped = cv2.remap(gray[0], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        seen = cv2.remap(bg[0], mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        valid = ok & (seen > 0) & (bg[i] > 0)
        total += float(np.abs(warped.astype(np.float32) - gray[i])[valid].sum())
        count += int(valid.sum())
    return total / max(count, 1)


def fit_geometry(
    frames: np.ndarray,
    trajectory: Trajectory | None,
    masks: np.ndarray | None = None,
    config: GeometryFitConfig | None = None,
) -> SceneGeometry:
    """The geometry (no layout) that best warps frame 0 onto ``frames`` under ``trajectory``
    (use the decoded trajectory and masks, which are what the decoder will have)."""
    cfg = config or GeometryFitConfig()
    n, height, width = frames.shape[:3]
    if trajectory is None or n < 2:
        return SceneGeometry.at_infinity()
    poses = relative_poses(trajectory, n)
    if not np.any(np.abs(poses[:, :3, 3]) > 1e-9):
        return SceneGeometry.at_infinity()  # pure rotation: depth does not matter
    k = trajectory.intrinsics.matrix(width, height)
    scale = min(1.0, cfg.work_size / max(height, width))
    gray = _gray(frames, scale)
    size = gray[0].shape[::-1]
    bg = _background(masks, n, size)
    eqs = _equations(*track_background(gray, bg, cfg.max_points), poses, k, scale)
    candidates = [SceneGeometry.at_infinity()]
    if eqs is not None and len(eqs[0]) >= 8:
        for shape in dict.fromkeys(((1, 1), (2, 2), (4, 4), cfg.grid)):  # simplest first
            candidates.append(SceneGeometry(solve_grid(eqs, shape, width, height, cfg.smoothness)))
    # the photometric comparison runs at half the tracking size: it ranks, it does not measure
    half = 0.5 * scale
    gray_small = [cv2.resize(g, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA) for g in gray]
    bg_small = [cv2.resize(b, gray_small[0].shape[::-1], interpolation=cv2.INTER_NEAREST) for b in bg]
    picks = np.unique(np.linspace(1, n - 1, min(cfg.eval_frames, n - 1)).round().astype(int))
    best, best_err = candidates[0], np.inf
    for cand in candidates:  # ordered simplest first
        err = warp_error(cand, gray_small, bg_small, poses, k, list(picks), half, width, height)
        if err < best_err * (1 - cfg.simpler_margin):
            best, best_err = cand, err
    return best
