"""The CPU generator: a layered geometric renderer.

Background: the decoded intra frame, or the background mosaic sent in its place, reprojected into
every frame with the decoded camera poses and the scene-geometry side channel (rotation is an exact
homography; translation uses the coarse inverse depth). The intra frame's foreground is hidden from
this layer and its place filled from the mosaic's under-strip or, where nothing was seen, inpainted
once per GoP. Foreground: the intra frame's objects carried along the decoded masks (by the affine
map the encoder sent, or else one fitted between the masks and bent by a thin-plate spline between
their outlines; see ``foreground``) and composited with feathered edges.

Side channels read from ``GopConditions.side_channels``: ``"geometry"`` (a ``SceneGeometry``; its
``layout`` says whether ``intra`` is a mosaic) and ``"objects"`` (an ``ObjectMotion``). Without
poses the background is static; without masks there is no foreground layer; without geometry the
background is at infinity; without object motion the objects move by their masks' shapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from cpsgd.errors import BitstreamError
from cpsgd.generators.base import GENERATORS, Generator, GopConditions
from cpsgd.generators.foreground import (
    ForegroundConfig,
    SourceObject,
    densify,
    grid_nodes,
    node_lookup,
    object_maps,
    transport,
)
from cpsgd.geometry.fill import fill_holes
from cpsgd.geometry.model import MosaicLayout, SceneGeometry, relative_poses, unproject
from cpsgd.objects.model import ObjectMotion, object_labels
from cpsgd.poses.trajectory import Trajectory



@dataclass(frozen=True)
class WarpConfig:
    map_step: int = 8  # the background map is computed every map_step pixels, then interpolated
    feather: float = 1.5  # sigma in pixels of the foreground alpha edge
    hide_radius: int = 4  # pixels around the intra frame's foreground kept out of the background
    pad: float = 0.25  # margin (fraction of the frame) filled around the canvas once per GoP
    foreground: ForegroundConfig = field(default_factory=ForegroundConfig)  # how objects are carried


@dataclass(frozen=True)
class Scene:
    """What the decoder holds for one GoP once the side channels are parsed."""

    frame0: np.ndarray  # the intra frame (H, W, 3)
    background: np.ndarray  # padded, hole-free background canvas
    origin: tuple[int, int]  # frame 0's top-left pixel inside ``background``


def unpack_intra(
    intra: np.ndarray, height: int, width: int, layout: MosaicLayout | None
) -> tuple[np.ndarray, MosaicLayout, np.ndarray | None]:
    """Split the decoded intra image into (canvas, layout, under-strip or None) at frame scale."""
    if layout is None:
        layout = MosaicLayout(width, height, 0, 0)
    if not layout.contains_frame(height, width):
        raise BitstreamError("geometry section: mosaic layout does not contain the frame")
    rows, cols = layout.image_shape
    if intra.shape[:2] != (rows, cols):
        intra = cv2.resize(
            intra, (cols, rows), interpolation=cv2.INTER_AREA if intra.shape[0] > rows else cv2.INTER_CUBIC
        )
    canvas = intra[: layout.height]
    strip = None
    if layout.under:
        rows, cols = layout.strip_shape
        block = intra[layout.height : layout.height + rows, :cols]
        strip = cv2.resize(block, layout.under[2:], interpolation=cv2.INTER_CUBIC)
    return canvas, layout, strip


def intra_frame(conditions: GopConditions) -> np.ndarray:
    """The GoP's frame 0: the decoded intra picture, or, when it is a background mosaic (the
    geometry side channel's layout says so), the frame's window inside it."""
    h, w = conditions.height, conditions.width
    geometry = conditions.side_channels.get("geometry")
    canvas, layout, _ = unpack_intra(conditions.intra, h, w, geometry.layout if geometry else None)
    return np.ascontiguousarray(canvas[layout.y0 : layout.y0 + h, layout.x0 : layout.x0 + w])


def prepare_scene(conditions: GopConditions, geometry: SceneGeometry | None, config: WarpConfig) -> Scene:
    h, w = conditions.height, conditions.width
    canvas, layout, strip = unpack_intra(conditions.intra, h, w, geometry.layout if geometry else None)
    x0, y0 = layout.x0, layout.y0
    frame0 = np.ascontiguousarray(canvas[y0 : y0 + h, x0 : x0 + w])
    canvas = canvas.copy()
    holes = np.zeros(canvas.shape[:2], bool)
    if conditions.masks is not None:
        fg = (conditions.masks[0] > 0).astype(np.uint8)
        r = config.hide_radius
        fg = cv2.dilate(fg, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0
        holes[y0 : y0 + h, x0 : x0 + w] = fg
    if strip is not None:
        ux, uy, uw, uh = layout.under  # type: ignore[misc]
        box = (slice(y0 + uy, y0 + uy + uh), slice(x0 + ux, x0 + ux + uw))
        canvas[box] = np.where(holes[box][..., None], strip, canvas[box])
        holes[box] = False
    px, py = round(config.pad * w), round(config.pad * h)
    padded = cv2.copyMakeBorder(canvas, py, py, px, px, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    holes = cv2.copyMakeBorder(holes.astype(np.uint8), py, py, px, px, cv2.BORDER_CONSTANT, value=1) > 0
    return Scene(frame0, fill_holes(padded, holes), (x0 + px, y0 + py))


def background_maps(
    geometry: SceneGeometry,
    poses: np.ndarray,
    k: np.ndarray,
    height: int,
    width: int,
    origin: tuple[int, int],
    step: int,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per frame, in turn, the (map_x, map_y) float32 remap tables into the padded background canvas."""
    nodes_at = grid_nodes((0, 0, width, height), step) + 0.5  # unproject takes pixel-area coordinates
    gx, gy = nodes_at[..., 0], nodes_at[..., 1]
    lookup = node_lookup(width, height, step)
    for pose in poses:
        sx, sy, _ = unproject(geometry, pose, k, gx, gy, width, height)
        nodes = np.stack([sx - 0.5 + origin[0], sy - 0.5 + origin[1]], -1)
        # degenerate poses or geometry: keep the tables finite (out of range reads the border)
        nodes = np.clip(np.nan_to_num(nodes, nan=-1e5), -1e5, 1e5).astype(np.float32)
        yield densify(nodes, lookup)


