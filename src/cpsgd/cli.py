"""The `cpsgd` command line. A user error prints one line and exits with status 2.

Only the sub-command named on the command line is built and imported, so that `cpsgd --help`,
`cpsgd info` and error messages start quickly; the stages (torch, OpenCV, SciPy, ...) load when
a command runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NoReturn, Sequence

from cpsgd import __version__
from cpsgd.errors import BitstreamError, CpsgdError, InputError

if TYPE_CHECKING:
    from cpsgd.bitstream.container import StreamHeader
    from cpsgd.generators import Generator
    from cpsgd.video import VideoSource

STREAM_SUFFIX = ".cpsgd"


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and still exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" after every option that has a default worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _existing(text: str) -> Path:
    """An input path, checked while parsing so that a typo fails before the stages load."""
    if not Path(text).exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    return Path(text)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _add_encode(sub: argparse._SubParsersAction) -> None:
    from cpsgd.bitstream.container import GENERATOR_CODES
    from cpsgd.cli_options import add_encoder_options, add_raw_input_options
    from cpsgd.masks.cli import add_sam2_options

    p = sub.add_parser("encode", help=COMMANDS["encode"][0], formatter_class=DefaultsHelpFormatter)
    p.add_argument("input", type=_existing, help="video file (anything FFmpeg reads), .y4m, raw .yuv (with --raw-size), "
                   "folder of PNG/JPEG frames, or a DAVIS JPEGImages/480p/<sequence> folder")
    p.add_argument("-o", "--output", type=Path, required=True, help=f"the {STREAM_SUFFIX} file to write")
    add_encoder_options(p)
    add_raw_input_options(p)
    p.add_argument("--generator", default="warp", choices=GENERATOR_CODES,
                   help="the decoder the stream is made for: warp (the rate control renders with it) "
                   "or diffusion (the paper's streams: frame 0, text, poses, masks; the preset splits the bits)")
    p.add_argument("--poses", type=Path, help="camera poses to send instead of estimating them "
                   "(RealEstate10K, TUM, or a COLMAP model folder, text or binary; one pose per frame)")
    p.add_argument("--masks", type=Path, help="foreground masks to send instead of segmenting "
                   "(folder of PNGs, one per frame, DAVIS annotation layout)")
    add_sam2_options(p)
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(handler=cmd_encode)


def cmd_encode(args: argparse.Namespace) -> None:
    from cpsgd.cli_options import encoder_config_from_args, frame_rate_from_args, raw_format_from_args
    from cpsgd.video import open_video
    from cpsgd.video.writer import check_output, commit_path, create_temporary

    if args.output.suffix.lower() != STREAM_SUFFIX:
        raise InputError(f"OUT must be a {STREAM_SUFFIX} file, not {args.output.name} (decode writes videos)")
    inputs = tuple(path for path in (args.input, args.poses, args.masks) if path)
    args.output = check_output(args.output, args.force, inputs=inputs)
    config = encoder_config_from_args(args, args.generator)
    source = open_video(args.input, size=config.size, max_frames=config.max_frames,
                        fps=frame_rate_from_args(args), raw=raw_format_from_args(args))
    # The stages load once the options and the input have passed their checks.
    from cpsgd.masks.cli import make_segmenter
    from cpsgd.masks.io import MaskFolder
    from cpsgd.pipeline import encode_video
    from cpsgd.poses import load_poses

    if args.captioner and not config.caption:  # the captioner's description is sent as the text section
        config = replace(config, caption=describe_first_frame(source, args.captioner, args.device)).validated()
    trajectory = load_poses(args.poses, square_crop_of=source.crop_from) if args.poses else None
    masks = MaskFolder(args.masks, (source.height, source.width), config.size) if args.masks else None
    segmenter = make_segmenter(args, config.caption) if config.segmenter == "sam2" and not args.masks else None
    tmp = create_temporary(args.output)
    try:
        report = encode_video(source, tmp, config, trajectory, masks, not args.quiet, segmenter)
        commit_path(tmp, args.output)
    finally:
        tmp.unlink(missing_ok=True)
    missed = None if config.intra_quality is not None else report.missed_rate(config.target_bpp())
    if missed:
        print(f"warning: {missed}", file=sys.stderr)
    if not args.quiet:
        print(
            f"{args.output}: {plural(report.num_frames, 'frame')} {report.width}x{report.height} in "
            f"{plural(len(report.gops), 'GoP')}, {report.total_bytes:,} bytes, {report.bpp:.5f} BPP"
        )


def describe_first_frame(source: VideoSource, captioner: Path, device: str) -> str:
    from cpsgd.masks.prompts import vlm_captioner

    describe = vlm_captioner(captioner, device)
    return describe(next(iter(source.iter_frames())))


def _add_decode(sub: argparse._SubParsersAction) -> None:
    from cpsgd.cli_options import add_generator_options

    p = sub.add_parser("decode", help=COMMANDS["decode"][0], formatter_class=DefaultsHelpFormatter)
    p.add_argument("input", type=_existing, help=f"the {STREAM_SUFFIX} file to decode")
    p.add_argument("-o", "--output", type=Path, required=True, help="folder of PNGs, or .mp4/.mkv/.y4m")
    p.add_argument("--keep-going", action="store_true", help="skip damaged GoPs and write the rest")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    add_generator_options(p)
    p.set_defaults(handler=cmd_decode)


def _generator_for(header: StreamHeader, args: argparse.Namespace) -> Generator:
    """The generator asked for, else the one the stream was made for."""
    from cpsgd.generators import GENERATORS

    if args.generator is None and header.generator == "diffusion" and args.diffusion_model is None:
        raise InputError("this stream was made for the diffusion generator: give --model DIR (a local "
                         "Stable Video Diffusion directory), or decode it with --generator warp")
    return GENERATORS.get(args.generator or header.generator).from_cli_args(args)


def _open_stream(path: Path):
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file")
    return open(path, "rb")


def cmd_decode(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from cpsgd.bitstream.container import BitstreamReader
    from cpsgd.pipeline import decode_gops
    from cpsgd.video import open_writer

    damaged: list[str] = []
    with _open_stream(args.input) as file:
        reader = BitstreamReader(file)
        header = reader.header
        generator = _generator_for(header, args)
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
        print(f"{args.output}: {plural(writer.count, 'frame')}")


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help=COMMANDS["info"][0])
    p.add_argument("input", type=Path, help=f"the {STREAM_SUFFIX} file to read")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-gops", action="store_true", help="totals only")
    p.set_defaults(handler=cmd_info)


def cmd_info(args: argparse.Namespace) -> None:
    from cpsgd.bitstream.info import format_table, inspect_stream

    with _open_stream(args.input) as file:
        info = inspect_stream(file)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
    else:
        print(format_table(info, per_gop=not args.no_gops))


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help=COMMANDS["demo"][0], formatter_class=DefaultsHelpFormatter)
    p.add_argument("-o", "--output", type=Path, default=Path("cpsgd-demo"), help="folder for the demo's files")
    p.add_argument("--force", action="store_true", help="reuse an output folder the demo did not make")
    p.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> None:
    from cpsgd.demo import run_demo

    run_demo(args.output, force=args.force)


# name: (one line for `cpsgd --help`, the function that adds the full sub-command, or its "module:name")
COMMANDS: dict[str, tuple[str, Callable[[argparse._SubParsersAction], object] | str]] = {
    "encode": ("compress a video", _add_encode),
    "decode": ("regenerate a video from a .cpsgd file", _add_decode),
    "info": ("exact bits per part and per GoP", _add_info),
    "demo": ("synthesise a clip, encode, decode, and show the result", _add_demo),
    "synth": ("render a synthetic clip with exact ground truth", "cpsgd.synth.cli:add_synth_command"),
    "poses": ("camera trajectories: estimate, compress, decompress", "cpsgd.poses.cli:add_pose_commands"),
    "masks": ("moving-object masks: estimate, compress, decompress", "cpsgd.masks.cli:add_mask_commands"),
    "bench": ("rate-distortion benchmark against x264, x265 and SVT-AV1", "cpsgd.bench.cli:add_bench_command"),
    "batch": ("encode or decode a folder or manifest of videos", "cpsgd.batch.cli:add_batch_command"),
    "train": ("train the diffusion generator's adapters (GPU)", "cpsgd.training:add_train_command"),
}


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser, with the full options of the sub-command named in ``argv`` (the others listed only)."""
    parser = OneLineParser(prog="cpsgd", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"cpsgd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser, metavar="COMMAND")
    named = next((arg for arg in argv if not arg.startswith("-")), None)
    for name, (summary, adder) in COMMANDS.items():
        if name == named:
            if isinstance(adder, str):
                module, _, function = adder.partition(":")
                adder = getattr(importlib.import_module(module), function)
            adder(sub)
        else:
            sub.add_parser(name, help=summary)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
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
