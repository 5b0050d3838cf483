"""``cpsgd poses estimate|compress|decompress``: argparse sub-commands (wired into cpsgd.cli).

Long inputs are handled in windows of ``--gop`` frames that share their boundary frame, so that the
windows' relative trajectories chain into one trajectory for the whole video. A standalone pose
file (``P.bin``) is: magic ``CPSP``, version (u8), codec code (u8), frame count and window length
(varints), then one length-prefixed codec payload per window.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cpsgd.bitstream.bytes import ByteReader, ByteWriter
from cpsgd.errors import BitstreamError, InputError
from cpsgd.poses.base import POSE_CODECS, POSE_ESTIMATORS
from cpsgd.poses.codec_paper import MAX_FRAMES
from cpsgd.poses.formats import load_poses, save_poses
from cpsgd.poses.trajectory import Intrinsics, Trajectory

MAGIC = b"CPSP"
VERSION = 1
MAX_VIDEO_FRAMES = 1_000_000  # 11 hours at 25 fps; a trajectory of them takes 128 MB


def _check_output(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise InputError(f"{path} already exists (use --force to overwrite it)")
    if not path.parent.exists():
        raise InputError(f"the folder {path.parent} does not exist")


def windows(num_frames: int, length: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of windows of ``length`` frames, each starting on the previous one's last frame."""
    start = 0
    while True:
        stop = min(start + length, num_frames)
        yield start, stop
        if stop >= num_frames:
            return
        start = stop - 1


def chain(parts: list[Trajectory], intrinsics: Intrinsics) -> Trajectory:
    """Join window trajectories (each relative to its first frame, which is the previous window's
    last) into one trajectory whose frame 0 is the identity."""
    poses = [np.eye(4)]
    for part in parts:
        base = poses[-1]
        poses.extend(part.relative_to_first().world_to_camera[1:] @ base)
    return Trajectory(intrinsics, np.stack(poses))


# --- estimate -------------------------------------------------------------------------------


def _frame_windows(frames: Iterator[np.ndarray], length: int) -> Iterator[np.ndarray]:
    block: list[np.ndarray] = []
    for frame in frames:
        block.append(frame)
        if len(block) == length:
            yield np.stack(block)
            block = [block[-1]]
    if len(block) > 1:
        yield np.stack(block)


def cmd_estimate(args: argparse.Namespace) -> int:
    from cpsgd.video import open_video

    if args.gop < 2:
        raise InputError("--gop must be at least 2")
    output = Path(args.output)
    _check_output(output, args.force)
    source = open_video(args.input, size=args.size, max_frames=args.frames)
    masks = open_video(args.masks, size=args.size).iter_frames() if args.masks else None
    estimator = POSE_ESTIMATORS.get(args.estimator)()
    parts: list[Trajectory] = []
    mask_block: list[np.ndarray] = []
    for block in _frame_windows(source.iter_frames(), args.gop):
        fg = None
        if masks is not None:
            mask_block = mask_block[-1:]  # the shared boundary frame
            while len(mask_block) < len(block):
                frame = next(masks, None)
                if frame is None:
                    raise InputError(f"{args.masks} has fewer mask frames than the video")
                mask_block.append((frame[:, :, 0] > 127).astype(np.uint8))
            fg = np.stack(mask_block)
            if fg.shape != block.shape[:3]:
                raise InputError(f"masks are {fg.shape[2]}x{fg.shape[1]}, frames {block.shape[2]}x{block.shape[1]}")
        parts.append(estimator.estimate(block, fg))
    if not parts:
        raise InputError(f"{args.input}: need at least 2 frames to estimate camera motion")
    focal = float(np.median([p.intrinsics.fx for p in parts]))
    first = parts[0].intrinsics
    intrinsics = Intrinsics(focal, focal * first.fy / first.fx, first.cx, first.cy)
    trajectory = chain(parts, intrinsics)
    save_poses(output, trajectory, fps=float(source.fps), width=source.width, height=source.height)
    print(f"wrote {len(trajectory)} poses to {output} (fx={intrinsics.fx:.4f}, fy={intrinsics.fy:.4f})")
    return 0


# --- compress / decompress ------------------------------------------------------------------


