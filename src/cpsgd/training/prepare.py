"""``cpsgd train prepare``: RealEstate10K camera files + the user's videos -> the training layout.

RealEstate10K ships per-clip camera files (line 1 the video's URL, then ``timestamp_us fx fy cx cy
0 0`` and a 3x4 world-to-camera matrix per frame); the videos are the user's own downloads, found
as ``VIDEOS/<clip id>.*`` or ``VIDEOS/<YouTube id>.*`` (the id in the file's URL). Each camera
line's frame is the decoded frame whose presentation time is nearest to its timestamp, so the
frames follow the file's timing, not a frame count. Output, per clip::

    OUT/train/<clip id>/frames/000000.png ...   (or OUT/val/<clip id>/... for the held-out split)
    OUT/train/<clip id>/poses.txt               the poses of the frames found, as RealEstate10K
    OUT/train/<clip id>/masks/000000.png ...    with a segmenter: its masks (255 = foreground)

Clips are assigned to the validation split by a hash of their id, so the split does not change
when clips are added.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from cpsgd.errors import InputError
from cpsgd.masks.base import Segmenter
from cpsgd.poses.re10k import read_re10k, write_re10k
from cpsgd.poses.trajectory import Trajectory
from cpsgd.training.data import FRAME_FOLDER, MASK_FOLDER, POSE_FILE

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".y4m"}
_YOUTUBE_ID = re.compile(r"(?:v=|youtu\.be/)([A-Za-z0-9_-]{6,})")


@dataclass
class PreparedClip:
    name: str
    split: str  # "train" or "val"
    frames: int
    poses_dropped: int  # camera lines past the end of the video


def _glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def find_video(camera_file: Path, videos: Path) -> Path | None:
    """The local video of a camera file: named by the clip id, else by the URL's YouTube id."""
    names = [camera_file.stem]
    try:
        match = _YOUTUBE_ID.search(camera_file.read_text().split("\n", 1)[0])
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read camera file {camera_file}: {exc}") from None
    if match:
        names.append(match.group(1))
    for name in names:
        for path in sorted(videos.glob(f"{_glob_escape(name)}.*")):
            if path.suffix.lower() in VIDEO_SUFFIXES:
                return path
    return None


def frames_at(video: Path, timestamps_us: np.ndarray) -> list[np.ndarray]:
    """RGB frames whose presentation times are nearest to the (ascending) timestamps; stops at
    the last timestamp within one frame interval of the video's end. Memory: two frames."""
    picked: list[np.ndarray] = []
    previous: tuple[float, np.ndarray] | None = None
    try:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                time_us = float(frame.pts * stream.time_base) * 1e6
                while len(picked) < len(timestamps_us) and time_us >= timestamps_us[len(picked)]:
                    wanted = timestamps_us[len(picked)]
                    if previous is not None and wanted - previous[0] < time_us - wanted:
                        picked.append(previous[1])
                    else:
                        picked.append(frame.to_ndarray(format="rgb24"))
                if len(picked) == len(timestamps_us):
                    break
                previous = (time_us, frame.to_ndarray(format="rgb24"))
            if previous is not None and len(picked) < len(timestamps_us):
                interval = 1e6 / float(stream.average_rate or 25)
                if timestamps_us[len(picked)] - previous[0] <= interval:
                    picked.append(previous[1])
    except (av.FFmpegError, IndexError) as exc:
        raise InputError(f"cannot read video {video}: {exc}") from None
    return picked


def validation_split(name: str, fraction: float) -> bool:
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def prepare_clip(
    camera_file: Path, video: Path, out_dir: Path, split: str, segmenter: Segmenter | None, gop: int = 25
) -> PreparedClip:
    import cv2

    trajectory, timestamps = read_re10k(camera_file)
    order = np.argsort(timestamps, kind="stable")
    frames = frames_at(video, timestamps[order].astype(np.float64))
    if len(frames) < 2:
        raise InputError(f"{video}: fewer than 2 frames at the times of {camera_file.name}")
    kept = order[: len(frames)]
    folder = out_dir / split / camera_file.stem
    (folder / FRAME_FOLDER).mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / FRAME_FOLDER / f"{i:06d}.png"), np.ascontiguousarray(frame[..., ::-1]))
    poses = Trajectory(trajectory.intrinsics, trajectory.world_to_camera[kept])
    url = camera_file.read_text().split("\n", 1)[0]
    write_re10k(folder / POSE_FILE, poses, header=url, timestamps_us=timestamps[kept])
    if segmenter is not None:
        (folder / MASK_FOLDER).mkdir(exist_ok=True)
        stack = np.stack(frames)
        for start in range(0, len(stack), gop):
            for i, mask in enumerate(segmenter.segment(stack[start : start + gop]), start=start):
                cv2.imwrite(str(folder / MASK_FOLDER / f"{i:06d}.png"), np.where(mask > 0, 255, 0).astype(np.uint8))
    return PreparedClip(camera_file.stem, split, len(frames), len(order) - len(frames))


def prepare(
    cameras: Path, videos: Path, out_dir: Path, val_fraction: float = 0.1, segmenter: Segmenter | None = None
) -> list[PreparedClip]:
    """Every camera file in ``cameras`` whose video is in ``videos``; the others are reported."""
    if not cameras.is_dir() or not videos.is_dir():
        raise InputError("--cameras and --videos must be folders")
    if not 0 <= val_fraction < 1:
        raise InputError("--val-fraction must be in [0, 1)")
    files = sorted(cameras.glob("*.txt"))
    if not files:
        raise InputError(f"no RealEstate10K camera files (*.txt) in {cameras}")
    prepared = []
    for camera_file in files:
        video = find_video(camera_file, videos)
        if video is None:
            print(f"{camera_file.name}: no video in {videos}, skipped")
            continue
        split = "val" if validation_split(camera_file.stem, val_fraction) else "train"
        prepared.append(prepare_clip(camera_file, video, out_dir, split, segmenter))
    if not prepared:
        raise InputError(f"none of the {len(files)} camera files has its video in {videos}")
    return prepared
