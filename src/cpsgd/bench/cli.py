"""``cpsgd bench``: rate-distortion benchmark of cpsgd against tuned x264, x265 and SVT-AV1."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cpsgd.bench.anchors import DEFAULT_SCALE_FRACTIONS, scales_for
from cpsgd.bench.codecs import ALL_CODECS, DEFAULT_CODECS, DEFAULT_TARGETS
from cpsgd.bench.datasets import Protocol, find_sources, load_sequence
from cpsgd.bench.metrics import missing_packages
from cpsgd.bench.optional import OptionalMetrics
from cpsgd.bench.report import existing_report, write_report
from cpsgd.bench.run import ALL_METRICS, DEFAULT_METRICS, BenchConfig, all_points, estimate_seconds, run_bench
from cpsgd.errors import InputError


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError("values must be positive")
    return values


def _names(choices: tuple[str, ...]):
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in text.split(",") if n.strip())
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            given = ", ".join(unknown) or "empty list"
            raise argparse.ArgumentTypeError(f"unknown {given}; choose from {', '.join(choices)}")
        return names

    return parse


def add_bench_command(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "bench",
        help="rate-distortion benchmark against x264, x265 and SVT-AV1",
        description="Code every sequence of DATASET with each codec, score it, and write results.jsonl, "
        "summary.md, RD plots and index.html to REPORT_DIR. Finished points are not recomputed.",
    )
    p.add_argument("dataset", type=Path, help="DAVIS-layout folder, folder of videos, a video, or a .txt list")
    p.add_argument("-o", "--output", type=Path, required=True, help="report folder (REPORT_DIR)")
    p.add_argument("--codecs", type=_names(ALL_CODECS), default=DEFAULT_CODECS,
                   help=f"comma-separated, from {', '.join(ALL_CODECS)} (default: {','.join(DEFAULT_CODECS)})")
    p.add_argument("--bpp", type=_floats, default=DEFAULT_TARGETS,
                   help="target rates: cpsgd's operating points and the summary's columns "
                   f"(default {','.join(f'{t:g}' for t in DEFAULT_TARGETS)})")
    p.add_argument("--frames", type=int, default=25, help="first frames of each sequence (default 25)")
    p.add_argument("--size", type=int, default=512, help="centre-crop square size (default 512)")
    fractions = ",".join(f"{f:g}" for f in DEFAULT_SCALE_FRACTIONS)
    p.add_argument("--scales", type=lambda t: tuple(int(v) for v in _floats(t)),
                   help="anchor encode sizes in pixels, at most --size; frames are downscaled from "
                   f"--size and upscaled back after decoding (default {fractions} times --size)")
    p.add_argument("--metrics", type=lambda t: ALL_METRICS if t.strip() == "all" else _names(ALL_METRICS)(t),
                   help=f"comma-separated, from {', '.join(ALL_METRICS)}, or 'all' (default: "
                   f"{','.join(DEFAULT_METRICS)}; poses and masks re-estimate every encode and cost more "
                   "than the rest together; vmaf and niqe need the bench extra)")
    p.add_argument("--device", default="cpu", help="torch device for VMAF and learned metrics")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--generator", default="warp", help="cpsgd's decoder-side generator (default warp)")
    p.add_argument("--model", type=Path, help="--generator diffusion: local SVD directory (diffusers layout)")
    p.add_argument("--adapters", type=Path, help="--generator diffusion: adapters folder from `cpsgd train`")
    p.add_argument("--gop", type=int, help="cpsgd's longest GoP (default: the encoder's, 25)")
    p.add_argument("--video-bpp", type=float, default=0.003, help="rate of the side-by-side videos")
    p.add_argument("--no-videos", action="store_true", help="leave the side-by-side videos out (the PNG strips stay)")
    p.add_argument("--lpips-weights", type=lambda t: tuple(Path(v) for v in t.split(",")), default=(),
                   help="AlexNet features + LPIPS heads state dicts (comma-separated files)")
    p.add_argument("--clip-model", type=Path, help="local CLIP model folder (transformers layout)")
    p.add_argument("--aesthetic-head", type=Path, help="VBench aesthetic linear head state dict")
    p.add_argument("--fvd-weights", type=Path,
                   help="Kinetics-400 I3D state dict (.safetensors or torch) for FVD; needs 16+ frames")
    p.add_argument("--force", action="store_true",
                   help="overwrite the report files of REPORT_DIR (its results.jsonl is always kept and reused)")
    p.set_defaults(handler=run_bench_command)
    return p


def _metrics(requested: tuple[str, ...] | None) -> tuple[str, ...]:
    """The metrics to compute: those asked for, which must be installable here, or the default
    ones whose packages are installed (with a one-line note for those left out)."""
    missing = {name: why for name in ALL_METRICS if (why := missing_packages(name))}
    if requested is not None:
        for name in requested:
            if name in missing:
                raise InputError(f"--metrics {name} needs {missing[name]}: pip install 'cpsgd[bench]'")
        return requested
    if missing:
        print(f"bench: {' and '.join(missing)} left out: they need {', '.join(sorted(set(missing.values())))} "
              "(pip install 'cpsgd[bench]')", file=sys.stderr)
    return tuple(name for name in DEFAULT_METRICS if name not in missing)


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    if args.frames < 1:
        raise InputError("--frames must be at least 1")
    if not 16 <= args.size <= 4096:
        raise InputError("--size must be 16 to 4096")
    if args.generator == "diffusion" and args.model is None:
        raise InputError("--generator diffusion needs --model DIR (a local SVD diffusers directory)")
    if args.gop is not None and not 1 <= args.gop <= 1024:
        raise InputError("--gop must be 1 to 1024")
    if args.scales is not None and any(not 16 <= s <= args.size for s in args.scales):
        raise InputError(f"--scales must be 16 to --size ({args.size}): anchors are downscaled from the working size")
    for path in (*args.lpips_weights, args.clip_model, args.aesthetic_head, args.fvd_weights):
        if path is not None and not path.exists():
            raise InputError(f"{path} does not exist")
    return BenchConfig(
        dataset=args.dataset,
        out_dir=args.output,
        codecs=args.codecs,
        targets=args.bpp,
        protocol=Protocol(args.frames, args.size),
        scales=args.scales if args.scales is not None else scales_for(args.size),
        metrics=_metrics(args.metrics),
        optional=OptionalMetrics(args.lpips_weights, args.clip_model, args.aesthetic_head, args.fvd_weights),
        device=args.device,
        generator=args.generator,
        generator_options=tuple(
            (key, str(path)) for key, path in (("model_dir", args.model), ("adapters_dir", args.adapters)) if path
        ),
        gop=args.gop,
        video_bpp=args.video_bpp,
        videos=not args.no_videos,
    )


def bench(config: BenchConfig, progress: bool = True, jobs: int = 1, force: bool = False) -> Path:
    """Run (or resume) the benchmark and write its report; return index.html's path. An existing
    report is overwritten only with ``force`` (checked before any work)."""
    found = existing_report(config.out_dir)
    if found and not force:
        raise InputError(f"{found} exists: pass --force to overwrite the report (results.jsonl is kept and reused)")
    if progress:
        seconds, count = estimate_seconds(config, jobs)
        print(f"bench: {count} points to code and score, about {max(1, round(seconds / 60))} min here "
              "(from per-point costs measured on 2 cores; longer on a busy machine)", file=sys.stderr)
    rows = run_bench(config, progress, jobs)
    sources = {s.name: s for s in find_sources(config.dataset)}
    keys = {(p.codec, p.key) for p in all_points(config)}
    rows = [r for r in rows if r["sequence"] in sources and (r["codec"], r["point"]) in keys]
    if not rows:
        raise InputError(f"{config.dataset}: nothing to benchmark")

    def load_frames(name: str):
        seq = load_sequence(sources[name], config.protocol)
        return seq.frames, seq.fps

    video_bpp = config.video_bpp if config.videos else None
    return write_report(rows, config.out_dir, config.targets, all_points(config), load_frames, video_bpp)


def run_bench_command(args: argparse.Namespace) -> int:
    if not 1 <= args.jobs <= 256:
        raise InputError("--jobs must be 1 to 256")
    page = bench(config_from_args(args), jobs=args.jobs, force=args.force)
    print(f"report: {page}")
    return 0
