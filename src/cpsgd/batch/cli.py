"""``cpsgd batch encode|decode|bench``: a whole corpus, on local worker processes or on Ray."""

from __future__ import annotations

import argparse
from pathlib import Path

from cpsgd.batch.corpus import find_items
from cpsgd.batch.engines import ENGINES, make_engine
from cpsgd.batch.manifest import RESULTS_NAME
from cpsgd.batch.runner import DEFAULT_RETRIES, BatchSummary, make_tasks, run_batch
from cpsgd.batch.tasks import DECODE_FORMATS, Settings
from cpsgd.cli_options import add_encoder_options, add_generator_options, encoder_config_from_args, frame_rate_from_args
from cpsgd.errors import CpsgdError, InputError


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


def add_batch_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "batch", help="encode, decode or benchmark a whole corpus (local processes or Ray)",
        description="One task per clip. Outputs are named after the inputs; OUTDIR/batch-results.jsonl "
        "records each one (hashes, bits, time, metrics), and a rerun skips finished outputs.",
    )
    sub = p.add_subparsers(dest="batch_command", required=True, parser_class=type(p))
    encode = sub.add_parser("encode", help="OUTDIR/<name>.cpsgd for every video")
    _add_common(encode, "videos (files or folders of frames)")
    add_encoder_options(encode)
    decode = sub.add_parser("decode", help="OUTDIR/<name>/ (PNGs) or OUTDIR/<name>.mp4 for every .cpsgd")
    _add_common(decode, ".cpsgd files")
    decode.add_argument("--format", choices=DECODE_FORMATS, default="png", help="PNG folders (default) or videos")
    add_generator_options(decode)
    bench = sub.add_parser("bench", help="encode every video, decode it, record bits, PSNR and MS-SSIM")
    _add_common(bench, "videos (files or folders of frames)")
    add_encoder_options(bench)
    add_generator_options(bench)
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
    frame_rate_from_args(args)  # validates --fps; the task keeps the float
    config = encoder_config_from_args(args)
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
