"""The default pose estimator ("flow"): tracked features and a small bundle adjustment, CPU only.

1. Shi-Tomasi corners tracked frame to frame with pyramidal Lucas-Kanade (forward-backward
   checked, re-detected as tracks are lost), on a copy at most ``work_size`` pixels wide; corners on
   the (dilated) foreground masks are never used. Each consecutive frame pair is checked with a
   RANSAC fundamental matrix and the outlying tracks are cut there.
2. Static camera: when the dominant background motion (the inliers of a RANSAC similarity between
   frame 0 and each frame, tracked directly) stays under ``static_px``, all poses are identities.
3. Rotation-only model (every point at infinity): one shared focal length and a rotation per frame,
   by robust (soft L1) least squares on the reprojection errors. A pan ends here when it already
   fits to ``rotation_only_px``.
4. Full model: the same plus a translation per frame and an inverse depth per track (anchored in the
   frame where the track starts), so that one scale holds across the whole GoP (the median inverse
   depth is set to 1 afterwards). Its start is the best-fitting of: the rotation model with no
   translation, or an essential matrix (RANSAC) between frame 0 and the frame with most parallax,
   triangulation and PnP for every frame, at several focal lengths (the prior, the focal whose
   essential matrix fits the fundamental matrix best, the rotation model's, a ladder). Tracks that
   still do not fit (moving things the masks missed) are dropped and the model refitted.
5. Degenerate cases by model selection: the full model is kept only when it fits clearly better
   than rotation alone and its translation is not negligible (pure rotation otherwise). A zoom of a
   fixed camera comes out as a forward motion (the trajectory has one focal length per GoP).

The focal length is a free parameter with a weak prior (``prior_fov_deg``) that decides where the
tracks cannot (static camera; pure forward motion, where it is unobservable). The principal point
is the image centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import lil_matrix
from scipy.spatial.transform import Rotation
from threadpoolctl import threadpool_limits

from cpsgd.errors import InputError
from cpsgd.poses.base import POSE_ESTIMATORS, PoseEstimator
from cpsgd.poses.trajectory import Intrinsics, Trajectory

_LK_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)


@dataclass(frozen=True)
class FlowConfig:
    work_size: int = 320  # track on frames at most this wide (pixels)
    max_corners: int = 160
    min_distance: int = 8  # between corners, working pixels
    mask_dilation: int = 7  # grow the foreground masks by this many working pixels
    static_px: float = 1.5  # background moving less than this (input pixels) over the GoP: static
    ransac_px: float = 1.0
    prior_fov_deg: float = 60.0  # horizontal field of view assumed when the tracks cannot tell
    prior_weight: float = 10.0  # pixels of residual per unit of log focal away from the prior
    loss_scale_px: float = 1.0  # robust (soft L1) loss threshold
    outlier_px: float = 2.0  # tracks whose median residual is above this are refitted without
    full_model_gain: float = 0.8  # the full model must bring the residual under this x rotation-only's
    start_gain: float = 0.7  # a later start candidate must fit the tracks this much better
    min_translation: float = 0.002  # relative to the median scene depth; less is a pure rotation
    rotation_only_px: float = 0.1  # rotation alone explains the tracks this well: a pan, no translation


@dataclass
class _Tracks:
    """Observations of feature tracks at working resolution."""

    track: np.ndarray  # (M,) track index of each observation
    frame: np.ndarray  # (M,) frame index
    xy: np.ndarray  # (M, 2) pixel position
    anchor_frame: np.ndarray  # (T,) first frame of each track
    anchor_xy: np.ndarray  # (T, 2)


def _to_gray(frames: np.ndarray, size: tuple[int, int]) -> list[np.ndarray]:
    out = []
    for frame in frames:
        gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
        out.append(cv2.resize(gray, size, interpolation=cv2.INTER_AREA) if gray.shape[::-1] != size else gray)
    return out


def _background(masks: np.ndarray | None, index: int, size: tuple[int, int], dilation: int) -> np.ndarray:
    """uint8 mask of where corners may be: 255 on the background."""
    if masks is None:
        return np.full(size[::-1], 255, np.uint8)
    fg = cv2.resize((masks[index] > 0).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    if dilation:
        fg = cv2.dilate(fg, np.ones((2 * dilation + 1, 2 * dilation + 1), np.uint8))
    return np.where(fg > 0, 0, 255).astype(np.uint8)


def track_features(gray: list[np.ndarray], masks: np.ndarray | None, config: FlowConfig) -> _Tracks:
    size = gray[0].shape[::-1]
    lk = {"winSize": (21, 21), "maxLevel": 3, "criteria": _LK_CRITERIA}
    rows: list[tuple[int, int, float, float]] = []
    anchors: list[tuple[int, float, float]] = []
    ids = np.zeros(0, dtype=int)
    points = np.zeros((0, 2), np.float32)

    def detect(frame: int, existing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        allowed = _background(masks, frame, size, config.mask_dilation)
        for x, y in existing:
            cv2.circle(allowed, (int(x), int(y)), config.min_distance, 0, -1)
        need = config.max_corners - len(existing)
        found = cv2.goodFeaturesToTrack(gray[frame], need, 0.01, config.min_distance, mask=allowed, blockSize=7)
        found = np.zeros((0, 2), np.float32) if found is None else found.reshape(-1, 2)
        new_ids = np.arange(len(anchors), len(anchors) + len(found))
        anchors.extend((frame, float(x), float(y)) for x, y in found)
        return new_ids, found

    for k in range(len(gray)):
        if k > 0 and len(points):
            nxt, ok, _ = cv2.calcOpticalFlowPyrLK(gray[k - 1], gray[k], points, None, **lk)
            back, ok_back, _ = cv2.calcOpticalFlowPyrLK(gray[k], gray[k - 1], nxt, None, **lk)
            good = (ok[:, 0] == 1) & (ok_back[:, 0] == 1) & (np.linalg.norm(back - points, axis=1) < 0.7)
            inside = (nxt[:, 0] >= 0) & (nxt[:, 1] >= 0) & (nxt[:, 0] < size[0] - 1) & (nxt[:, 1] < size[1] - 1)
            good &= inside
            if masks is not None:
                allowed = _background(masks, k, size, config.mask_dilation)
                xi = np.clip(nxt[:, 0].astype(int), 0, size[0] - 1)
                yi = np.clip(nxt[:, 1].astype(int), 0, size[1] - 1)
                good &= allowed[yi, xi] > 0
            if good.sum() >= 12:
                _, inl = cv2.findFundamentalMat(points[good], nxt[good], cv2.FM_RANSAC, config.ransac_px, 0.999)
                if inl is not None:
                    keep = np.flatnonzero(good)[inl[:, 0] == 0]
                    good[keep] = False
            ids, points = ids[good], nxt[good]
            rows.extend((int(i), k, float(x), float(y)) for i, (x, y) in zip(ids, points))
        if len(points) < 0.7 * config.max_corners:
            new_ids, found = detect(k, points)
            ids = np.concatenate([ids, new_ids])
            points = np.vstack([points, found]).astype(np.float32)
    table = np.array(rows, dtype=np.float64).reshape(-1, 4)
    anchor = np.array(anchors, dtype=np.float64).reshape(-1, 3)
    return _Tracks(table[:, 0].astype(int), table[:, 1].astype(int), table[:, 2:4], anchor[:, 0].astype(int), anchor[:, 1:3])


class _Model:
    """Reprojection residuals of the rotation-only (``full=False``) or full model, in working pixels."""

    def __init__(self, tracks: _Tracks, num_frames: int, size: tuple[int, int], config: FlowConfig, full: bool):
        self.tracks, self.n, self.full, self.config = tracks, num_frames, full, config
        self.width, self.height = size
        self.log_f0 = np.log(0.5 / np.tan(np.radians(config.prior_fov_deg) / 2))
        self.num_tracks = len(tracks.anchor_frame)
        self.anchor = tracks.anchor_frame[tracks.track]

    def pack(self, focal_norm: float, rot: np.ndarray, trans: np.ndarray, rho: np.ndarray) -> np.ndarray:
        parts = [[np.log(focal_norm)], rot[1:].ravel()]
        if self.full:
            parts += [trans[1:].ravel(), rho]
        return np.concatenate(parts)

    def unpack(self, p: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        m = self.n - 1
        focal = np.exp(p[0]) * self.width
        rot = np.vstack([np.zeros(3), p[1 : 1 + 3 * m].reshape(m, 3)])
        if not self.full:
            return focal, rot, np.zeros((self.n, 3)), np.zeros(self.num_tracks)
        trans = np.vstack([np.zeros(3), p[1 + 3 * m : 1 + 6 * m].reshape(m, 3)])
        return focal, rot, trans, p[1 + 6 * m :]

    def residuals(self, p: np.ndarray) -> np.ndarray:
        focal, rot, trans, rho = self.unpack(p)
        t = self.tracks
        rmat = Rotation.from_rotvec(rot).as_matrix()
        centre = np.array([self.width / 2, self.height / 2])
        rho_obs = rho[t.track][:, None]
        bearing = np.column_stack([(t.anchor_xy[t.track] - centre) / focal, np.ones(len(t.track))])
        # World point (first camera's frame) times rho: R_a^T (b - rho t_a); then into camera k.
        v = bearing - rho_obs * trans[self.anchor]
        world = (rmat[self.anchor] * v[:, :, None]).sum(axis=1)
        point = (rmat[t.frame] * world[:, None, :]).sum(axis=2) + rho_obs * trans[t.frame]
        z = np.maximum(point[:, 2], 1e-3)
        projected = focal * point[:, :2] / z[:, None] + centre
        prior = self.config.prior_weight * (p[0] - self.log_f0)
        return np.concatenate([(projected - t.xy).ravel(), [prior]])

    def sparsity(self) -> lil_matrix:
        t, m = self.tracks, self.n - 1
        size = 1 + (6 * m + self.num_tracks if self.full else 3 * m)
        rows = 2 * len(t.frame) + 1
        jac = lil_matrix((rows, size), dtype=np.int8)
        jac[:, 0] = 1
        obs = np.arange(len(t.frame))
        for frames in (t.frame, self.anchor):
            moving = frames > 0
            for c in range(3):
                for r in (0, 1):
                    jac[2 * obs[moving] + r, 1 + 3 * (frames[moving] - 1) + c] = 1
                    if self.full:
                        jac[2 * obs[moving] + r, 1 + 3 * m + 3 * (frames[moving] - 1) + c] = 1
        if self.full:
            for r in (0, 1):
                jac[2 * obs + r, 1 + 6 * m + t.track] = 1
        return jac

    def solve(self, p0: np.ndarray, max_nfev: int) -> tuple[np.ndarray, float]:
        """Robust least squares from p0; returns the parameters and the median residual (pixels)."""
        # The solver's many small BLAS calls only lose time to thread hand-offs (badly so on a busy
        # machine): one thread.
        with threadpool_limits(1):
            fit = least_squares(
                self.residuals, p0, jac_sparsity=self.sparsity(), loss="soft_l1",
                f_scale=self.config.loss_scale_px, x_scale="jac", max_nfev=max_nfev, method="trf",
            )
        return fit.x, float(np.median(self.track_errors(fit.x)))

    def track_errors(self, p: np.ndarray) -> np.ndarray:
        """Median reprojection error of each track (0 for tracks seen only where they start)."""
        err = np.linalg.norm(self.residuals(p)[:-1].reshape(-1, 2), axis=1)
        order = np.argsort(self.tracks.track, kind="stable")
        starts = np.searchsorted(self.tracks.track[order], np.arange(self.num_tracks))
        out = np.zeros(self.num_tracks)
        for j, (a, b) in enumerate(zip(starts, np.append(starts[1:], len(order)))):
            if b > a:
                out[j] = np.median(err[order[a:b]])
        return out

    def without_outliers(self, p: np.ndarray) -> tuple[_Model, np.ndarray] | None:
        """The same model and parameters without the tracks that do not fit (independently moving
        objects the masks missed); None when every track fits."""
        keep = self.track_errors(p) <= self.config.outlier_px
        if keep.all() or keep.sum() < 8:
            return None
        t = self.tracks
        new_index = np.cumsum(keep) - 1
        rows = keep[t.track]
        tracks = _Tracks(new_index[t.track[rows]], t.frame[rows], t.xy[rows], t.anchor_frame[keep], t.anchor_xy[keep])
        model = _Model(tracks, self.n, (self.width, self.height), self.config, self.full)
        focal, rot, trans, rho = self.unpack(p)
        return model, model.pack(focal / self.width, rot, trans, rho[keep] if self.full else None)


def _positions(tracks: _Tracks, num_frames: int) -> np.ndarray:
    """(tracks, frames, 2) positions, NaN where a track is not seen."""
    pos = np.full((len(tracks.anchor_frame), num_frames, 2), np.nan)
    pos[tracks.track, tracks.frame] = tracks.xy
    pos[np.arange(len(tracks.anchor_frame)), tracks.anchor_frame] = tracks.anchor_xy
    return pos


def _reference_frame(pos: np.ndarray, min_shared: int = 30) -> int:
    """The frame seen with the most parallax from frame 0 among those sharing enough tracks with it."""
    best, best_motion = 1, -1.0
    for k in range(1, pos.shape[1]):
        shared = ~np.isnan(pos[:, 0, 0]) & ~np.isnan(pos[:, k, 0])
        if shared.sum() < min_shared and k > 1:
            break
        motion = float(np.median(np.linalg.norm(pos[shared, k] - pos[shared, 0], axis=1))) if shared.any() else 0.0
        if motion > best_motion:
            best, best_motion = k, motion
    return best


def _focal_from_fundamental(f_mat: np.ndarray, size: tuple[int, int], candidates: np.ndarray, log_f0: float) -> float:
    """Normalised focal whose essential matrix K^T F K is closest to having two equal singular
    values (Mendonca-Cipolla), with a gentle pull towards the prior where the data cannot tell."""
    centre = np.array([size[0] / 2, size[1] / 2])
    costs = []
    for f in candidates:
        k = np.array([[f * size[0], 0, centre[0]], [0, f * size[0], centre[1]], [0, 0, 1]])
        sv = np.linalg.svd(k.T @ f_mat @ k, compute_uv=False)
        costs.append((sv[0] - sv[1]) / max(sv[0], 1e-12) + 0.02 * abs(np.log(f) - log_f0))
    return float(candidates[int(np.argmin(costs))])


def _two_view_start(
    pos: np.ndarray, tracks: _Tracks, reference: int, focal: float, size: tuple[int, int], config: FlowConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Rotations, translations and inverse depths from an essential matrix between frame 0 and the
    reference frame, triangulation, and PnP for every other frame. None when that fails."""
    n = pos.shape[1]
    k_mat = np.array([[focal, 0, size[0] / 2], [0, focal, size[1] / 2], [0, 0, 1]])
    shared = ~np.isnan(pos[:, 0, 0]) & ~np.isnan(pos[:, reference, 0])
    if shared.sum() < 12:
        return None
    p0, p1 = pos[shared, 0], pos[shared, reference]
    e_mat, inliers = cv2.findEssentialMat(p0, p1, k_mat, cv2.RANSAC, 0.999, config.ransac_px)
    if e_mat is None or e_mat.shape != (3, 3):
        return None
    _, r1, t1, good = cv2.recoverPose(e_mat, p0, p1, k_mat, mask=inliers.copy())
    good = good.ravel() > 0
    if good.sum() < 8:
        return None
    proj0 = k_mat @ np.eye(4)[:3]
    proj1 = k_mat @ np.hstack([r1, t1])
    hom = cv2.triangulatePoints(proj0, proj1, p0[good].T, p1[good].T)
    points = (hom[:3] / hom[3]).T
    ids = np.flatnonzero(shared)[good]
    in_front = points[:, 2] > 1e-6
    points, ids = points[in_front], ids[in_front]
    if len(ids) < 8:
        return None
    rot = np.zeros((n, 3))
    trans = np.zeros((n, 3))
    for k in range(1, n):
        seen = ~np.isnan(pos[ids, k, 0])
        if seen.sum() >= 6:
            ok, rvec, tvec, _ = cv2.solvePnPRansac(
                points[seen], pos[ids[seen], k], k_mat, None, reprojectionError=2.0, flags=cv2.SOLVEPNP_EPNP
            )
            if ok:
                rot[k], trans[k] = rvec.ravel(), tvec.ravel()
                continue
        rot[k], trans[k] = rot[k - 1], trans[k - 1]  # lost: hold the previous pose
    rho = np.full(len(tracks.anchor_frame), 1.0 / np.median(points[:, 2]))
    anchored0 = tracks.anchor_frame[ids] == 0
    rho[ids[anchored0]] = 1.0 / points[anchored0, 2]
    return rot, trans, rho


