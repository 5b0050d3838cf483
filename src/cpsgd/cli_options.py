"""Command-line options shared by `cpsgd encode`/`decode` and `cpsgd batch`.

Building these options imports no stage: the backend names come from the registries only when
argparse checks a value or prints help.
"""

from __future__ import annotations

import argparse
import importlib
import re
from fractions import Fraction
from typing import TYPE_CHECKING, Iterator

from cpsgd.errors import InputError
from cpsgd.pipeline.config import DEFAULT_PRESET, PRESETS, EncoderConfig

if TYPE_CHECKING:
    from cpsgd.video.reader import RawFormat


class BackendNames:
    """A stage registry's backend names (plus ``extra`` ones such as "none") as argparse ``choices``."""

    def __init__(self, package: str, registry: str, *extra: str) -> None:
        self.package, self.registry, self.extra = package, registry, extra

    def _names(self) -> list[str]:
        return [*getattr(importlib.import_module(self.package), self.registry).names(), *self.extra]

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())


def _backend_option(p: argparse.ArgumentParser, flag: str, names: BackendNames, default: str, what: str) -> None:
    # A metavar keeps argparse from listing the choices (importing the stage) while it builds.
    p.add_argument(flag, default=default, choices=names, metavar="NAME", help=f"{what} (%(choices)s; default %(default)s)")


def add_encoder_options(p: argparse.ArgumentParser) -> None:
    """Everything that goes into an `EncoderConfig` (and the frame rate of frame folders)."""
    rates = ", ".join(f"{name} {preset.bpp:g}" for name, preset in PRESETS.items())
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--bpp", type=float,
                      help=f"target bits per pixel (default: the {DEFAULT_PRESET} preset's, {PRESETS[DEFAULT_PRESET].bpp:g})")
    rate.add_argument("--preset", choices=list(PRESETS), help=f"named operating point, in BPP: {rates}")
    p.add_argument("--gop", type=int, default=EncoderConfig.gop,
                   help="maximum frames per group of pictures (default %(default)s)")
    p.add_argument("--size", type=int, help="center-crop to a square and resize to SIZE (paper: 512)")
    p.add_argument("--frames", type=int, help="encode at most this many frames")
    p.add_argument("--fps", type=float, help="frame rate of a folder of frames or a raw .yuv file (default 25)")
    p.add_argument("--caption", help="text description sent with the video")
    _backend_option(p, "--intra-codec", BackendNames("cpsgd.intra", "INTRA_CODECS"), "av1",
                    "image codec of each GoP's intra picture")
    p.add_argument("--intra-quality", type=int, help="fixed intra quality (0-100) instead of a budget")
    _backend_option(p, "--pose-estimator", BackendNames("cpsgd.poses", "POSE_ESTIMATORS", "none"), "flow",
                    "camera pose estimator; none sends no poses unless --poses gives them")
    _backend_option(p, "--pose-codec", BackendNames("cpsgd.poses", "POSE_CODECS"), "compact", "camera pose codec")
    _backend_option(p, "--segmenter", BackendNames("cpsgd.masks", "SEGMENTERS", "none"), "motion",
                    "moving-object segmenter; none sends no masks unless --masks gives them")
    _backend_option(p, "--mask-codec", BackendNames("cpsgd.masks", "MASK_CODECS"), "cabac", "mask video codec")
    p.add_argument("--no-object-motion", action="store_true",
                   help="send no object motion: the decoder moves objects by their masks' shapes alone")
    p.add_argument("--no-geometry", action="store_true", help="send no scene-geometry side channel")
    p.add_argument("--no-mosaic", action="store_true", help="send the plain first frame, not the background mosaic")
    p.add_argument("--no-inter", action="store_true",
                   help="never code a GoP as video (SVT-AV1); every GoP is an intra picture the generator moves")
    p.add_argument("--no-rate-control", action="store_true",
                   help="do not render candidate splits; send the preset's first choices")
    p.add_argument("--mask-factors", type=_factors, help="mask downscale factors the rate control may "
                   "choose from, e.g. 8,16 (default: the preset's)")
    p.add_argument("--geometry-grid", type=int, help="finest inverse-depth grid side (default: the preset's)")
    p.add_argument("--fixed-gop", action="store_true", help="no scene-cut or drift detection: GoPs of --gop frames")
    p.add_argument("--drift-db", type=float, default=EncoderConfig.drift_db,
                   help="a rendered frame this many dB below the GoP's first predicted frame proposes a new "
                   "GoP, kept when it renders better; lower cuts more often: higher PSNR and MS-SSIM, "
                   "blurrier intra frames (default %(default)s)")


def add_raw_input_options(p: argparse.ArgumentParser) -> None:
    """How to read a headerless .yuv file (MCL-JCV and friends), as ffmpeg's -video_size/-pix_fmt."""
    p.add_argument("--raw-size", metavar="WxH", help="frame size of a raw .yuv input, e.g. 1920x1080")
    p.add_argument("--pix-fmt", default="yuv420p", help="pixel format of a raw .yuv input: yuv420p, yuv422p, "
                   "yuv444p or gray, 8-bit or 10-bit little-endian (yuv420p10le, ...) (default %(default)s)")


def raw_format_from_args(args: argparse.Namespace) -> RawFormat | None:
    from cpsgd.video.reader import RawFormat

    if args.raw_size is None:
        return None
    match = re.fullmatch(r"(\d+)[xX](\d+)", args.raw_size)
    if not match:
        raise InputError(f"--raw-size {args.raw_size!r} is not WIDTHxHEIGHT (e.g. 1920x1080)")
    return RawFormat(int(match[1]), int(match[2]), args.pix_fmt)


def _factors(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def encoder_config_from_args(args: argparse.Namespace, generator: str = "warp") -> EncoderConfig:
    """``generator``: the decoder-side generator the stream is made for."""
    return EncoderConfig(
        bpp=args.bpp, preset=args.preset, gop=args.gop, size=args.size, max_frames=args.frames,
        intra_codec=args.intra_codec, intra_quality=args.intra_quality, caption=args.caption,
        pose_estimator=None if args.pose_estimator == "none" else args.pose_estimator,
        pose_codec=args.pose_codec, segmenter=None if args.segmenter == "none" else args.segmenter,
        mask_codec=args.mask_codec, object_motion=not args.no_object_motion, geometry=not args.no_geometry,
        mosaic=not args.no_mosaic, inter=not args.no_inter,
        rate_control=not args.no_rate_control, mask_factors=args.mask_factors,
        geometry_grid=args.geometry_grid, adaptive_gop=not args.fixed_gop, drift_db=args.drift_db,
        generator=generator,
    ).validated()


def frame_rate_from_args(args: argparse.Namespace) -> Fraction | None:
    if args.fps is None:
        return None
    if not 0 < args.fps <= 1000:
        raise InputError(f"--fps {args.fps} is out of range")
    return Fraction(args.fps).limit_denominator(1001)


def add_generator_options(p: argparse.ArgumentParser) -> None:
    from cpsgd.generators.diffusion import add_diffusion_decode_args

    p.add_argument("--generator", choices=BackendNames("cpsgd.generators", "GENERATORS"), metavar="NAME",
                   help="decoder-side generator (%(choices)s; default: the one the stream was made for, from its header)")
    add_diffusion_decode_args(p)
