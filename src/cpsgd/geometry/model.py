"""Scene geometry: a coarse inverse-depth field over the intra frame, and the projections it gives.

Coordinates: a pixel with index (u, v) sits at the continuous point (u + 0.5, v + 0.5) of the
pixel grid that ``Intrinsics.matrix`` describes. Camera 0 (the intra frame) is the reference: a
point seen at pixel p of frame 0 with inverse depth rho lies at ``K^-1 p~ / rho`` in camera 0, so
frame i sees it at ``K (R_i K^-1 p~ + rho t_i)`` (pose relative to frame 0). rho = 0 is infinitely
far: a pure rotation homography, which is what the decoder falls back to without this section.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cpsgd.poses.trajectory import Trajectory

STRIP_SCALE = 2  # the hidden background is seen briefly and partly: half resolution is enough


@dataclass(frozen=True)
class MosaicLayout:
    """Where the frames' background sits in the mosaic image sent in the intra section.

    The canvas is ``height x width`` pixels in frame 0's pixel scale; frame 0 occupies
    ``[y0, y0 + frame height) x [x0, x0 + frame width)`` of it. ``under`` is the box
    ``(x, y, w, h)`` in frame 0's pixels whose background (hidden by the foreground in frame 0)
    is stored below the canvas at 1/STRIP_SCALE resolution, in the ``strip_shape`` block at rows
    ``height...`` and columns ``0...``; None when the mosaic image has no such strip."""

    width: int
    height: int
    x0: int
    y0: int
    under: tuple[int, int, int, int] | None = None

    @property
    def strip_shape(self) -> tuple[int, int]:
        """(rows, cols) of the strip block (0, 0 without a strip)."""
        if self.under is None:
            return 0, 0
        return -(-self.under[3] // STRIP_SCALE), -(-self.under[2] // STRIP_SCALE)

    @property
    def image_shape(self) -> tuple[int, int]:
        """(rows, cols) of the full mosaic image, strip included."""
        return self.height + self.strip_shape[0], self.width

    def contains_frame(self, height: int, width: int) -> bool:
        inside = (
            0 <= self.x0
            and self.x0 + width <= self.width
            and 0 <= self.y0
            and self.y0 + height <= self.height
        )
        if self.under is None:
            return inside
        ux, uy, uw, uh = self.under
        return inside and uw > 0 and uh > 0 and 0 <= ux and ux + uw <= width and 0 <= uy and uy + uh <= height


@dataclass(frozen=True)
class SceneGeometry:
    """Inverse depth (in the trajectory's translation units) at the centres of a ``(gh, gw)`` grid
    of cells over frame 0; bilinear between centres, extrapolated linearly to the frame's edges
    (so a 2x2 grid is an exact plane over the frame) and constant beyond them."""

    inverse_depth: np.ndarray
    layout: MosaicLayout | None = None

    def __post_init__(self) -> None:
        grid = np.asarray(self.inverse_depth, dtype=np.float64)
        if grid.ndim != 2 or min(grid.shape) < 1:
            raise ValueError(f"inverse_depth must be a non-empty 2-D grid, got {grid.shape}")
        object.__setattr__(self, "inverse_depth", grid)

    @classmethod
    def at_infinity(cls) -> SceneGeometry:
        return cls(np.zeros((1, 1)))

    def with_layout(self, layout: MosaicLayout | None) -> SceneGeometry:
        return replace(self, layout=layout)

    def is_trivial(self) -> bool:
        """True when it says nothing the decoder does not assume anyway (no layout, depth 0)."""
        return self.layout is None and not np.any(self.inverse_depth)

    def sample(self, x: np.ndarray, y: np.ndarray, width: int, height: int) -> np.ndarray:
        """Inverse depth at continuous frame-0 coordinates (x, y) of a ``width x height`` frame."""
        index, weight = grid_corners(self.inverse_depth.shape, x, y, width, height)
        return (self.inverse_depth.ravel()[index] * weight).sum(-1)

    def plane(self, k_inv: np.ndarray, width: int, height: int) -> np.ndarray:
        """q with rho ~= q . K^-1 p~: the plane that best fits the grid (fronto-parallel when the
        grid is a single row or column)."""
        g = self.inverse_depth
        gh, gw = g.shape
        if gh < 2 or gw < 2:
            return np.array([0.0, 0.0, float(g.mean())])
        xs = (np.arange(gw) + 0.5) * width / gw
        ys = (np.arange(gh) + 0.5) * height / gh
        xx, yy = np.meshgrid(xs, ys)
        rays = np.stack([xx.ravel(), yy.ravel(), np.ones(xx.size)], 1) @ k_inv.T
        return np.linalg.lstsq(rays, g.ravel(), rcond=None)[0]


def grid_corners(
    shape: tuple[int, int], x: np.ndarray, y: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """The 4 flat grid indices and bilinear weights (shape ``x.shape + (4,)``) that give the value
    at (x, y): linear between cell centres, extrapolated linearly to the frame's edge, constant
    beyond it. Fitting uses the weights as rows of a linear system."""
    gh, gw = shape

    def axis(v: np.ndarray, n: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        g = np.clip(v * (n / size) - 0.5, -0.5, n - 0.5)
        if n == 1:
            zero = np.zeros(v.shape, np.int64)
            return zero, zero, np.zeros(v.shape)
        i = np.clip(np.floor(g), 0, n - 2).astype(np.int64)
        return i, i + 1, g - i

    x0, x1, fx = axis(np.asarray(x, np.float64), gw, width)
    y0, y1, fy = axis(np.asarray(y, np.float64), gh, height)
    index = np.stack([y0 * gw + x0, y0 * gw + x1, y1 * gw + x0, y1 * gw + x1], -1)
    weight = np.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx], -1)
    return index, weight


def relative_poses(trajectory: Trajectory, num_frames: int) -> np.ndarray:
    """(num_frames, 4, 4) world-to-camera poses relative to frame 0; a short trajectory holds
    its last pose (a decoder must not fail on it)."""
    rel = trajectory.relative_to_first().world_to_camera
    idx = np.minimum(np.arange(num_frames), len(rel) - 1)
    return rel[idx]


def project(
    geometry: SceneGeometry,
    pose: np.ndarray,
    k: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    width: int,
    height: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame-0 continuous coordinates -> frame-i continuous coordinates and a 'in front' flag."""
    k_inv = np.linalg.inv(k)
    rho = geometry.sample(x, y, width, height)
    rays = np.stack([x, y, np.ones_like(x)], -1) @ (pose[:3, :3] @ k_inv).T
    cam = rays + rho[..., None] * pose[:3, 3]
    pix = cam @ k.T
    z = pix[..., 2]
    front = z > 1e-6
    safe = np.where(front, z, 1.0)
    return pix[..., 0] / safe, pix[..., 1] / safe, front


def unproject(
    geometry: SceneGeometry,
    pose: np.ndarray,
    k: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    width: int,
    height: int,
    iterations: int = 5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame-i continuous coordinates -> the frame-0 coordinates that project there.

    The plane fitted to the grid gives an exact homography; the remaining parallax is small and
    smooth, so a fixed-point iteration x = H^-1 (y - parallax(x)) converges in a few steps."""
    k_inv = np.linalg.inv(k)
    q = geometry.plane(k_inv, width, height)
    h = k @ (pose[:3, :3] + np.outer(pose[:3, 3], q)) @ k_inv
    h_inv = np.linalg.pinv(h)  # a plane through camera i is degenerate: no exception, just a poor map

    def apply(m: np.ndarray, px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = np.stack([px, py, np.ones_like(px)], -1) @ m.T
        z = p[..., 2]
        ok = np.abs(z) > 1e-9
        z = np.where(ok, z, 1e-9)
        return p[..., 0] / z, p[..., 1] / z, ok

    x0, y0, ok = apply(h_inv, x, y)
    if geometry.inverse_depth.size > 1 and np.any(pose[:3, 3]):
        for _ in range(iterations):
            fx, fy, front = project(geometry, pose, k, x0, y0, width, height)
            hx, hy, _ = apply(h, x0, y0)
            x0, y0, ok2 = apply(h_inv, x - (fx - hx), y - (fy - hy))
            ok &= ok2 & front
    # the source point must be in front of camera 0 and of camera i
    _, _, front_i = project(geometry, pose, k, x0, y0, width, height)
    return x0, y0, ok & front_i
