"""Trajectory files other tools write: COLMAP models, text (cameras.txt + images.txt) or binary
(cameras.bin + images.bin, e.g. FlowMap's export), TUM RGB-D (``timestamp tx ty tz qx qy qz qw``,
camera-to-world), and RealEstate10K (:mod:`cpsgd.poses.re10k`); ``load_poses`` / ``save_poses``
pick the format for a path."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from cpsgd.errors import InputError
from cpsgd.poses.geometry import nearest_rotation
from cpsgd.poses.re10k import read_re10k, write_re10k
from cpsgd.poses.trajectory import Intrinsics, Trajectory

# Used when a format carries no intrinsics (TUM): a 60-degree horizontal field of view, square pixels.
DEFAULT_INTRINSICS = Intrinsics(fx=0.866, fy=0.866)

# COLMAP camera models whose first parameters are the pinhole ones: (focal count, parameter count).
_COLMAP_MODELS = {
    "SIMPLE_PINHOLE": (1, 3),
    "PINHOLE": (2, 4),
    "SIMPLE_RADIAL": (1, 4),
    "RADIAL": (1, 5),
    "OPENCV": (2, 8),
    "FULL_OPENCV": (2, 12),
    "SIMPLE_RADIAL_FISHEYE": (1, 4),
    "RADIAL_FISHEYE": (1, 5),
    "OPENCV_FISHEYE": (2, 8),
}


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read pose file {path}: {exc}") from None


def _numbers(path: Path, number: int, tokens: list[str]) -> np.ndarray:
    try:
        values = np.array([float(t) for t in tokens])
    except ValueError:
        raise InputError(f"{path}:{number}: expected numbers") from None
    if not np.all(np.isfinite(values)):
        raise InputError(f"{path}:{number}: non-finite number")
    return values


def _quaternions_to_matrices(path: Path, quats_xyzw: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(quats_xyzw, axis=1)
    if np.any(norms < 1e-6):
        raise InputError(f"{path}: a rotation quaternion is zero")
    return Rotation.from_quat(quats_xyzw / norms[:, None]).as_matrix()


# --- COLMAP ---------------------------------------------------------------------------------

# COLMAP binary model ids of the models above, and the parameter counts of the others it defines.
_COLMAP_MODEL_IDS = {
    0: "SIMPLE_PINHOLE", 1: "PINHOLE", 2: "SIMPLE_RADIAL", 3: "RADIAL", 4: "OPENCV", 5: "OPENCV_FISHEYE",
    6: "FULL_OPENCV", 8: "SIMPLE_RADIAL_FISHEYE", 9: "RADIAL_FISHEYE",
}
_UNSUPPORTED_COLMAP_MODELS = {7: ("FOV", 5), 10: ("THIN_PRISM_FISHEYE", 12)}

_Cameras = dict[int, tuple[Intrinsics, tuple[int, int]]]
_Record = tuple[str, np.ndarray, np.ndarray, int]  # name, quaternion (w x y z), translation, camera id


def _colmap_paths(path: Path) -> tuple[Path, Path, bool]:
    """cameras and images files of a model folder (also its sparse/0) or of one of the files, and
    whether they are the binary ones (``.bin``, what FlowMap and COLMAP write by default)."""
    if path.is_dir():
        for folder in (path, path / "sparse" / "0", path / "sparse"):
            for suffix in (".txt", ".bin"):
                if (folder / f"images{suffix}").is_file():
                    return folder / f"cameras{suffix}", folder / f"images{suffix}", suffix == ".bin"
        raise InputError(f"{path}: no COLMAP images.txt or images.bin in this folder")
    binary = path.suffix == ".bin"
    suffix = ".bin" if binary else ".txt"
    return path.parent / f"cameras{suffix}", path.parent / f"images{suffix}", binary


def _camera(
    path: Path, where: str, model: str, size: tuple[int, int], params: np.ndarray
) -> tuple[Intrinsics, tuple[int, int]]:
    focals = _COLMAP_MODELS[model][0]
    width, height = size
    fx = params[0]
    fy = params[1] if focals == 2 else params[0]
    cx, cy = params[focals], params[focals + 1]
    if width <= 0 or height <= 0 or fx <= 0 or fy <= 0 or not np.all(np.isfinite(params)):
        raise InputError(f"{path}{where}: invalid camera size or focal length")
    return Intrinsics(fx / width, fy / height, cx / width, cy / height), (width, height)


def _read_cameras_txt(path: Path) -> _Cameras:
    cameras: _Cameras = {}
    for number, line in enumerate(_read_lines(path), start=1):
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        model = tokens[1] if len(tokens) > 1 else ""
        if model not in _COLMAP_MODELS:
            raise InputError(f"{path}:{number}: unsupported camera model {model!r}")
        count = _COLMAP_MODELS[model][1]
        values = _numbers(path, number, [tokens[0], *tokens[2:]])
        if len(values) != 3 + count:
            raise InputError(f"{path}:{number}: {model} needs {count} parameters")
        cameras[int(values[0])] = _camera(path, f":{number}", model, (int(values[1]), int(values[2])), values[3:])
    return cameras


def _read_images_txt(path: Path) -> list[_Record]:
    # Pairs of lines (pose line, 2-D points line that may be empty) after the comments.
    lines = [(n, line) for n, line in enumerate(_read_lines(path), start=1) if not line.startswith("#")]
    records = []
    i = 0
    while i < len(lines):
        number, line = lines[i]
        tokens = line.split()
        if not tokens:
            i += 1
            continue
        if len(tokens) < 10:
            raise InputError(f"{path}:{number}: image line has {len(tokens)} fields, expected 10")
        values = _numbers(path, number, tokens[1:9])
        records.append((" ".join(tokens[9:]), values[:4], values[4:7], int(values[7])))
        i += 2  # skip the POINTS2D line
    return records


class _BinaryReader:
    """Little-endian fields of a COLMAP .bin file; every count is checked against what is left."""

    def __init__(self, path: Path) -> None:
        try:
            self.data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read pose file {path}: {exc}") from None
        self.path, self.offset = path, 0

    def read(self, fmt: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        if self.offset + size > len(self.data):
            raise InputError(f"{self.path}: truncated at byte {self.offset}")
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += size
        return values

    def count(self, item_bytes: int) -> int:
        (count,) = self.read("Q")
        if count * item_bytes > len(self.data) - self.offset:
            raise InputError(f"{self.path}: {count} entries do not fit in the file")
        return count

    def name(self) -> str:
        end = self.data.find(b"\0", self.offset)
        if end < 0:
            raise InputError(f"{self.path}: truncated image name")
        raw, self.offset = self.data[self.offset : end], end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{self.path}: image name is not UTF-8") from None

    def done(self) -> None:
        if self.offset != len(self.data):
            raise InputError(f"{self.path}: {len(self.data) - self.offset} unexpected bytes at the end")


def _read_cameras_bin(path: Path) -> _Cameras:
    reader = _BinaryReader(path)
    cameras: _Cameras = {}
    for _ in range(reader.count(24)):
        camera_id, model_id, width, height = reader.read("iiQQ")
        if model_id in _UNSUPPORTED_COLMAP_MODELS or model_id not in _COLMAP_MODEL_IDS:
            name = _UNSUPPORTED_COLMAP_MODELS.get(model_id, (f"id {model_id}",))[0]
            raise InputError(f"{path}: unsupported camera model {name}")
        model = _COLMAP_MODEL_IDS[model_id]
        params = np.array(reader.read(f"{_COLMAP_MODELS[model][1]}d"))
        cameras[camera_id] = _camera(path, f" (camera {camera_id})", model, (width, height), params)
    reader.done()
    return cameras


def _read_images_bin(path: Path) -> list[_Record]:
    reader = _BinaryReader(path)
    records = []
    for _ in range(reader.count(73)):  # id, 7 doubles, camera id, name's terminator, point count
        image_id, *pose, camera_id = reader.read("i7di")
        name = reader.name()
        points = reader.count(24)
        reader.offset += 24 * points  # x, y, point3D id: not needed for the poses
        values = np.array(pose)
        if not np.all(np.isfinite(values)):
            raise InputError(f"{path}: image {image_id} has a non-finite pose")
        records.append((name, values[:4], values[4:7], camera_id))
    reader.done()
    return records


def read_colmap(path: str | Path) -> tuple[Trajectory, list[str], tuple[int, int]]:
    """Read a COLMAP model, text (cameras.txt + images.txt) or binary (cameras.bin + images.bin).
    Returns the trajectory (images sorted by name, intrinsics of the first image's camera; lens
    distortion is ignored), the image names and (width, height)."""
    cameras_path, images_path, binary = _colmap_paths(Path(path))
    if binary:
        cameras, records = _read_cameras_bin(cameras_path), _read_images_bin(images_path)
    else:
        cameras, records = _read_cameras_txt(cameras_path), _read_images_txt(images_path)
    for name, _, _, camera_id in records:
        if camera_id not in cameras:
            raise InputError(f"{images_path}: image {name!r} refers to unknown camera {camera_id}")
    if not records:
        raise InputError(f"{images_path}: no images")
    records.sort(key=lambda r: r[0])
    quats_wxyz = np.array([r[1] for r in records])
    w2c = np.tile(np.eye(4), (len(records), 1, 1))
    w2c[:, :3, :3] = _quaternions_to_matrices(images_path, quats_wxyz[:, [1, 2, 3, 0]])
    w2c[:, :3, 3] = np.array([r[2] for r in records])
    intrinsics, size = cameras[records[0][3]]
    return Trajectory(intrinsics, w2c), [r[0] for r in records], size


def write_colmap(
    folder: str | Path, trajectory: Trajectory, width: int, height: int, names: list[str] | None = None
) -> None:
    """Write cameras.txt (one PINHOLE camera) and images.txt (no 2-D points) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    k = trajectory.intrinsics
    names = names or [f"frame_{i:05d}.png" for i in range(len(trajectory))]
    (folder / "cameras.txt").write_text(
        "# Camera list with one line of data per camera:\n"
        "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n"
        f"1 PINHOLE {width} {height} {k.fx * width:.9g} {k.fy * height:.9g} {k.cx * width:.9g} {k.cy * height:.9g}\n"
    )
    quats = Rotation.from_matrix(nearest_rotation(trajectory.rotations)).as_quat()  # x y z w
    lines = [
        "# Image list with two lines of data per image:",
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
        "#   POINTS2D[] as (X, Y, POINT3D_ID)",
    ]
    for i, (q, t, name) in enumerate(zip(quats, trajectory.translations, names), start=1):
        numbers = " ".join(f"{v:.12g}" for v in (q[3], q[0], q[1], q[2], *t))
        lines += [f"{i} {numbers} 1 {name}", ""]
    (folder / "images.txt").write_text("\n".join(lines) + "\n")