@POSE_ESTIMATORS.register("flow")
class FlowPoseEstimator(PoseEstimator):
    def __init__(self, config: FlowConfig | None = None) -> None:
        self.config = config or FlowConfig()

    def estimate(self, frames: np.ndarray, masks: np.ndarray | None = None) -> Trajectory:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
            raise InputError(f"frames must be (N, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
        if masks is not None and masks.shape != frames.shape[:3]:
            raise InputError(f"masks {masks.shape} do not match frames {frames.shape[:3]}")
        n, height, width = frames.shape[:3]
        config = self.config
        shrink = min(1.0, config.work_size / width)
        size = (max(16, round(width * shrink)), max(16, round(height * shrink)))
        f0 = 0.5 / np.tan(np.radians(config.prior_fov_deg) / 2)
        static = Trajectory.identity(n, Intrinsics(f0, f0 * width / height))
        if n == 1:
            return static
        gray = _to_gray(frames, size)
        if self._is_static(gray, masks, size[0] / width):
            return static
        tracks = track_features(gray, masks, config)
        if len(tracks.frame) < 8:
            return static

        focal_norm, rot, trans = self._fit(tracks, n, size)
        w2c = np.tile(np.eye(4), (n, 1, 1))
        w2c[:, :3, :3] = Rotation.from_rotvec(rot).as_matrix()
        w2c[:, :3, 3] = trans
        return Trajectory(Intrinsics(focal_norm, focal_norm * width / height), w2c)

    def _fit(self, tracks: _Tracks, n: int, size: tuple[int, int]) -> tuple[float, np.ndarray, np.ndarray]:
        """(normalised focal, rotation vectors, translations) of the model that explains the tracks."""
        config = self.config
        f0 = 0.5 / np.tan(np.radians(config.prior_fov_deg) / 2)
        rotation_model = _Model(tracks, n, size, config, full=False)
        p_rot, err_rot = rotation_model.solve(rotation_model.pack(f0, np.zeros((n, 3)), None, None), 30)
        focal, rot, trans, _ = rotation_model.unpack(p_rot)
        if err_rot <= config.rotation_only_px:
            return focal / size[0], rot, trans

        # Translation. Candidate starts: the rotations with every point at depth 1 and no
        # translation (good for small translations, where the essential matrix is ill-posed), and
        # two-view geometry at several focal lengths: the prior, the one whose essential matrix
        # fits the fundamental matrix best, the rotation model's, and a ladder around the prior. The start whose
        # tracks fit best goes on to the bundle adjustment (focal search before the local solver).
        full_model = _Model(tracks, n, size, config, full=True)
        p_start = full_model.pack(focal / size[0], rot, trans, np.ones(full_model.num_tracks))
        best_error = np.median(full_model.track_errors(p_start))
        pos = _positions(tracks, n)
        reference = _reference_frame(pos)
        candidates = [f0]
        shared = ~np.isnan(pos[:, 0, 0]) & ~np.isnan(pos[:, reference, 0])
        if shared.sum() >= 12:
            f_mat, _ = cv2.findFundamentalMat(pos[shared, 0], pos[shared, reference], cv2.FM_RANSAC, config.ransac_px, 0.999)
            if f_mat is not None and f_mat.shape == (3, 3):
                ladder = f0 * 2.0 ** np.linspace(-1.5, 1.5, 61)
                candidates.append(_focal_from_fundamental(f_mat, size, ladder, rotation_model.log_f0))
        candidates.append(focal / size[0])
        candidates.extend(f0 * 2.0 ** np.array([-1.0, -0.5, 0.5, 1.0, -0.25, 0.25]))
        for focal_norm in candidates:
            two_view = _two_view_start(pos, tracks, reference, focal_norm * size[0], size, config)
            if two_view is None:
                continue
            p_two_view = full_model.pack(focal_norm, *two_view)
            error = np.median(full_model.track_errors(p_two_view))
            # Only a clearly better fit moves the start away from the earlier (more likely)
            # candidates: where the focal length is unobservable, all fit about as well.
            if error < config.start_gain * best_error:
                p_start, best_error = p_two_view, error
        p_full, err_full = full_model.solve(p_start, 40)
        refit = full_model.without_outliers(p_full)
        if refit is not None:
            full_model, p_full = refit
            p_full, err_full = full_model.solve(p_full, 20)
        if err_full >= config.full_model_gain * err_rot:
            return focal / size[0], rot, trans
        focal_full, rot_full, trans_full, rho = full_model.unpack(p_full)
        trans_full = trans_full * np.median(rho)  # unit median inverse depth: a stable scale
        if np.abs(trans_full).max() < config.min_translation:  # noise: a pure rotation
            return focal / size[0], rot, trans
        return focal_full / size[0], rot_full, trans_full

    def _is_static(self, gray: list[np.ndarray], masks: np.ndarray | None, scale: float) -> bool:
        """Whether frame 0's background corners, tracked straight to each frame (chained tracks
        drift), move less than ``static_px`` input pixels: median over the inliers of a RANSAC
        similarity, i.e. over the dominant (background) motion, not over moving things."""
        config = self.config
        height, width = gray[0].shape
        allowed = _background(masks, 0, (width, height), config.mask_dilation)
        corners = cv2.goodFeaturesToTrack(gray[0], config.max_corners, 0.01, config.min_distance, mask=allowed)
        if corners is None or len(corners) < 8:
            return False
        lk = {"winSize": (21, 21), "maxLevel": 3, "criteria": _LK_CRITERIA}
        for k in range(1, len(gray)):
            moved, ok, _ = cv2.calcOpticalFlowPyrLK(
                gray[0], gray[k], corners, corners.copy(), flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **lk
            )
            ok = ok[:, 0] == 1
            if ok.sum() < 8:
                return False
            _, inliers = cv2.estimateAffinePartial2D(
                corners[ok], moved[ok], method=cv2.RANSAC, ransacReprojThreshold=config.ransac_px
            )
            if inliers is None or inliers.sum() < 8:
                return False
            shift = np.linalg.norm((moved - corners)[ok][inliers[:, 0] == 1].reshape(-1, 2), axis=1)
            if np.median(shift) / scale >= config.static_px:
                return False
        return True