@GENERATORS.register("warp")
class WarpGenerator(Generator):
    def __init__(self, config: WarpConfig | None = None) -> None:
        self.config = config or WarpConfig()

    def generate(self, conditions: GopConditions) -> np.ndarray:
        out = np.empty((conditions.num_frames, conditions.height, conditions.width, 3), np.uint8)
        for i, frame in enumerate(self.frames(conditions)):
            out[i] = frame
        return out

    def frames(self, conditions: GopConditions) -> Iterator[np.ndarray]:
        c, cfg = conditions, self.config
        n, h, w = c.num_frames, c.height, c.width
        geometry = c.side_channels.get("geometry")
        if geometry is not None and not isinstance(geometry, SceneGeometry):
            raise TypeError("side channel 'geometry' must be a SceneGeometry")
        masks = c.masks
        if masks is not None and masks.shape != (n, h, w):
            raise ValueError(f"masks have shape {masks.shape}, expected {(n, h, w)}")
        scene = prepare_scene(c, geometry, cfg)
        poses, k = self._poses(c.trajectory, n, h, w)
        maps = background_maps(
            geometry or SceneGeometry.at_infinity(), poses, k, h, w, scene.origin, cfg.map_step
        )
        motion = c.side_channels.get("objects")
        if motion is not None and not isinstance(motion, ObjectMotion):
            raise TypeError("side channel 'objects' must be an ObjectMotion")
        objects = self._objects(masks)
        for i, (mx, my) in enumerate(maps):
            # bicubic: bilinear reads at fractional offsets blur the finest detail (VMAF -0.1 to -0.8)
            frame = cv2.remap(scene.background, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
            if objects:
                sent = {} if motion is None else {label: t[i] for label, t in motion.transforms.items()}
                frame = self._composite(frame, scene.frame0, masks[i], i, objects, sent)  # type: ignore[index]
            yield frame

    def _poses(self, trajectory: Trajectory | None, n: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """Poses relative to frame 0 and K; a missing or unusable trajectory means a still camera."""
        still = np.tile(np.eye(4), (n, 1, 1)), np.array([[w, 0, w / 2], [0, h, h / 2], [0, 0, 1.0]])
        if trajectory is None or len(trajectory) == 0:
            return still
        try:
            poses = relative_poses(trajectory, n)
        except np.linalg.LinAlgError:
            return still
        k = trajectory.intrinsics.matrix(w, h)
        if not (np.isfinite(poses).all() and np.isfinite(k).all() and abs(np.linalg.det(k)) > 0):
            return still
        return poses, k

    def _objects(self, masks: np.ndarray | None) -> dict[int, SourceObject]:
        """The intra frame's objects by label: only they have a texture to carry."""
        if masks is None:
            return {}
        config = self.config.foreground
        sources = {label: SourceObject.of(masks[0] == label, config) for label in object_labels(masks[0])}
        return {label: s for label, s in sources.items() if s is not None}

    def _composite(
        self,
        frame: np.ndarray,
        frame0: np.ndarray,
        mask: np.ndarray,
        i: int,
        objects: dict[int, SourceObject],
        sent: dict[int, np.ndarray],
    ) -> np.ndarray:
        """``sent``: label -> the encoder's affine map for frame i (the object motion side channel)."""
        h, w = frame.shape[:2]
        out = frame.copy()
        margin = int(np.ceil(3 * self.config.feather)) + 1
        for label, source in objects.items():
            m_i = mask == label
            if not m_i.any():
                continue
            # blend only around the object: the feathered alpha vanishes beyond the margin
            bx, by, bw, bh = cv2.boundingRect(m_i.astype(np.uint8))
            x0, y0 = max(bx - margin, 0), max(by - margin, 0)
            x1, y1 = min(bx + bw + margin, w), min(by + bh + margin, h)
            roi = (slice(y0, y1), slice(x0, x1))
            if i == 0:
                moved = frame0[roi].astype(np.float32)
            else:
                box = (x0, y0, x1 - x0, y1 - y0)
                maps = object_maps(m_i, source, box, self.config.foreground, sent.get(label))
                moved = transport(frame0, maps).astype(np.float32)
            alpha = cv2.GaussianBlur(m_i[roi].astype(np.float32), (0, 0), self.config.feather)[..., None]
            base = out[roi].astype(np.float32)
            out[roi] = np.clip(base + alpha * (moved - base) + 0.5, 0, 255).astype(np.uint8)
        return out
