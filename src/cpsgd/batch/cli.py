"""``cpsgd batch encode|decode|bench``: a whole corpus, on local worker processes or on Ray."""

from __future__ import annotations

import argparse
from pathlib import Path

from cpsgd.batch.corpus import find_items
from cpsgd.batch.engines import ENGINES, make_engine
from cpsgd.batch.manifest import RESULTS_NAME
from cpsgd.batch.runner import DEFAULT_RETRIES, BatchSummary, make_tasks, run_batch
from cpsgd.batch.tasks import DECODE_FORMATS, Settings
from cpsgd.errors import CpsgdError, InputError
from cpsgd.generators import GENERATORS
from cpsgd.generators.diffusion import add_diffusion_decode_args
from cpsgd.intra import INTRA_CODECS
from cpsgd.masks import MASK_CODECS, SEGMENTERS
from cpsgd.pipeline import PRESETS, EncoderConfig
from cpsgd.poses import POSE_CODECS, POSE_ESTIMATORS


def _add_common(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("input", type=Path, help=f"folder of {what}, or a .csv/.jsonl manifest (column 'path'; "
                   "optional 'name', and for encoding 'poses' and 'masks')")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder (OUTDIR)")
    p.add_argument("--engine", choices=ENGINES, default="local", help="local process pool (default) or Ray")
    p.add_argument("--workers", type=int, help="local: worker processes; ray without --address: CPUs of the "
                   "private instance (default: all cores)")
    p.add_argument("--address", help="join this running Ray cluster (e.g. auto, ray://head:10001)")
    p.add_argument("--retries", type=int, default=DEFAULT_RETRIES,
                   help=f"tries after the first for a task that crashes (default {DEFAULT_RETRIES})")
    p.add_argument("--force", action="store_true", help="redo outputs that are already finished")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")


def _add_encoder_options(p: argparse.ArgumentParser) -> None:
    """The options of `cpsgd encode` that apply to every clip alike."""
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--bpp", type=float, help="target bits per pixel (default 0.003)")
    rate.add_argument("--preset", choices=sorted(PRESETS), help="named operating point")
    p.add_argument("--gop", type=int, default=25, help="maximum frames per group of pictures")
    p.add_argument("--size", type=int, help="center-crop to a square and resize to SIZE")
    p.add_argument("--frames", type=int, help="encode at most this many frames of each clip")
    p.add_argument("--fps", type=float, help="frame rate of folders of frames (default 25)")
    p.add_argument("--caption", help="text description sent with every clip")
    p.add_argument("--intra-codec", default="av1", choices=INTRA_CODECS.names())
    p.add_argument("--intra-quality", type=int, help="fixed intra quality (0-100) instead of a budget")
    p.add_argument("--pose-estimator", default="flow", choices=[*POSE_ESTIMATORS.names(), "none"])
    p.add_argument("--pose-codec", default="compact", choices=POSE_CODECS.names())
    p.add_argument("--segmenter", default="motion", choices=[*SEGMENTERS.names(), "none"])
    p.add_argument("--mask-codec", default="cabac", choices=MASK_CODECS.names())
    p.add_argument("--no-geometry", action="store_true", help="send no scene-geometry side channel")
    p.add_argument("--no-mosaic", action="store_true", help="send the plain first frame, not the background mosaic")


def _add_generator_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--generator", default="warp", choices=GENERATORS.names())
    add_diffusion_decode_args(p)


def add_batch_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "batch", help="encode, decode or benchmark a whole corpus (local processes or Ray)",
        description="One task per clip. Outputs are named after the inputs; OUTDIR/batch-results.jsonl "
        "records each one (hashes, bits, time, metrics), and a rerun skips finished outputs.",
    )
    sub = p.add_subparsers(dest="batch_command", required=True, parser_class=type(p))
    encode = sub.add_parser("encode", help="OUTDIR/<name>.cpsgd for every video")
    _add_common(encode, "videos (files or folders of frames)")
    _add_encoder_options(encode)
    decode = sub.add_parser("decode", help="OUTDIR/<name>/ (PNGs) or OUTDIR/<name>.mp4 for every .cpsgd")
    _add_common(decode, ".cpsgd files")
    decode.add_argument("--format", choices=DECODE_FORMATS, default="png", help="PNG folders (default) or videos")
    _add_generator_options(decode)
    bench = sub.add_parser("bench", help="encode every video, decode it, record bits, PSNR and MS-SSIM")
    _add_common(bench, "videos (files or folders of frames)")
    _add_encoder_options(bench)
    _add_generator_options(bench)
    p.set_defaults(handler=cmd_batch)
    return p


def settings_from_args(args: argparse.Namespace) -> Settings:
    op = args.batch_command
    if args.retries < 0:
        raise InputError("--retries must be 0 or more")
    generator = {}
    if op in ("decode", "bench"):
        options = tuple(sorted((k, v) for k, v in vars(args).items() if k.startswith("diffusion_")))
        generator = dict(generator=args.generator, generator_options=options)
    if op == "decode":
        return Settings(op, output_format=args.format, **generator)
    if args.fps is not None and not 0 < args.fps <= 1000:
        raise InputError(f"--fps {args.fps} is out of range")
    config = EncoderConfig(
        bpp=args.bpp, preset=args.preset, gop=args.gop, size=args.size, max_frames=args.frames,
        intra_codec=args.intra_codec, intra_quality=args.intra_quality, caption=args.caption,
        pose_estimator=None if args.pose_estimator == "none" else args.pose_estimator,
        pose_codec=args.pose_codec, segmenter=None if args.segmenter == "none" else args.segmenter,
        mask_codec=args.mask_codec, geometry=not args.no_geometry, mosaic=not args.no_mosaic,
    ).validated()
    return Settings(op, encoder=config, fps=args.fps, **generator)


def format_summary(summary: BatchSummary, outdir: Path) -> str:
    rate = summary.frames / summary.seconds if summary.seconds else 0.0
    lines = [
        f"{outdir}: {len(summary.done)} done, {len(summary.skipped)} already finished, {len(summary.failed)} failed; "
        f"{summary.frames} frames in {summary.seconds:.1f} s ({rate:.1f} frames/s)"
    ]
    lines += [f"  failed {row['name']}: {row['error']}" for row in summary.failed]
    return "\n".join(lines)


def cmd_batch(args: argparse.Namespace) -> None:
    settings = settings_from_args(args)
    items = find_items(args.input, streams=settings.op == "decode")
    if args.output.exists() and not args.output.is_dir():
        raise InputError(f"{args.output} exists and is not a folder")
    tasks = make_tasks(items, settings, args.output)
    with make_engine(args.engine, args.workers, args.address) as engine:
        summary = run_batch(tasks, engine, args.output, args.retries, args.force, progress=not args.quiet)
    if not args.quiet or summary.failed:
        print(format_summary(summary, args.output))
    if summary.failed:
        raise CpsgdError(
            f"{len(summary.failed)} of {len(tasks)} tasks failed (the others are finished); "
            f"see {args.output / RESULTS_NAME}"
        )