# --- TUM ------------------------------------------------------------------------------------


def read_tum(path: str | Path, intrinsics: Intrinsics | None = None) -> tuple[Trajectory, np.ndarray]:
    """Read a TUM trajectory (camera-to-world). Returns the trajectory and the timestamps
    (seconds). TUM files hold no intrinsics: ``intrinsics`` or DEFAULT_INTRINSICS is used."""
    path = Path(path)
    rows = []
    for number, line in enumerate(_read_lines(path), start=1):
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        if len(tokens) != 8:
            raise InputError(f"{path}:{number}: expected 8 numbers (timestamp tx ty tz qx qy qz qw)")
        rows.append(_numbers(path, number, tokens))
    if not rows:
        raise InputError(f"{path}: no poses")
    table = np.array(rows)
    c2w = np.tile(np.eye(4), (len(table), 1, 1))
    c2w[:, :3, :3] = _quaternions_to_matrices(path, table[:, 4:8])
    c2w[:, :3, 3] = table[:, 1:4]
    return Trajectory(intrinsics or DEFAULT_INTRINSICS, np.linalg.inv(c2w)), table[:, 0]


def write_tum(path: str | Path, trajectory: Trajectory, fps: float = 25.0) -> None:
    c2w = trajectory.camera_to_world()
    quats = Rotation.from_matrix(nearest_rotation(c2w[:, :3, :3])).as_quat()
    lines = ["# timestamp tx ty tz qx qy qz qw"]
    for i, (pose, q) in enumerate(zip(c2w, quats)):
        numbers = " ".join(f"{v:.12g}" for v in (*pose[:3, 3], *q))
        lines.append(f"{i / fps:.6f} {numbers}")
    Path(path).write_text("\n".join(lines) + "\n")


