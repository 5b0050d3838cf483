"""The default pose estimator ("flow"): tracked features and a small bundle adjustment, CPU only.

1. Shi-Tomasi corners tracked frame to frame with pyramidal Lucas-Kanade (forward-backward
   checked, re-detected as tracks are lost), on a copy at most ``work_size`` pixels wide; corners on
   the (dilated) foreground masks are never used. Each consecutive frame pair is checked with a
   RANSAC fundamental matrix and the outlying tracks are cut there.
2. Static camera: when the dominant background motion (the inliers of a RANSAC similarity between
   frame 0 and each frame, tracked directly) stays under ``static_px``, all poses are identities.
3. Rotation-only model (every point at infinity): one shared focal length and a rotation per frame,
   by robust (soft L1) least squares on the reprojection errors, with an analytic sparse Jacobian
   (Levenberg-Marquardt, ``cpsgd.poses.bundle``; the full model's inverse depths are eliminated
   by the Schur complement).
   A pan ends here when it already fits to ``rotation_only_px``.
4. Full model: the same plus a translation per frame and an inverse depth per track (anchored in the
   frame where the track starts), so that one scale holds across the whole GoP (the median inverse
   depth is set to 1 afterwards). Its start comes from a search over the focal length (a solver
   free to move it slides into wrong basins where rotation and translation trade off): at each
   candidate (the prior, the rotation model's, the focal whose essential matrix fits the fundamental
   matrix best, a ladder around the prior) the better of two starts (the rotation model with no
   translation; an essential matrix between frame 0 and the frame with most parallax left by the
   rotation model, then PnP for every frame and every track triangulated) is fitted briefly with
   the focal held. The best fit (a later candidate only when clearly better) and the runner-up are
   refined by the full bundle adjustment, where tracks that fit far worse than the median track
   (moving things the masks missed) are dropped and the model refitted, up to ``outlier_rounds``
   times; the better result stays (the first unless clearly worse).
5. Degenerate cases by model selection: the full model is kept only when it fits clearly better
   than rotation alone (both fitted on the same tracks) and its translation is not negligible (pure
   rotation otherwise). A zoom of a fixed camera comes out as a forward motion (the trajectory has
   one focal length per GoP).

The focal length is a free parameter within ``fov_range_deg`` (beyond it only degenerate fits
exist: a forward motion is explained by a rotation at a vanishing focal length), with a weak prior
(``prior_fov_deg``) that decides where the tracks cannot (static camera). Under a pure forward
motion the focal length is unobservable (every point moves along its ray from the centre, whatever
the focal length); the estimator detects that explicitly: when the tracks leave the log focal
length more uncertain than ``max_log_focal_std`` (its Gauss-Newton standard deviation at the full
model's fit, every other parameter free), the focal length is held at the prior and the full
model refitted, so that it cannot trade against the rotations. The principal point is the image
centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.spatial.transform import Rotation
from threadpoolctl import threadpool_limits

from cpsgd.errors import InputError
from cpsgd.poses.base import POSE_ESTIMATORS, PoseEstimator
from cpsgd.poses.bundle import LMConfig, least_squares_lm
from cpsgd.poses.trajectory import Intrinsics, Trajectory, focal_of_fov

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
    fov_range_deg: tuple[float, float] = (20.0, 120.0)  # the focal search stays within these fields of view
    prior_weight: float = 3.0  # pixels of residual per unit of log focal away from the prior
    loss_scale_px: float = 1.0  # robust (soft L1) loss threshold
    # Chained LK tracks drift (on orbits a quarter of them by over a pixel in 16 frames) and bias
    # the fit towards a wrong focal length: a track half a pixel off already goes.
    outlier_px: float = 0.5  # tracks whose median residual is above this and above
    outlier_ratio: float = 5.0  # this x the median track's are refitted without
    outlier_rounds: int = 3  # at most this many refits without outliers
    full_model_gain: float = 0.5  # the full model must bring the residual under this x rotation-only's
    focal_ladder: tuple[float, ...] = (-1.0, -0.5, 0.5, 1.0)  # focal candidates: the prior x 2 ** these
    focal_search_nfev: int = 10  # solver steps per focal candidate
    start_gain: float = 0.8  # a later focal candidate must fit the tracks this much better
    refined_starts: int = 2  # the search's winner and the next best fits are refined; the best stays
    min_translation: float = 0.002  # relative to the median scene depth; less is a pure rotation
    rotation_only_px: float = 0.1  # rotation alone explains the tracks this well: a pan, no translation
    # The tracks leave the log focal length this uncertain (1 sigma, at the prior's focal):
    # unobservable, held at the prior. The synthetic scenes (60-90 degrees, with and without
    # objects and masks) measure 0.07-0.35 in forward motions, 0.002-0.021 in orbits and shakes.
    max_log_focal_std: float = 0.04


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
        self.log_f0 = np.log(focal_of_fov(config.prior_fov_deg))
        self.num_tracks = len(tracks.anchor_frame)
        self.anchor = tracks.anchor_frame[tracks.track]
        self.centre = np.array([self.width / 2, self.height / 2])
        self._jacobian_layout = self._layout()
        self._last_points: tuple[np.ndarray, tuple] | None = None  # the solver linearises where it last evaluated

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

    def _points(self, p: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per observation: (focal, rho, rotation matrices and translations of all frames,
        v = b - rho t_a, world = R_a^T v, point = R_k world + rho t_k), b being the anchor's ray:
        the world point (first camera's frame) and the point in camera k, both times rho."""
        if self._last_points is not None and np.array_equal(self._last_points[0], p):
            return self._last_points[1]
        focal, rot, trans, rho = self.unpack(p)
        t = self.tracks
        rmat = Rotation.from_rotvec(rot).as_matrix()
        rho_obs = rho[t.track][:, None]
        bearing = np.column_stack([(t.anchor_xy[t.track] - self.centre) / focal, np.ones(len(t.track))])
        v = bearing - rho_obs * trans[self.anchor]
        world = (rmat[self.anchor] * v[:, :, None]).sum(axis=1)
        point = (rmat[t.frame] * world[:, None, :]).sum(axis=2) + rho_obs * trans[t.frame]
        self._last_points = (p.copy(), (focal, rho_obs, rmat, trans, v, world, point))
        return self._last_points[1]

    def residuals(self, p: np.ndarray) -> np.ndarray:
        focal, *_, point = self._points(p)
        z = np.maximum(point[:, 2], 1e-3)
        projected = focal * point[:, :2] / z[:, None] + self.centre
        prior = self.config.prior_weight * (p[0] - self.log_f0)
        return np.concatenate([(projected - self.tracks.xy).ravel(), [prior]])

    def _layout(self) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
        """Sparsity of the Jacobian: for each block of ``jacobian`` the observations that have it,
        and the CSR structure with the order that takes the blocks' values into it."""
        t, m, obs = self.tracks, self.n - 1, len(self.tracks.frame)
        every = np.arange(obs)
        blocks = [(np.zeros(obs, int), 1, every), (1 + 3 * (t.frame - 1), 3, np.flatnonzero(t.frame > 0)),
                  (1 + 3 * (self.anchor - 1), 3, np.flatnonzero(self.anchor > 0))]
        if self.full:
            blocks += [(1 + 3 * m + 3 * (t.frame - 1), 3, np.flatnonzero(t.frame > 0)),
                       (1 + 3 * m + 3 * (self.anchor - 1), 3, np.flatnonzero(self.anchor > 0)),
                       (1 + 6 * m + t.track, 1, every)]
        shape = (2 * obs + 1, 1 + (6 * m + self.num_tracks if self.full else 3 * m))
        rows, cols = [np.array([shape[0] - 1])], [np.zeros(1, int)]  # the prior's row
        for first, width, index in blocks:
            rows.append(np.repeat(2 * index[:, None] + np.arange(2), width, axis=1).ravel())
            cols.append(np.tile(first[index][:, None] + np.arange(width), 2).ravel())
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        structure = coo_matrix((np.arange(1, len(rows) + 1), (rows, cols)), shape=shape).tocsr()
        return [index for _, _, index in blocks], structure.data - 1, structure.indices, structure.indptr, shape

    def jacobian(self, p: np.ndarray) -> csr_matrix:
        """Analytic sparse Jacobian of ``residuals`` (finite differences would need a residual
        evaluation per frame parameter)."""
        focal, rho_obs, rmat, trans, v, world, point = self._points(p)
        t, m, obs = self.tracks, self.n - 1, len(self.tracks.frame)
        rot = p[1 : 1 + 3 * m].reshape(m, 3)
        right = np.concatenate([np.eye(3)[None], _right_jacobian(rot)])
        right_inverse = np.concatenate([np.eye(3)[None], _right_jacobian(-rot)])  # R_a^T = R(-r_a)
        z = np.maximum(point[:, 2], 1e-3)
        d_point = np.zeros((obs, 2, 3))  # d(projection) / d(point)
        d_point[:, 0, 0] = d_point[:, 1, 1] = focal / z
        d_point[:, :, 2] = -focal * point[:, :2] / z[:, None] ** 2
        r_k = rmat[t.frame]
        d_anchor_point = d_point @ r_k @ np.swapaxes(rmat[self.anchor], 1, 2)  # by the point in the anchor camera
        d_bearing = np.zeros((obs, 3, 1))  # d(b) / d(log focal)
        d_bearing[:, :2, 0] = -(t.anchor_xy[t.track] - self.centre) / focal
        # (M, 2, width) derivatives by the parameters of ``_layout``'s blocks, in its order.
        blocks = [
            focal * point[:, :2, None] / z[:, None, None] + d_anchor_point @ d_bearing,  # log focal
            -d_point @ r_k @ _skew(world) @ right[t.frame],  # rotation of frame k
            d_anchor_point @ _skew(v) @ right_inverse[self.anchor],  # rotation of the anchor frame
        ]
        if self.full:
            blocks += [
                d_point * rho_obs[:, :, None],  # translation of frame k
                -d_anchor_point * rho_obs[:, :, None],  # translation of the anchor frame
                d_point @ trans[t.frame, :, None] - d_anchor_point @ trans[self.anchor, :, None],  # rho
            ]
        indices, order, columns, pointers, shape = self._jacobian_layout
        values = np.concatenate([[self.config.prior_weight]] + [b[i].ravel() for b, i in zip(blocks, indices)])
        return csr_matrix((values[order], columns, pointers), shape=shape)

    def solve(self, p0: np.ndarray, max_nfev: int, log_focal_range: tuple[float, float] | None = None) -> np.ndarray:
        """Robust least squares from p0. The log normalised focal length stays within
        ``log_focal_range`` (default: the configured fields of view; a single value holds it)."""
        lower = np.full(len(p0), -np.inf)
        upper = np.full(len(p0), np.inf)
        lower[0], upper[0] = log_focal_range or _log_focal_bounds(self.config)
        # The solver's many small BLAS calls only lose time to thread hand-offs (badly so on a busy
        # machine): one thread.
        with threadpool_limits(1):
            return least_squares_lm(
                self.residuals, self.jacobian, p0, self.num_tracks if self.full else 0, lower, upper, max_nfev,
                LMConfig(loss_scale=self.config.loss_scale_px),
            )

    def log_focal_std(self, p: np.ndarray) -> float:
        """Standard deviation of the log focal length that the tracks alone allow at p: the
        Gauss-Newton covariance with every other parameter free (inverse depths eliminated by the
        Schur complement, the prior's row left out), scaled by the robust residual variance.
        Large where the focal length is unobservable (a pure forward motion moves every point
        along its ray from the centre, whatever the focal length)."""
        residuals = self.residuals(p)[:-1]
        weights = (1 + (residuals / self.config.loss_scale_px) ** 2) ** -0.5
        jw = self.jacobian(p)[:-1]
        jw = csr_matrix(jw.multiply(np.sqrt(weights)[:, None]))
        normal = (jw.T @ jw).toarray()
        num_camera = len(p) - (self.num_tracks if self.full else 0)
        u, w = normal[:num_camera, :num_camera], normal[:num_camera, num_camera:]
        v = np.maximum(np.diag(normal)[num_camera:], 1e-12)
        schur = u - (w / v) @ w.T
        # The pseudo-inverse: the full model's scale (translations against inverse depths) is free.
        variance = np.linalg.pinv(schur, rcond=1e-10, hermitian=True)[0, 0]
        sigma = 1.4826 * np.median(np.abs(residuals))
        return float(sigma * np.sqrt(max(variance, 0.0)))

    def observation_errors(self, p: np.ndarray) -> np.ndarray:
        """(M,) reprojection error of every observation (pixels)."""
        return np.linalg.norm(self.residuals(p)[:-1].reshape(-1, 2), axis=1)

    def median_error(self, p: np.ndarray) -> float:
        """Median over the tracks of their median reprojection error (pixels)."""
        return float(np.median(self.track_errors(p)))

    def track_errors(self, p: np.ndarray) -> np.ndarray:
        """Median reprojection error of each track (0 for tracks seen only where they start)."""
        err = self.observation_errors(p)
        ordered = err[np.lexsort((err, self.tracks.track))]  # by track, then by error
        counts = np.bincount(self.tracks.track, minlength=self.num_tracks)
        starts = np.cumsum(counts) - counts
        # The two middle errors of each track (clipped: unseen tracks index past their end).
        upper = ordered[np.minimum(starts + counts // 2, len(ordered) - 1)]
        lower = ordered[np.maximum(starts + (counts - 1) // 2, 0)]
        return np.where(counts > 0, (upper + lower) / 2, 0.0)

    def without_outliers(self, p: np.ndarray) -> tuple[_Model, np.ndarray] | None:
        """The same model and parameters without the tracks that fit far worse than the median track
        (independently moving objects the masks missed); None when every track fits."""
        errors = self.track_errors(p)
        keep = errors <= max(self.config.outlier_px, self.config.outlier_ratio * np.median(errors))
        if keep.all() or keep.sum() < 8:
            return None
        return self.subset(keep, p)

    def subset(self, keep: np.ndarray, p: np.ndarray) -> tuple[_Model, np.ndarray]:
        """The same model and parameters on the tracks where ``keep`` is true."""
        t = self.tracks
        new_index = np.cumsum(keep) - 1
        rows = keep[t.track]
        tracks = _Tracks(new_index[t.track[rows]], t.frame[rows], t.xy[rows], t.anchor_frame[keep], t.anchor_xy[keep])
        model = _Model(tracks, self.n, (self.width, self.height), self.config, self.full)
        focal, rot, trans, rho = self.unpack(p)
        return model, model.pack(focal / self.width, rot, trans, rho[keep] if self.full else None)


def _skew(v: np.ndarray) -> np.ndarray:
    """(..., 3) vectors -> (..., 3, 3) cross-product matrices."""
    out = np.zeros(v.shape + (3,))
    out[..., 0, 1], out[..., 0, 2], out[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    out[..., 1, 0], out[..., 2, 0], out[..., 2, 1] = v[..., 2], -v[..., 1], v[..., 0]
    return out


def _right_jacobian(rotvec: np.ndarray) -> np.ndarray:
    """(N, 3, 3) right Jacobians of SO(3): R(r + dr) = R(r) exp([J_r(r) dr]_x) to first order."""
    theta = np.linalg.norm(rotvec, axis=1)[:, None, None]
    small = theta < 1e-4
    safe = np.where(small, 1.0, theta)
    a = np.where(small, 0.5 - theta**2 / 24, (1 - np.cos(safe)) / safe**2)
    b = np.where(small, 1 / 6 - theta**2 / 120, (safe - np.sin(safe)) / safe**3)
    k = _skew(rotvec)
    return np.eye(3) - a * k + b * (k @ k)


def _log_focal_bounds(config: FlowConfig) -> tuple[float, float]:
    """Range of the log normalised focal length: beyond it the search only finds degenerate fits
    (a pure forward motion is explained by a rotation at a vanishing focal length)."""
    return float(np.log(focal_of_fov(max(config.fov_range_deg)))), float(np.log(focal_of_fov(min(config.fov_range_deg))))


def _positions(tracks: _Tracks, num_frames: int) -> np.ndarray:
    """(tracks, frames, 2) positions, NaN where a track is not seen."""
    pos = np.full((len(tracks.anchor_frame), num_frames, 2), np.nan)
    pos[tracks.track, tracks.frame] = tracks.xy
    pos[np.arange(len(tracks.anchor_frame)), tracks.anchor_frame] = tracks.anchor_xy
    return pos


def _reference_frame(pos: np.ndarray, parallax: np.ndarray, min_shared: int = 30) -> int:
    """The frame with the most parallax (``parallax``: (tracks, frames) residual of the rotation-only
    model, NaN where unseen) from frame 0 among those sharing enough tracks with it."""
    best, best_parallax = 1, -1.0
    for k in range(1, pos.shape[1]):
        shared = ~np.isnan(pos[:, 0, 0]) & ~np.isnan(parallax[:, k])
        if shared.sum() < min_shared and k > 1:
            break
        value = float(np.median(parallax[shared, k])) if shared.any() else 0.0
        if value > best_parallax:
            best, best_parallax = k, value
    return best


def _inverse_depths(tracks: _Tracks, focal: float, rot: np.ndarray, trans: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Least-squares inverse depth of every track (along its anchor's ray) given the poses.

    A point b / rho in its anchor camera is seen in frame k at x ~ u + rho v (u = R_k R_a^T b,
    v = t_k - R_k R_a^T t_a): each image coordinate gives one equation linear in rho."""
    centre = np.array([size[0] / 2, size[1] / 2])
    anchor = tracks.anchor_frame[tracks.track]
    rmat = Rotation.from_rotvec(rot).as_matrix()
    relative = rmat[tracks.frame] @ np.swapaxes(rmat[anchor], 1, 2)
    bearing = np.column_stack([(tracks.anchor_xy[tracks.track] - centre) / focal, np.ones(len(tracks.track))])
    u = (relative @ bearing[:, :, None])[:, :, 0]
    v = trans[tracks.frame] - (relative @ trans[anchor][:, :, None])[:, :, 0]
    seen = (tracks.xy - centre) / focal
    a = seen * v[:, 2:] - v[:, :2]
    c = u[:, :2] - seen * u[:, 2:]
    num = np.bincount(tracks.track, (a * c).sum(axis=1), len(tracks.anchor_frame))
    den = np.bincount(tracks.track, (a * a).sum(axis=1), len(tracks.anchor_frame))
    rho = np.divide(num, den, out=np.full(len(den), np.nan), where=den > 1e-12)
    valid = np.isfinite(rho) & (rho > 0)
    fallback = float(np.median(rho[valid])) if valid.any() else 1.0
    return np.where(valid, rho, fallback)


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
    reference frame, triangulation, PnP for every other frame, then every track triangulated from
    all its observations. None when that fails."""
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
    return rot, trans, _inverse_depths(tracks, focal, rot, trans, size)


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
        f0 = focal_of_fov(config.prior_fov_deg)
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
        f0 = focal_of_fov(config.prior_fov_deg)
        rotation_model = _Model(tracks, n, size, config, full=False)
        p_rot = rotation_model.solve(rotation_model.pack(f0, np.zeros((n, 3)), None, None), 30)
        err_rot = rotation_model.median_error(p_rot)
        focal, rot, trans, _ = rotation_model.unpack(p_rot)
        if err_rot <= config.rotation_only_px:
            return focal / size[0], rot, trans

        full_model = _Model(tracks, n, size, config, full=True)
        err_full = np.inf
        for p_start in self._focal_search(full_model, rotation_model, p_rot):
            model, p = self._refine(full_model, p_start)
            error = model.median_error(p)
            if error < config.start_gain * err_full:  # the search's winner unless clearly worse
                refined, p_full, err_full = model, p, error
        full_model = refined
        # Where the tracks cannot tell the focal length (a forward motion), hold it at the prior
        # rather than let it trade against the rotations. Its uncertainty is judged at the fit
        # with the prior's focal: moving things the masks missed can hold a free focal in a wrong
        # basin (a vanishing focal length), where it looks certain.
        held = np.concatenate([[full_model.log_f0], p_full[1:]])
        p_held = full_model.solve(held, 40, (full_model.log_f0, full_model.log_f0))
        if full_model.log_focal_std(p_held) > config.max_log_focal_std:
            p_full, err_full = p_held, full_model.median_error(p_held)
        if full_model.num_tracks < rotation_model.num_tracks:
            # Compare the models on the same tracks; a pan also gains from leaving the outliers out.
            rotation_model = _Model(full_model.tracks, n, size, config, full=False)
            p_rot = rotation_model.solve(rotation_model.pack(focal / size[0], rot, None, None), 20)
            err_rot = rotation_model.median_error(p_rot)
            focal, rot, trans, _ = rotation_model.unpack(p_rot)
        if err_full >= config.full_model_gain * err_rot:
            return focal / size[0], rot, trans
        focal_full, rot_full, trans_full, rho = full_model.unpack(p_full)
        trans_full = trans_full * np.median(rho)  # unit median inverse depth: a stable scale
        if np.abs(trans_full).max() < config.min_translation:  # noise: a pure rotation
            return focal / size[0], rot, trans
        return focal_full / size[0], rot_full, trans_full

    def _refine(self, model: _Model, p: np.ndarray) -> tuple[_Model, np.ndarray]:
        """Full bundle adjustment from p. Moving things the masks missed are cut after the focal
        search's short fit already, before they can pull the solver, then again after each fit."""
        for rounds in range(self.config.outlier_rounds + 1):
            refit = model.without_outliers(p)
            if refit is not None:
                model, p = refit
            elif rounds:
                break
            p = model.solve(p, 40 if rounds == 0 else 20)
        return model, p

    def _focal_search(self, full_model: _Model, rotation_model: _Model, p_rot: np.ndarray) -> list[np.ndarray]:
        """Start of the full model's bundle adjustment from a search over the focal length: a solver
        free to move it slides into wrong basins where rotation and translation trade off (small
        translations, narrow fields of view).

        Focal candidates: the prior, the rotation model's, the one whose essential matrix fits the
        fundamental matrix best, and a ladder around the prior. At each, the better fitting of two
        starts (the rotations with every point at depth 1 and no translation, good for small
        translations where the essential matrix is ill-posed; two-view geometry between frame 0 and
        the frame with most parallax, triangulation and PnP) is fitted briefly with the focal held.
        The best fit comes first (a later, less likely, candidate only when clearly better: where
        the focal length is unobservable all fit about as well), then the next best ones."""
        config, tracks, n = self.config, full_model.tracks, full_model.n
        size = (full_model.width, full_model.height)
        f0 = focal_of_fov(config.prior_fov_deg)
        focal, rot, trans, _ = rotation_model.unpack(p_rot)
        pos = _positions(tracks, n)
        parallax = np.full(pos.shape[:2], np.nan)
        parallax[tracks.track, tracks.frame] = rotation_model.observation_errors(p_rot)
        reference = _reference_frame(pos, parallax)
        candidates = [f0, focal / size[0]]
        shared = ~np.isnan(pos[:, 0, 0]) & ~np.isnan(pos[:, reference, 0])
        if shared.sum() >= 12:
            f_mat, _ = cv2.findFundamentalMat(pos[shared, 0], pos[shared, reference], cv2.FM_RANSAC, config.ransac_px, 0.999)
            if f_mat is not None and f_mat.shape == (3, 3):
                ladder = f0 * 2.0 ** np.linspace(-1.5, 1.5, 61)
                candidates.append(_focal_from_fundamental(f_mat, size, ladder, rotation_model.log_f0))
        candidates.extend(f0 * 2.0 ** np.array(config.focal_ladder))

        low, high = _log_focal_bounds(config)
        tried: list[float] = []
        fits: list[tuple[float, np.ndarray]] = []
        best = 0
        for log_focal in np.clip(np.log(candidates), low, high):
            if any(abs(log_focal - other) < 0.05 for other in tried):  # within 5%: the same
                continue
            tried.append(log_focal)
            focal_norm = float(np.exp(log_focal))
            p_start = full_model.pack(focal_norm, rot, trans, np.ones(full_model.num_tracks))
            two_view = _two_view_start(pos, tracks, reference, focal_norm * size[0], size, config)
            if two_view is not None:
                p_two_view = full_model.pack(focal_norm, *two_view)
                if full_model.median_error(p_two_view) < full_model.median_error(p_start):
                    p_start = p_two_view
            p_held = full_model.solve(p_start, config.focal_search_nfev, (log_focal, log_focal))
            fits.append((full_model.median_error(p_held), p_held))
            if fits[-1][0] < config.start_gain * fits[best][0]:
                best = len(fits) - 1
        runner_up = sorted(fits[:best] + fits[best + 1 :], key=lambda fit: fit[0])
        return [fits[best][1]] + [p for _, p in runner_up[: config.refined_starts - 1]]

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
