"""Scene-geometry side channel: model, codec, fitting and the mosaic."""

from __future__ import annotations

import numpy as np
import pytest

from cpsgd.errors import BitstreamError
from cpsgd.geometry import GEOMETRY_CODECS, MosaicLayout, SceneGeometry, build_mosaic, fit_geometry
from cpsgd.geometry.model import project, unproject
from cpsgd.poses.trajectory import Intrinsics
from cpsgd.synth.scene import SceneConfig, make_scene

W = H = 96


def _pose(yaw_deg: float, t: tuple[float, float, float]) -> np.ndarray:
    a = np.radians(yaw_deg)
    pose = np.eye(4)
    pose[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
    pose[:3, 3] = t
    return pose


def test_plane_grid_is_exact_over_the_frame() -> None:
    k_inv = np.linalg.inv(Intrinsics(1.0, 1.0).matrix(W, H))
    q = np.array([0.02, -0.01, 0.3])
    xs = (np.arange(2) + 0.5) * W / 2
    ys = (np.arange(2) + 0.5) * H / 2
    xx, yy = np.meshgrid(xs, ys)
    grid = (np.stack([xx, yy, np.ones_like(xx)], -1) @ k_inv.T) @ q
    geometry = SceneGeometry(grid)
    px, py = np.meshgrid(np.linspace(0, W, 7), np.linspace(0, H, 7))
    want = (np.stack([px, py, np.ones_like(px)], -1) @ k_inv.T) @ q
    np.testing.assert_allclose(geometry.sample(px, py, W, H), want, rtol=1e-9, atol=1e-12)


def test_unproject_inverts_project_with_parallax() -> None:
    rng = np.random.default_rng(1)
    geometry = SceneGeometry(0.2 + 0.3 * rng.random((4, 5)))
    k = Intrinsics(0.9, 0.9).matrix(W, H)
    pose = _pose(4.0, (0.3, -0.1, 0.2))
    x, y = np.meshgrid(np.linspace(10, W - 10, 9), np.linspace(10, H - 10, 9))
    fx, fy, front = project(geometry, pose, k, x, y, W, H)
    bx, by, ok = unproject(geometry, pose, k, fx, fy, W, H, iterations=8)
    assert front.all() and ok.all()
    np.testing.assert_allclose(bx, x, atol=0.05)
    np.testing.assert_allclose(by, y, atol=0.05)


@pytest.mark.parametrize(
    "layout", [None, MosaicLayout(140, 100, 30, 2), MosaicLayout(140, 100, 30, 2, (5, 6, 40, 50))]
)
def test_codec_round_trip(layout: MosaicLayout | None) -> None:
    codec = GEOMETRY_CODECS.get("grid8")()
    assert GEOMETRY_CODECS.by_code(codec.code) is type(codec)
    grid = np.linspace(-0.05, 0.7, 36).reshape(6, 6)
    data = codec.compress(SceneGeometry(grid, layout))
    assert len(data) <= 36 + 6 + 1 + 12
    back = codec.decompress(data)
    assert back.layout == layout
    assert back.inverse_depth.shape == (6, 6)
    np.testing.assert_allclose(back.inverse_depth, grid, atol=(0.75 / 255) * 0.6 + 1e-3)
    assert codec.compress(back) == data  # decoding is stable: re-encoding gives the same bytes


def test_codec_rejects_corruption() -> None:
    codec = GEOMETRY_CODECS.get("grid8")()
    data = codec.compress(SceneGeometry(np.ones((3, 3)), MosaicLayout(120, 96, 10, 0, (1, 2, 3, 4))))
    for cut in range(len(data)):
        with pytest.raises(BitstreamError):
            codec.decompress(data[:cut])
    with pytest.raises(BitstreamError):
        codec.decompress(data + b"\x00")
    bad = bytearray(data)
    bad[0] = 0  # zero rows
    with pytest.raises(BitstreamError):
        codec.decompress(bytes(bad))
    bad = bytearray(data)
    bad[2:4] = np.float16(np.inf).tobytes()
    with pytest.raises(BitstreamError):
        codec.decompress(bytes(bad))
    rng = np.random.default_rng(0)
    for _ in range(200):  # random payloads: parsed or rejected, never another exception
        blob = rng.integers(0, 256, rng.integers(0, 40), dtype=np.uint8).tobytes()
        try:
            codec.decompress(blob)
        except BitstreamError:
            pass


@pytest.fixture(scope="module")
def dolly() -> object:
    return make_scene(SceneConfig(traj="dolly", objects=1, num_frames=9, width=128, height=128, motion=2.0))


def test_fit_recovers_depth_of_a_dolly(dolly) -> None:
    geometry = fit_geometry(dolly.frames, dolly.trajectory, dolly.masks)
    assert geometry.inverse_depth.size > 1
    # the back wall of the synthetic scene stands at z = 12: the upper rows see it
    top = geometry.inverse_depth[0]
    assert np.all(np.abs(top - 1 / 12) < 0.03), top
    # and the ground (lower rows) is nearer than the wall
    assert geometry.inverse_depth[-1].mean() > top.mean()


def test_fit_without_translation_is_at_infinity() -> None:
    clip = make_scene(SceneConfig(traj="pan", objects=0, num_frames=5, width=64, height=64))
    assert np.all(fit_geometry(clip.frames, clip.trajectory, clip.masks).inverse_depth == 0)
    assert np.all(fit_geometry(clip.frames, None, None).inverse_depth == 0)


def test_mosaic_extends_canvas_for_pan_and_keeps_frame0() -> None:
    clip = make_scene(SceneConfig(traj="pan", objects=1, num_frames=9, width=96, height=96, motion=2.0))
    geometry = SceneGeometry.at_infinity()
    mosaic = build_mosaic(clip.frames, clip.trajectory, clip.masks, geometry)
    lay = mosaic.layout
    assert lay.width > 96 and lay.contains_frame(96, 96)
    assert mosaic.image.shape[:2] == lay.image_shape
    np.testing.assert_array_equal(mosaic.image[lay.y0 : lay.y0 + 96, lay.x0 : lay.x0 + 96], clip.frames[0])
    assert mosaic.image.min(axis=2).max() > 0 and (mosaic.image.sum(axis=2) > 0).mean() > 0.99
