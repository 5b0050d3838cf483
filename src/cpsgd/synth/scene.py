"""Synthetic clips with exact ground truth: a pinhole camera moving through a textured static 3D
scene (ground, back wall with posters, boxes at several depths) with independently moving textured
foreground objects.

World coordinates are camera 0's (OpenCV axes: x right, y down, z forward; units are arbitrary
"metres"); the camera stands 1.6 units above the ground.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cpsgd.errors import InputError
from cpsgd.poses.trajectory import Intrinsics, Trajectory
from cpsgd.synth.render import Quad, pixel_rays, render
from cpsgd.synth.textures import load_texture, texture_size
from cpsgd.synth.trajectories import TRAJECTORIES, camera_to_world, rotation_y

GROUND_Y = 1.6
WALL_Z = 12.0
_TO_LIGHT = np.array([-0.3, -1.0, -0.5]) / np.linalg.norm([-0.3, -1.0, -0.5])
_X, _Y, _Z = np.eye(3)
_BOX_TEXTURES = ("ihc", "hubble", "camera", "coffee", "rocket", "gravel")
_OBJECT_TEXTURES = ("chelsea", "astronaut")
MAX_OBJECTS = len(_OBJECT_TEXTURES)


@dataclass(frozen=True)
class SceneConfig:
    traj: str = "pan"  # static | pan | dolly | orbit | shake
    objects: int = 1  # independently moving foreground objects, 0..2
    num_frames: int = 25
    width: int = 256
    height: int = 256
    fps: float = 25.0
    seed: int = 0
    motion: float = 1.0  # scales camera speed/shake amplitude (1 = the defaults in trajectories.py)
    object_speed: float = 1.0  # scales foreground object speed
    fov_deg: float = 60.0  # horizontal field of view; square pixels
    noise: float = 1.5  # std of Gaussian sensor noise, grey levels (0 disables)

    def __post_init__(self) -> None:
        if self.traj not in TRAJECTORIES:
            raise InputError(f"unknown trajectory {self.traj!r}; choose one of {', '.join(TRAJECTORIES)}")
        if not 0 <= self.objects <= MAX_OBJECTS:
            raise InputError(f"objects must be 0..{MAX_OBJECTS}, got {self.objects}")
        if not 1 <= self.num_frames <= 100_000:
            raise InputError(f"num_frames must be 1..100000, got {self.num_frames}")
        if not (8 <= self.width <= 8192 and 8 <= self.height <= 8192):
            raise InputError(f"size must be 8..8192 pixels a side, got {self.width}x{self.height}")
        if not 0 <= self.seed < 2**63:
            raise InputError(f"seed must be a non-negative integer, got {self.seed}")
        if not (self.fps > 0 and np.isfinite(self.fps)):
            raise InputError(f"fps must be positive, got {self.fps}")
        if not 10.0 <= self.fov_deg <= 120.0:
            raise InputError(f"fov_deg must be 10..120, got {self.fov_deg}")
        for name in ("motion", "object_speed", "noise"):
            value = getattr(self, name)
            if not (0.0 <= value <= 100.0):
                raise InputError(f"{name} must be 0..100, got {value}")


@dataclass
class SyntheticClip:
    frames: np.ndarray  # (N, H, W, 3) uint8 RGB
    masks: np.ndarray  # (N, H, W) uint8 labels: 0 background, k = object k
    trajectory: Trajectory  # world-to-camera, frame 0 = identity
    depths: np.ndarray  # (N, H, W) float32 camera z of every pixel (inf: sky, hit nothing)
    fps: float
    config: SceneConfig


def intrinsics_for(config: SceneConfig) -> Intrinsics:
    focal = 0.5 * config.width / np.tan(np.radians(config.fov_deg) / 2)
    return Intrinsics(focal / config.width, focal / config.height, 0.5, 0.5)


def _shade(facing: np.ndarray) -> float:
    """Fixed Lambertian shading from one distant light: view-independent, so colours stay
    consistent across frames."""
    return float(0.45 + 0.55 * max(0.0, facing @ _TO_LIGHT))


def _fit(texture: str, size_u: float, size_v: float) -> tuple[float, float]:
    """Texels per unit that stretch the whole photo over a size_u x size_v patch."""
    width, height = texture_size(texture)
    return width / size_u, height / size_v


def _box(x0: float, x1: float, z0: float, z1: float, top: float, textures: list[str]) -> list[Quad]:
    """A cuboid standing on the ground; photos stay upright and unmirrored seen from outside."""
    h = GROUND_Y - top
    faces = [  # (origin, axis_u, axis_v, size_u, facing)
        ((x0, top, z0), _X, _Y, x1 - x0, -_Z),  # front
        ((x1, top, z1), -_X, _Y, x1 - x0, _Z),  # back
        ((x0, top, z1), -_Z, _Y, z1 - z0, -_X),  # left
        ((x1, top, z0), _Z, _Y, z1 - z0, _X),  # right
    ]
    quads = [
        Quad(np.array(origin, float), u, v, (size, h), tex, _fit(tex, size, h), facing,
             _shade(facing), one_sided=True)
        for (origin, u, v, size, facing), tex in zip(faces, textures)
    ]
    top_tex = textures[4]
    quads.append(Quad(np.array([x0, top, z0]), _X, _Z, (x1 - x0, z1 - z0), top_tex,
                      _fit(top_tex, x1 - x0, z1 - z0), -_Y, _shade(-_Y), one_sided=True))
    return quads


def static_scene(rng: np.random.Generator) -> list[Quad]:
    """Ground, back wall with two posters, three boxes at depths 5-10 (positions jittered by seed)."""
    inf = float("inf")
    quads = [
        Quad(np.array([0.0, GROUND_Y, 0.0]), _X, _Z, (inf, inf), "grass", (512 / 2.5, 512 / 2.5),
             -_Y, _shade(-_Y)),
        Quad(np.array([0.0, 0.0, WALL_Z]), _X, _Y, (inf, inf), "brick", (512 / 3.0, 512 / 3.0),
             -_Z, _shade(-_Z)),
    ]
    for tex, (x, y, w, h) in zip(("rocket", "coffee"), ((-4.6, -3.6, 3.2, 1.6), (0.8, -4.4, 3.6, 1.8))):
        x, y = x + rng.uniform(-0.3, 0.3), y + rng.uniform(-0.3, 0.3)
        quads.append(Quad(np.array([x, y, WALL_Z - 0.02]), _X, _Y, (w, h), tex, _fit(tex, w, h),
                          -_Z, _shade(-_Z)))
    boxes = ((-3.2, -1.8, 5.0, 6.2, -0.2), (2.2, 3.4, 7.0, 8.2, -0.8), (-0.6, 0.8, 8.5, 9.5, 0.6))
    for x0, x1, z0, z1, top in boxes:
        dx, dz = rng.uniform(-0.3, 0.3, size=2)
        faces = [str(t) for t in rng.permutation(_BOX_TEXTURES)[:5]]
        quads += _box(x0 + dx, x1 + dx, z0 + dz, z1 + dz, top, faces)
    return quads


@dataclass(frozen=True)
class ObjectPath:
    """An elliptical textured card moving on a bounded smooth 3D path, turning about its vertical
    axis and breathing slightly (the only non-rigid part)."""

    label: int
    texture: str
    centre: tuple[float, float, float]
    swing: tuple[float, float, float]  # amplitude of the sine motion per axis
    omega: float  # radians per frame
    phase: float
    radii: tuple[float, float]
    bounce: float  # height of |sin| hops

    def quad(self, frame: int) -> Quad:
        a = self.omega * frame + self.phase
        offsets = np.array(self.swing) * np.array([np.sin(a), np.sin(2 * a), np.sin(a + 1.0)])
        centre = np.array(self.centre) + offsets - np.array([0.0, self.bounce * abs(np.sin(2.5 * a)), 0.0])
        turn = rotation_y(0.35 * np.sin(1.5 * a))
        breathe = 1.0 + 0.04 * np.sin(5.0 * a)
        ru, rv = self.radii[0] * breathe, self.radii[1] / breathe
        axis_u, axis_v = turn @ _X, _Y
        facing = turn @ -_Z
        return Quad(centre - ru * axis_u - rv * axis_v, axis_u, axis_v, (2 * ru, 2 * rv), self.texture,
                    _fit(self.texture, 2 * ru, 2 * rv), facing, _shade(facing), label=self.label,
                    ellipse=True)


def object_paths(count: int, speed: float, rng: np.random.Generator) -> list[ObjectPath]:
    phases = rng.uniform(0, 2 * np.pi, size=MAX_OBJECTS)
    paths = [
        ObjectPath(1, "chelsea", (-0.8, 0.85, 3.2), (1.2, 0.05, 0.2), 0.0375 * speed, phases[0],
                    (0.55, 0.4), 0.25),
        ObjectPath(2, "astronaut", (1.3, 1.0, 4.6), (0.25, 0.05, 1.2), 0.04 * speed, phases[1],
                    (0.45, 0.45), 0.0),
    ]
    return paths[:count]


def make_scene(config: SceneConfig) -> SyntheticClip:
    """Render a clip; the same config always gives the same arrays."""
    layout_rng, traj_rng, object_rng, noise_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(4)
    )
    static = static_scene(layout_rng)
    movers = object_paths(config.objects, config.object_speed, object_rng)
    names = {q.texture for q in static} | {m.texture for m in movers}
    textures = {name: load_texture(name) for name in names}

    intrinsics = intrinsics_for(config)
    k = intrinsics.matrix(config.width, config.height)
    c2w = camera_to_world(config.traj, config.num_frames, config.motion, traj_rng)
    w2c = np.tile(np.eye(4), (config.num_frames, 1, 1))
    w2c[:, :3, :3] = np.transpose(c2w[:, :3, :3], (0, 2, 1))
    w2c[:, :3, 3] = -np.einsum("nij,nj->ni", w2c[:, :3, :3], c2w[:, :3, 3])
    w2c += 0.0  # turns -0.0 into 0.0, so pose files do not print "-0"

    rays = pixel_rays(k, config.width, config.height)
    shape = (config.num_frames, config.height, config.width)
    frames = np.empty((*shape, 3), np.uint8)
    masks = np.empty(shape, np.uint8)
    depths = np.empty(shape, np.float32)
    for i in range(config.num_frames):
        quads = static + [m.quad(i) for m in movers]
        out = render(quads, textures, w2c[i], k, rays)
        image = out.image * 255.0
        if config.noise > 0:
            image += noise_rng.standard_normal(image.shape, dtype=np.float32) * config.noise
        frames[i] = np.clip(np.rint(image), 0, 255)
        masks[i] = out.labels
        depths[i] = out.depth
    return SyntheticClip(frames, masks, Trajectory(intrinsics, w2c), depths, config.fps, config)
