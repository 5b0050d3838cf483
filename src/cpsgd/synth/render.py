"""Exact pinhole rendering of textured planar quads by vectorised ray casting with a z-buffer.

Pixel centres sit at integer coordinates (OpenCV convention): pixel (row v, column u) looks along
``K^-1 [u, v, 1]``. Rays are scaled so that their camera-space z is 1, which makes the ray
parameter of a hit equal to its depth (camera z), the quantity the depth maps hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cpsgd.synth.textures import MipTexture, sample

SKY = np.array([0.70, 0.80, 0.92], np.float32)
_NEAR = 1e-3


@dataclass(frozen=True)
class Quad:
    """A textured planar patch ``origin + u * axis_u + v * axis_v``, 0 <= u <= size[0],
    0 <= v <= size[1] (``inf`` for an unbounded plane). With ``ellipse`` only the inscribed ellipse
    is solid. Texel coordinates are ``(u * texels_per_unit[0], v * texels_per_unit[1])``."""

    origin: np.ndarray
    axis_u: np.ndarray
    axis_v: np.ndarray
    size: tuple[float, float]
    texture: str
    texels_per_unit: tuple[float, float]
    facing: np.ndarray  # unit normal on the visible side (culling; shading is precomputed)
    shade: float = 1.0
    label: int = 0  # 0 static background, k > 0 moving object k
    ellipse: bool = False
    one_sided: bool = False  # cull when seen from behind (faces of closed boxes: saves work)

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.axis_u, self.axis_v)

    def corners(self) -> np.ndarray:
        u, v = self.size
        return self.origin + np.array([[0, 0], [u, 0], [0, v], [u, v]]) @ np.stack([self.axis_u, self.axis_v])


@dataclass
class RenderedFrame:
    image: np.ndarray  # (H, W, 3) float32 in [0, 1]
    depth: np.ndarray  # (H, W) float32 camera z, inf where nothing was hit
    labels: np.ndarray  # (H, W) uint8


def pixel_rays(k: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W, 3) camera-space ray directions with z = 1."""
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    x = (u - k[0, 2]) / k[0, 0]
    y = (v - k[1, 2]) / k[1, 1]
    return np.stack([x, y, np.ones_like(x)], axis=-1)


def _region(quad: Quad, w2c: np.ndarray, k: np.ndarray, width: int, height: int) -> tuple[slice, slice]:
    """Pixel box that can contain the quad: its projected corners' bounds (whole image when the quad
    is unbounded or crosses the camera plane)."""
    full = (slice(0, height), slice(0, width))
    if not np.all(np.isfinite(quad.size)):
        return full
    cam = quad.corners() @ w2c[:3, :3].T + w2c[:3, 3]
    if np.any(cam[:, 2] <= _NEAR):
        return full
    px = cam @ k.T
    px = px[:, :2] / px[:, 2:]
    u0, v0 = np.floor(px.min(axis=0)).astype(int) - 1
    u1, v1 = np.ceil(px.max(axis=0)).astype(int) + 2
    return slice(max(v0, 0), min(v1, height)), slice(max(u0, 0), min(u1, width))


def render(
    quads: list[Quad],
    textures: dict[str, MipTexture],
    w2c: np.ndarray,
    k: np.ndarray,
    rays: np.ndarray,
) -> RenderedFrame:
    """Ray-cast every quad, keep the nearest hit per pixel, then texture each pixel from its quad."""
    height, width = rays.shape[:2]
    rot, centre = w2c[:3, :3], -w2c[:3, :3].T @ w2c[:3, 3]
    # float32 per-pixel work: ample for sub-texel accuracy at these distances, and faster
    dirs = (rays @ rot).astype(np.float32)  # world-space directions, row-vector form of R^T d
    depth = np.full((height, width), np.inf, np.float32)
    owner = np.full((height, width), -1, np.int32)
    tex_u = np.zeros((height, width), np.float32)
    tex_v = np.zeros((height, width), np.float32)
    incidence = np.ones((height, width), np.float32)  # |d . n| of the winning plane, for mip levels

    for index, quad in enumerate(quads):
        offset = centre - quad.origin
        if quad.one_sided and offset @ quad.facing <= 0:
            continue
        rows, cols = _region(quad, w2c, k, width, height)
        basis = np.stack([quad.normal, quad.axis_u, quad.axis_v], axis=1)
        proj = dirs[rows, cols] @ basis.astype(np.float32)
        along = offset @ basis  # python floats below keep the arrays float32
        with np.errstate(divide="ignore", invalid="ignore"):
            s = float(-along[0]) / proj[..., 0]
            u = float(along[1]) + s * proj[..., 1]
            v = float(along[2]) + s * proj[..., 2]
            hit = (s > _NEAR) & (s < depth[rows, cols])
            if quad.ellipse:
                ru, rv = quad.size[0] / 2, quad.size[1] / 2
                hit &= ((u - ru) / ru) ** 2 + ((v - rv) / rv) ** 2 <= 1.0
            else:
                if np.isfinite(quad.size[0]):
                    hit &= (u >= 0) & (u <= quad.size[0])
                if np.isfinite(quad.size[1]):
                    hit &= (v >= 0) & (v <= quad.size[1])
        # basic slices are views, so these writes land in the full-frame buffers
        np.copyto(depth[rows, cols], s, where=hit)
        np.copyto(owner[rows, cols], index, where=hit)
        np.copyto(tex_u[rows, cols], u, where=hit)
        np.copyto(tex_v[rows, cols], v, where=hit)
        np.copyto(incidence[rows, cols], np.abs(proj[..., 0]), where=hit)

    # Texels per pixel, per unit of texture density: distance / focal is the pixel's footprint
    # across the ray; the plane's obliquity stretches it by 1/cos along one axis (we take the
    # geometric mean of the two axes: a little blur at grazing angles, little aliasing).
    ray_len = np.linalg.norm(rays, axis=-1).astype(np.float32)
    focal = float(np.sqrt(k[0, 0] * k[1, 1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        footprint = depth * ray_len / focal / np.sqrt(np.maximum(incidence / ray_len, 1e-3))

    # Group pixels by owning quad with one sort, so each quad textures a contiguous run.
    flat_owner = owner.ravel()
    order = np.argsort(flat_owner, kind="stable")
    bounds = np.searchsorted(flat_owner[order], np.arange(-1, len(quads) + 1))
    fields = [a.ravel()[order] for a in (tex_u, tex_v, footprint)]
    colours = np.empty((order.size, 3), np.float32)
    colours[: bounds[1]] = SKY
    for index, quad in enumerate(quads):
        run = slice(bounds[index + 1], bounds[index + 2])
        if run.start == run.stop:
            continue
        su, sv = quad.texels_per_unit
        u, v, fp = (f[run] for f in fields)
        # level bias -0.5: a little sharper than the footprint asks; doubles the features found
        level = np.log2(fp * max(su, sv)) - 0.5
        colours[run] = sample(textures[quad.texture], u * su, v * sv, level) * quad.shade
    image = np.empty((height * width, 3), np.float32)
    image[order] = colours
    labels = np.array([0] + [q.label for q in quads], np.uint8)[owner + 1]
    return RenderedFrame(image.reshape(height, width, 3), depth, labels)