def compress_file(trajectory: Trajectory, codec_name: str, window: int) -> bytes:
    codec = POSE_CODECS.get(codec_name)()
    if not 2 <= window <= MAX_FRAMES:
        raise InputError(f"--gop must be 2..{MAX_FRAMES}")
    writer = ByteWriter()
    writer.raw(MAGIC)
    writer.u8(VERSION)
    writer.u8(codec.code)
    writer.varint(len(trajectory))
    writer.varint(window)
    for start, stop in windows(len(trajectory), window):
        writer.blob(codec.compress(trajectory.slice(start, stop)))
    return writer.getvalue()


def decompress_file(data: bytes) -> tuple[Trajectory, str]:
    """The chained trajectory and the codec name."""
    reader = ByteReader(data, "pose file")
    if reader.raw(4) != MAGIC:
        raise BitstreamError("not a cpsgd pose file (bad magic)")
    version = reader.u8()
    if version != VERSION:
        raise BitstreamError(f"unsupported pose file version {version}")
    codec = POSE_CODECS.by_code(reader.u8())()
    num_frames = reader.varint(MAX_VIDEO_FRAMES)
    window = reader.varint(MAX_FRAMES)
    if num_frames < 1 or window < 2:
        raise BitstreamError("pose file: invalid frame count or window length")
    # Every window needs at least one payload byte: a lying frame count runs out of data quickly.
    parts = [codec.decompress(reader.blob(), stop - start) for start, stop in windows(num_frames, window)]
    reader.expect_end()
    return chain(parts, parts[0].intrinsics), codec.name


def cmd_compress(args: argparse.Namespace) -> int:
    output = Path(args.output)
    _check_output(output, args.force)
    trajectory = load_poses(args.input)
    data = compress_file(trajectory, args.codec, args.gop)
    output.write_bytes(data)
    windows_count = sum(1 for _ in windows(len(trajectory), args.gop))
    print(f"{len(trajectory)} poses -> {len(data)} bytes ({args.codec}; {8 * len(data) / windows_count:.0f} bits "
          f"per window of {args.gop} frames, file header included)")
    return 0


def cmd_decompress(args: argparse.Namespace) -> int:
    output = Path(args.output)
    _check_output(output, args.force)
    try:
        data = Path(args.input).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {args.input}: {exc}") from None
    trajectory, codec = decompress_file(data)
    save_poses(output, trajectory, fps=args.fps)
    print(f"wrote {len(trajectory)} poses ({codec} codec) to {output}")
    return 0


def add_pose_commands(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``poses`` with its three sub-commands to a ``parser.add_subparsers()`` object; each
    stores its handler as the ``handler`` default (``args.handler(args)`` returns 0)."""
    poses = subparsers.add_parser("poses", help="camera poses: estimate, compress, decompress")
    sub = poses.add_subparsers(dest="poses_command", required=True)

    p = sub.add_parser("estimate", help="estimate camera intrinsics and poses from a video")
    p.add_argument("input", help="video file or folder of frames")
    p.add_argument("-o", "--output", required=True, help="pose file: RealEstate10K text (.tum: TUM)")
    p.add_argument("--masks", help="folder of foreground masks (PNG, 255 = object) left out of the fit")
    p.add_argument("--estimator", default="flow", choices=POSE_ESTIMATORS.names(), help="pose estimator (default flow)")
    p.add_argument("--gop", type=int, default=25, help="frames per estimation window (default 25)")
    p.add_argument("--size", type=int, help="center-crop to a square and resize to SIZE first")
    p.add_argument("--frames", type=int, help="use at most this many frames")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(handler=cmd_estimate)

    p = sub.add_parser("compress", help="compress a pose file (RealEstate10K, TUM or COLMAP)")
    p.add_argument("input", help="pose file, or COLMAP folder / images.txt / images.bin")
    p.add_argument("-o", "--output", required=True, help="compressed pose file to write")
    p.add_argument("--codec", default="compact", choices=POSE_CODECS.names(), help="pose codec (default compact)")
    p.add_argument("--gop", type=int, default=25, help="frames per coded window (default 25)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(handler=cmd_compress)

    p = sub.add_parser("decompress", help="decode a compressed pose file")
    p.add_argument("input", help="compressed pose file (from poses compress)")
    p.add_argument("-o", "--output", required=True, help="pose file: RealEstate10K text (.tum: TUM)")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate for the timestamps (default 25)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(handler=cmd_decompress)
    return poses
