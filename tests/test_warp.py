"""The warp generator: background reprojection, foreground transport, hole filling."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cpsgd.errors import BitstreamError
from cpsgd.generators.base import GENERATORS, GopConditions
from cpsgd.generators.foreground import (
    ForegroundConfig,
    SourceObject,
    folds,
    match_outline,
    object_maps,
)
from cpsgd.generators.warp import WarpConfig, WarpGenerator
from cpsgd.geometry import (
    GEOMETRY_CODECS,
    MosaicLayout,
    SceneGeometry,
    build_mosaic,
    fit_geometry,
)
from cpsgd.geometry.model import relative_poses, unproject
from cpsgd.poses.trajectory import Intrinsics, Trajectory
from cpsgd.synth.scene import SceneConfig, make_scene


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def _visible_psnr(clip, out: np.ndarray, geometry: SceneGeometry) -> list[float]:
    """Per frame PSNR over background that frame 0 saw (not occluded, not outside frame 0)."""
    n, h, w = clip.frames.shape[:3]
    k = clip.trajectory.intrinsics.matrix(w, h)
    poses = relative_poses(clip.trajectory, n)
    xs, ys = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    fg = [cv2.dilate(m, np.ones((5, 5), np.uint8)) for m in clip.masks]
    scores = []
    for i in range(1, n):
        sx, sy, ok = unproject(geometry, poses[i], k, xs, ys, w, h)
        src_fg = cv2.remap(
            fg[0] * 255,
            (sx - 0.5).astype(np.float32),
            (sy - 0.5).astype(np.float32),
            cv2.INTER_NEAREST,
            borderValue=255,
        )
        visible = ok & (sx > 2) & (sx < w - 2) & (sy > 2) & (sy < h - 2) & (src_fg == 0) & (fg[i] == 0)
        assert visible.mean() > 0.3
        scores.append(_psnr(out[i][visible], clip.frames[i][visible]))
    return scores


def _conditions(
    clip, geometry: SceneGeometry | None = None, intra: np.ndarray | None = None
) -> GopConditions:
    n, h, w = clip.frames.shape[:3]
    channels = {} if geometry is None else {"geometry": geometry}
    return GopConditions(
        n,
        h,
        w,
        clip.frames[0] if intra is None else intra,
        clip.trajectory,
        clip.masks,
        side_channels=channels,
    )


def test_registered_as_generator() -> None:
    assert GENERATORS.get("warp") is WarpGenerator


@pytest.mark.parametrize(("traj", "bound"), [("pan", 30.0), ("shake", 30.0), ("dolly", 24.0)])
def test_known_poses_reproduce_visible_background(traj: str, bound: float) -> None:
    clip = make_scene(SceneConfig(traj=traj, objects=1, num_frames=9, width=128, height=128, motion=2.0))
    geometry = fit_geometry(clip.frames, clip.trajectory, clip.masks)
    out = WarpGenerator().generate(_conditions(clip, geometry))
    assert out.shape == clip.frames.shape and out.dtype == np.uint8
    scores = _visible_psnr(clip, out, geometry)
    assert min(scores) > bound, scores
    # and the rendering beats holding the intra frame
    hold = np.repeat(clip.frames[:1], len(clip.frames), 0)
    assert _psnr(out[1:], clip.frames[1:]) > _psnr(hold[1:], clip.frames[1:]) + 3


def _moving_square(n: int = 6, size: int = 96, step: tuple[int, int] = (5, 3)):
    """A textured square sliding over a static textured background; camera still."""
    rng = np.random.default_rng(3)
    bg = cv2.resize(
        rng.integers(60, 200, (12, 12, 3), dtype=np.uint8), (size, size), interpolation=cv2.INTER_CUBIC
    )
    obj = cv2.resize(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8), (28, 28), interpolation=cv2.INTER_CUBIC)
    frames = np.repeat(bg[None], n, 0)
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        x, y = 10 + step[0] * i, 20 + step[1] * i
        frames[i, y : y + 28, x : x + 28] = obj
        masks[i, y : y + 28, x : x + 28] = 1
    trajectory = Trajectory.identity(n, Intrinsics(1.0, 1.0))
    return frames, masks, trajectory


def test_foreground_follows_translated_mask() -> None:
    frames, masks, trajectory = _moving_square()
    n, h, w = masks.shape
    out = WarpGenerator().generate(GopConditions(n, h, w, frames[0], trajectory, masks))
    for i in range(1, n):
        inner = cv2.erode(masks[i], np.ones((5, 5), np.uint8)) > 0
        assert _psnr(out[i][inner], frames[i][inner]) > 30
    # without masks the object does not move: the last frame's object area is wrong
    static = WarpGenerator().generate(GopConditions(n, h, w, frames[0], trajectory, None))
    inner = cv2.erode(masks[-1], np.ones((5, 5), np.uint8)) > 0
    assert _psnr(static[-1][inner], frames[-1][inner]) < 25


def test_mosaic_fills_uncovered_background_with_real_pixels() -> None:
    frames, masks, trajectory = _moving_square()
    n, h, w = masks.shape
    geometry = SceneGeometry.at_infinity()
    mosaic = build_mosaic(frames, trajectory, masks, geometry)
    assert mosaic.layout.under is not None  # the square uncovers what it hid in frame 0
    channels = {"geometry": geometry.with_layout(mosaic.layout)}
    out = WarpGenerator().generate(
        GopConditions(n, h, w, mosaic.image, trajectory, masks, side_channels=channels)
    )
    plain = WarpGenerator().generate(GopConditions(n, h, w, frames[0], trajectory, masks))
    uncovered = (cv2.dilate(masks[0], np.ones((3, 3), np.uint8)) > 0) & (
        cv2.dilate(masks[-1], np.ones((9, 9), np.uint8)) == 0
    )
    assert uncovered.sum() > 100
    assert _psnr(out[-1][uncovered], frames[-1][uncovered]) > 35
    assert (
        _psnr(out[-1][uncovered], frames[-1][uncovered])
        > _psnr(plain[-1][uncovered], frames[-1][uncovered]) + 5
    )


def test_holes_are_filled_never_black() -> None:
    clip = make_scene(SceneConfig(traj="pan", objects=1, num_frames=9, width=96, height=96, motion=5.0))
    n, h, w = clip.frames.shape[:3]
    # no mosaic: everything that pans in from outside frame 0 must be inpainted
    out = WarpGenerator().generate(_conditions(clip))
    poses = relative_poses(clip.trajectory, n)
    k = clip.trajectory.intrinsics.matrix(w, h)
    xs, ys = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    sx, _, _ = unproject(SceneGeometry.at_infinity(), poses[-1], k, xs, ys, w, h)
    unseen = (sx < 0) | (sx > w)
    assert unseen.mean() > 0.25  # a large part of the last frame was never seen
    assert (out[-1][unseen].max(axis=-1) >= 8).all()  # it is filled, not black
    assert out[-1][unseen].std(axis=0).max() > 1.0  # with varying colours, not one flat value


def test_degrades_without_poses_masks_or_geometry() -> None:
    frames, masks, trajectory = _moving_square(n=4)
    n, h, w = masks.shape
    hold = WarpGenerator().generate(GopConditions(n, h, w, frames[0]))
    np.testing.assert_array_equal(hold, np.repeat(frames[:1], n, 0))
    only_masks = WarpGenerator().generate(GopConditions(n, h, w, frames[0], None, masks))
    assert only_masks.shape == (n, h, w, 3)
    short = Trajectory.identity(2, Intrinsics(1.0, 1.0))  # fewer poses than frames: holds the last
    assert WarpGenerator().generate(GopConditions(n, h, w, frames[0], short, masks)).shape == (n, h, w, 3)
    one = WarpGenerator().generate(GopConditions(1, h, w, frames[0], trajectory.slice(0, 1), masks[:1]))
    assert one.shape == (1, h, w, 3)
    small_intra = cv2.resize(frames[0], (w // 2, h // 2))  # a downscaled intra image is upsampled
    assert WarpGenerator().generate(GopConditions(n, h, w, small_intra, trajectory, masks)).shape == (
        n,
        h,
        w,
        3,
    )


def test_degenerate_geometry_and_poses_still_render() -> None:
    frames, masks, _ = _moving_square(n=4)
    n, h, w = masks.shape
    w2c = np.tile(np.eye(4), (n, 1, 1))
    w2c[:, 2, 3] = [0.0, 1.0, -40.0, 1e6]  # through the scene and far beyond it
    trajectory = Trajectory(Intrinsics(1.0, 1.0), w2c)
    geometry = SceneGeometry(np.array([[60000.0, -60000.0], [0.0, 1.0]]))
    out = WarpGenerator().generate(
        GopConditions(n, h, w, frames[0], trajectory, masks, side_channels={"geometry": geometry})
    )
    assert out.shape == (n, h, w, 3)
    singular = Trajectory(Intrinsics(1.0, 1.0), np.zeros((n, 4, 4)))
    np.testing.assert_array_equal(
        WarpGenerator().generate(GopConditions(n, h, w, frames[0], singular))[-1], frames[0]
    )


def test_layout_that_misses_the_frame_is_a_bitstream_error() -> None:
    frames, masks, trajectory = _moving_square(n=3)
    n, h, w = masks.shape
    bad = SceneGeometry.at_infinity().with_layout(MosaicLayout(w, h, 5, 0))
    with pytest.raises(BitstreamError):
        WarpGenerator().generate(
            GopConditions(n, h, w, frames[0], trajectory, masks, side_channels={"geometry": bad})
        )


def test_deterministic_end_to_end() -> None:
    clip = make_scene(SceneConfig(traj="orbit", objects=2, num_frames=6, width=96, height=96, motion=2.0))
    codec = GEOMETRY_CODECS.get("grid8")()
    runs = []
    for _ in range(2):
        geometry = fit_geometry(clip.frames, clip.trajectory, clip.masks)
        mosaic = build_mosaic(clip.frames, clip.trajectory, clip.masks, geometry)
        payload = codec.compress(geometry.with_layout(mosaic.layout))
        decoded = codec.decompress(payload)
        out = WarpGenerator().generate(_conditions(clip, decoded, mosaic.image))
        runs.append((payload, mosaic.image, out))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    np.testing.assert_array_equal(runs[0][2], runs[1][2])


def _bending_bar(n: int = 4, size: int = 128):
    """A red textured bar on a blue textured background whose right half bends up, more each frame."""
    rng = np.random.default_rng(5)
    background = np.zeros((size, size, 3), np.uint8)
    background[..., 2] = rng.integers(150, 256, (size, size))
    texture = np.zeros((size, size, 3), np.uint8)
    texture[..., 0] = rng.integers(150, 256, (size, size))
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        angle = np.deg2rad(20 * i)
        joint = (64, 64)
        tip = (round(joint[0] + 44 * np.cos(angle)), round(joint[1] - 44 * np.sin(angle)))
        cv2.line(masks[i], (20, 64), joint, 1, 16)
        cv2.line(masks[i], joint, tip, 1, 16)
    return np.where(masks[..., None] > 0, texture, background), masks


def _object_coloured(out: np.ndarray, masks: np.ndarray) -> float:
    """Fraction of the last frame's inner mask that shows the bar's texture (red), not the background."""
    inner = cv2.erode(masks[-1], np.ones((5, 5), np.uint8)) > 0
    pixels = out[-1][inner].astype(int)
    return float(np.mean(pixels[:, 0] > pixels[:, 2]))


def test_bent_object_is_filled_with_its_texture() -> None:
    frames, masks = _bending_bar()
    n, h, w = masks.shape
    conditions = GopConditions(n, h, w, frames[0], Trajectory.identity(n, Intrinsics(1.0, 1.0)), masks)

    def render(**options) -> np.ndarray:
        return WarpGenerator(WarpConfig(foreground=ForegroundConfig(**options))).generate(conditions)

    affine = _object_coloured(render(method="affine", snap=False), masks)
    spline = _object_coloured(render(method="tps", snap=False), masks)
    default = _object_coloured(WarpGenerator().generate(conditions), masks)
    assert affine < 0.9  # one affine map sends the bent half onto frame 0's background
    assert spline > 0.97 and spline > affine + 0.05
    assert default > 0.995  # with snapping, every inner pixel reads the object


def test_degenerate_masks_fall_back_and_still_render() -> None:
    frames, masks = _bending_bar(n=5)
    n, h, w = masks.shape
    masks[1] = 0
    masks[1, 40, 40] = 1  # a speck: no outline to bend
    masks[2] = 0
    masks[2, 30:90, 64] = 1  # a one-pixel line
    masks[3] = 0  # the object vanished
    out = WarpGenerator().generate(GopConditions(n, h, w, frames[0], None, masks))
    assert out.shape == (n, h, w, 3)
    assert _object_coloured(out[3:4], masks[:1]) == 0.0  # no object drawn: frame 0's place is inpainted
    # a speck in frame 0 gives no outline: the object is carried by its affine map alone
    speck = masks[1] > 0
    source = SourceObject.of(speck, ForegroundConfig())
    assert source is not None and source.outline is None
    box = (0, 0, w, h)
    bar = masks[4] > 0
    config = ForegroundConfig(snap=False)
    maps = object_maps(bar, SourceObject.of(speck, config), box, config)
    plain = ForegroundConfig(method="affine", snap=False)
    np.testing.assert_array_equal(maps[0], object_maps(bar, SourceObject.of(speck, plain), box, plain)[0])


def test_spline_fit_checks() -> None:
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], 1)
    assert np.array_equal(match_outline(np.roll(ring, 5, axis=0) + 0.01, ring), np.roll(ring, 5, axis=0))
    gx, gy = np.meshgrid(np.arange(4.0), np.arange(4.0))
    nodes = np.stack([gx, gy], -1)
    inside = np.ones((4, 4), bool)
    assert not folds(nodes, inside)
    assert folds(nodes[:, ::-1], inside)  # a mirrored map turns over
    with pytest.raises(ValueError):
        ForegroundConfig(method="mesh")
    with pytest.raises(ValueError):
        ForegroundConfig(iterations=0)


def test_foreground_transport_is_deterministic() -> None:
    frames, masks = _bending_bar()
    n, h, w = masks.shape
    conditions = GopConditions(n, h, w, frames[0], Trajectory.identity(n, Intrinsics(1.0, 1.0)), masks)
    np.testing.assert_array_equal(WarpGenerator().generate(conditions), WarpGenerator().generate(conditions))