# --- adapting to the coded frame ------------------------------------------------------------


def crop_intrinsics(k: Intrinsics, height: int, width: int, box: tuple[int, int, int, int]) -> Intrinsics:
    """Normalised intrinsics of the crop ``box`` = (y0, x0, h, w) of a (height, width) image;
    resizing the crop afterwards keeps them (they are fractions of the image size)."""
    y0, x0, h, w = box
    return Intrinsics(k.fx * width / w, k.fy * height / h, (k.cx * width - x0) / w, (k.cy * height - y0) / h)


def square_crop_box(height: int, width: int) -> tuple[int, int, int, int]:
    """The centred square (y0, x0, side, side) the paper's protocol (``--size``) cuts out."""
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side, side


# --- picking the format ---------------------------------------------------------------------


def detect_format(path: str | Path) -> str:
    """'colmap', 'tum' or 're10k', from the path (COLMAP folder or images.txt/cameras.txt) or the
    number of fields on the first data line (8: TUM, 19: RealEstate10K)."""
    path = Path(path)
    if path.is_dir() or path.name in ("images.txt", "cameras.txt", "images.bin", "cameras.bin"):
        return "colmap"
    if not path.is_file():
        raise InputError(f"pose file not found: {path}")
    lines = _read_lines(path)
    data = [line.split() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if len(data) >= 1 and len(data[0]) == 8:
        return "tum"
    if len(data) >= 2 and len(data[1]) == 19:
        return "re10k"
    raise InputError(f"{path}: not a RealEstate10K, TUM or COLMAP pose file")


def load_poses(
    path: str | Path, intrinsics: Intrinsics | None = None, square_crop_of: tuple[int, int] | None = None
) -> Trajectory:
    """Read any supported trajectory file; ``intrinsics`` replaces the file's (or fills TUM's gap).
    ``square_crop_of``: the (height, width) of the frames the poses were taken on when the coded
    frames are their centred square crop (``--size``); the intrinsics then follow the crop."""
    kind = detect_format(path)
    if kind == "colmap":
        trajectory = read_colmap(path)[0]
    elif kind == "tum":
        trajectory = read_tum(path, intrinsics)[0]
    else:
        trajectory = read_re10k(path)[0]
    if intrinsics is not None:
        trajectory = Trajectory(intrinsics, trajectory.world_to_camera)
    if square_crop_of is not None:
        height, width = square_crop_of
        cropped = crop_intrinsics(trajectory.intrinsics, height, width, square_crop_box(height, width))
        trajectory = Trajectory(cropped, trajectory.world_to_camera)
    return trajectory


def save_poses(
    path: str | Path, trajectory: Trajectory, fps: float = 25.0, width: int = 512, height: int = 512
) -> None:
    """Write RealEstate10K text, or TUM for a ``.tum`` suffix, or a COLMAP model for a folder path
    (a path ending in '/' or without suffix that is an existing folder)."""
    path = Path(path)
    if path.is_dir():
        write_colmap(path, trajectory, width, height)
    elif path.suffix.lower() == ".tum":
        write_tum(path, trajectory, fps)
    else:
        write_re10k(path, trajectory, fps)
