"""Training clips: folders of frames with a RealEstate10K pose file and, optionally, mask frames.

Layout of ``--data DIR`` (DIR itself may also be one clip)::

    DIR/<clip>/000000.png ...        frames in name order (PNG or JPEG), or in DIR/<clip>/frames/
                                     (the layout `cpsgd synth` and `cpsgd train prepare` write)
    DIR/<clip>/poses.txt             RealEstate10K camera file, one pose per frame
    DIR/<clip>/masks/000000.png ...  label masks (0 = background), one per frame

Each sample is a window of consecutive frames, centre-cropped to the training aspect ratio and
resized; the intrinsics follow the crop so the Plücker rays stay those of the real camera.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from cpsgd.errors import InputError
from cpsgd.generators.diffusion.plucker import plucker_embedding
from cpsgd.poses.formats import crop_intrinsics
from cpsgd.poses.re10k import read_re10k
from cpsgd.poses.trajectory import Trajectory

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
POSE_FILE = "poses.txt"
MASK_FOLDER = "masks"
FRAME_FOLDER = "frames"


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _clip_frames(folder: Path) -> list[Path]:
    """A clip's frames: the images in the folder, else in its frames/ subfolder."""
    return _images(folder) or (_images(folder / FRAME_FOLDER) if (folder / FRAME_FOLDER).is_dir() else [])


@dataclass
class Clip:
    frames: list[Path]
    trajectory: Trajectory | None
    masks: list[Path] | None


def scan_clips(root: str | Path, need_poses: bool, need_masks: bool, min_frames: int) -> list[Clip]:
    """Every clip under ``root`` with what the adapter being trained needs; clips that are too short
    are skipped, clips with inconsistent files are errors."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"training data folder {root} does not exist")
    folders = [root] if _clip_frames(root) else sorted(p for p in root.iterdir() if p.is_dir() and _clip_frames(p))
    clips = []
    for folder in folders:
        frames = _clip_frames(folder)
        trajectory = masks = None
        if need_poses:
            if not (folder / POSE_FILE).is_file():
                raise InputError(f"{folder} has no {POSE_FILE} (RealEstate10K camera file)")
            trajectory, _ = read_re10k(folder / POSE_FILE)
            if len(trajectory) != len(frames):
                raise InputError(f"{folder}: {len(trajectory)} poses for {len(frames)} frames")
        if need_masks:
            masks = _images(folder / MASK_FOLDER) if (folder / MASK_FOLDER).is_dir() else []
            if len(masks) != len(frames):
                raise InputError(f"{folder}: {len(masks)} masks in {MASK_FOLDER}/ for {len(frames)} frames")
        if len(frames) >= min_frames:
            clips.append(Clip(frames, trajectory, masks))
    if not clips:
        raise InputError(f"no clip of at least {min_frames} frames in {root}")
    return clips


def _crop_box(height: int, width: int, target_h: int, target_w: int) -> tuple[int, int, int, int]:
    """Largest centred (y0, x0, h, w) box with the target aspect ratio."""
    scale = min(height / target_h, width / target_w)
    h, w = round(target_h * scale), round(target_w * scale)
    return (height - h) // 2, (width - w) // 2, h, w


class ClipDataset(Dataset):
    """Windows of ``num_frames`` frames (every ``stride``-th frame) from the clips.

    An item holds ``frames`` (F, 3, H, W) float in [-1, 1], ``first`` (H, W, 3) uint8 (the
    conditioning image), and ``plucker`` (F, 6, H, W) and/or ``masks`` (F, 1, H, W) in [-1, 1]."""

    def __init__(self, clips: list[Clip], num_frames: int, height: int, width: int, stride: int = 1) -> None:
        self.clips, self.num_frames, self.height, self.width, self.stride = (
            clips,
            num_frames,
            height,
            width,
            stride,
        )
        span = (num_frames - 1) * stride + 1
        self.windows = [(c, s) for c, clip in enumerate(clips) for s in range(len(clip.frames) - span + 1)]
        if not self.windows:
            raise InputError(f"no clip has the {span} frames a training window needs")

    def __len__(self) -> int:
        return len(self.windows)

    def _load(
        self, path: Path, size: tuple[int, int], box: tuple[int, ...], flags: int, interp: int
    ) -> np.ndarray:
        image = cv2.imread(str(path), flags)
        if image is None:
            raise InputError(f"cannot read image {path}")
        if image.shape[:2] != size:
            raise InputError(f"{path} is {image.shape[1]}x{image.shape[0]}, its clip {size[1]}x{size[0]}")
        y0, x0, h, w = box
        return cv2.resize(image[y0 : y0 + h, x0 : x0 + w], (self.width, self.height), interpolation=interp)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        clip_index, start = self.windows[index]
        clip = self.clips[clip_index]
        picks = range(start, start + self.num_frames * self.stride, self.stride)
        first = cv2.imread(str(clip.frames[start]), cv2.IMREAD_COLOR)
        if first is None:
            raise InputError(f"cannot read image {clip.frames[start]}")
        src_h, src_w = first.shape[:2]
        box = _crop_box(src_h, src_w, self.height, self.width)
        frames = np.stack(
            [
                self._load(clip.frames[i], (src_h, src_w), box, cv2.IMREAD_COLOR, cv2.INTER_AREA)[..., ::-1]
                for i in picks
            ]
        )
        item = {
            "frames": torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1.0,
            "first": torch.from_numpy(np.ascontiguousarray(frames[0])),
        }
        if clip.trajectory is not None:
            trajectory = Trajectory(
                crop_intrinsics(clip.trajectory.intrinsics, src_h, src_w, box),
                clip.trajectory.world_to_camera[list(picks)],
            )
            item["plucker"] = torch.from_numpy(plucker_embedding(trajectory, self.height, self.width))
        if clip.masks is not None:
            masks = np.stack(
                [
                    self._load(clip.masks[i], (src_h, src_w), box, cv2.IMREAD_GRAYSCALE, cv2.INTER_NEAREST)
                    for i in picks
                ]
            )
            item["masks"] = torch.from_numpy(masks > 0).float()[:, None] * 2 - 1
        return item
