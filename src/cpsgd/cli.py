"""The `cpsgd` command line. A user error prints one line and exits with status 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn, Sequence

from cpsgd import __version__
from cpsgd.bitstream.container import BitstreamReader
from cpsgd.bitstream.info import format_table, inspect_stream
from cpsgd.batch import add_batch_command
from cpsgd.bench import add_bench_command
from cpsgd.cli_options import add_encoder_options, add_generator_options, encoder_config_from_args, frame_rate_from_args
from cpsgd.errors import BitstreamError, CpsgdError, InputError
from cpsgd.generators import GENERATORS
from cpsgd.masks.cli import add_mask_commands, add_sam2_options, make_segmenter
from cpsgd.masks.io import MaskFolder
from cpsgd.pipeline import decode_gops, encode_video
from cpsgd.poses import load_poses
from cpsgd.poses.cli import add_pose_commands
from cpsgd.synth import add_synth_command
from cpsgd.training import add_train_command
from cpsgd.video import open_video, open_writer
from cpsgd.video.writer import check_output, commit_path, create_temporary


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and still exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _add_encode(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="compress a video")
    p.add_argument("input", type=Path, help="video file, .y4m, or folder of PNG/JPEG frames")
    p.add_argument("-o", "--output", type=Path, required=True, help="the .cpsgd file to write")
    add_encoder_options(p)
    p.add_argument("--poses", type=Path, help="camera poses to send instead of estimating them "
                   "(RealEstate10K, TUM, or a COLMAP text model folder; one pose per frame)")
    p.add_argument("--masks", type=Path, help="foreground masks to send instead of segmenting "
                   "(folder of PNGs, one per frame, DAVIS annotation layout)")
    add_sam2_options(p)
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(handler=cmd_encode)


def cmd_encode(args: argparse.Namespace) -> None:
    inputs = tuple(path for path in (args.input, args.poses, args.masks) if path)
    args.output = check_output(args.output, args.force, inputs=inputs)
    config = encoder_config_from_args(args)
    fps = frame_rate_from_args(args)
    source = open_video(args.input, size=config.size, max_frames=config.max_frames, fps=fps)
    trajectory = load_poses(args.poses) if args.poses else None
    masks = MaskFolder(args.masks, (source.height, source.width), config.size) if args.masks else None
    segmenter = make_segmenter(args) if config.segmenter == "sam2" and not args.masks else None
    tmp = create_temporary(args.output)
    try:
        report = encode_video(source, tmp, config, trajectory, masks, not args.quiet, segmenter)
        commit_path(tmp, args.output)
    finally:
        tmp.unlink(missing_ok=True)
    if not args.quiet:
        print(
            f"{args.output}: {report.num_frames} frames {report.width}x{report.height} in "
            f"{len(report.gops)} GoPs, {report.total_bytes:,} bytes, {report.bpp:.5f} BPP"
        )


def _add_decode(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("decode", help="regenerate a video from a .cpsgd file")
    p.add_argument("input", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="folder of PNGs, or .mp4/.mkv/.y4m")
    p.add_argument("--keep-going", action="store_true", help="skip damaged GoPs and write the rest")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-q", "--quiet", action="store_true")
    add_generator_options(p)
    p.set_defaults(handler=cmd_decode)


def _open_stream(path: Path):
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file")
    return open(path, "rb")


def cmd_decode(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    generator = GENERATORS.get(args.generator).from_cli_args(args)
    damaged: list[str] = []
    with _open_stream(args.input) as file:
        reader = BitstreamReader(file)
        header = reader.header
        writer = open_writer(args.output, header.fps, args.force, header.num_frames, inputs=(args.input,))
        try:
            with tqdm(total=reader.header.num_frames, unit="frame", desc="decode", disable=args.quiet, leave=False) as bar:
                for gop in decode_gops(reader, generator, keep_going=args.keep_going, lazy=True):
                    if gop.frames is None:
                        damaged.append(gop.damage or f"GoP {gop.index}")
                        continue
                    for frame in gop.frames:
                        writer.write(frame)
                        bar.update(1)
            if not writer.count:
                raise BitstreamError(f"no GoP could be decoded (first: {damaged[0]}): nothing written")
        except BaseException:
            writer.abort()
            raise
        writer.close()
    if damaged:
        raise BitstreamError(
            f"skipped {len(damaged)} damaged GoP(s), first: {damaged[0]}; wrote the other {writer.count} frames to {args.output}"
        )
    if not args.quiet:
        print(f"{args.output}: {writer.count} frames")


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="exact bits per part and per GoP")
    p.add_argument("input", type=Path)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-gops", action="store_true", help="totals only")
    p.set_defaults(handler=cmd_info)


def cmd_info(args: argparse.Namespace) -> None:
    with _open_stream(args.input) as file:
        info = inspect_stream(file)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
    else:
        print(format_table(info, per_gop=not args.no_gops))


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="synthesise a clip, encode, decode, and show the result")
    p.add_argument("-o", "--output", type=Path, default=Path("cpsgd-demo"), help="folder for the demo's files")
    p.add_argument("--force", action="store_true", help="reuse an output folder the demo did not make")
    p.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> None:
    from cpsgd.demo import run_demo

    run_demo(args.output, force=args.force)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="cpsgd", description=__doc__)
    parser.add_argument("--version", action="version", version=f"cpsgd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for add in (
        _add_encode, _add_decode, _add_info, _add_demo, add_synth_command,
        add_pose_commands, add_mask_commands, add_bench_command, add_batch_command, add_train_command,
    ):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except CpsgdError as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"cpsgd: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cpsgd: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and friends
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
