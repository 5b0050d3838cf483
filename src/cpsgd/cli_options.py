"""Command-line options shared by `cpsgd encode`/`decode` and `cpsgd batch`."""

from __future__ import annotations

import argparse
from fractions import Fraction

from cpsgd.errors import InputError
from cpsgd.generators import GENERATORS
from cpsgd.generators.diffusion import add_diffusion_decode_args
from cpsgd.intra import INTRA_CODECS
from cpsgd.masks import MASK_CODECS, SEGMENTERS
from cpsgd.pipeline import PRESETS, EncoderConfig
from cpsgd.poses import POSE_CODECS, POSE_ESTIMATORS


def add_encoder_options(p: argparse.ArgumentParser) -> None:
    """Everything that goes into an `EncoderConfig` (and the frame rate of frame folders)."""
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--bpp", type=float, help="target bits per pixel (default: the medium preset, 0.003)")
    rate.add_argument("--preset", choices=sorted(PRESETS), help="named operating point")
    p.add_argument("--gop", type=int, default=25, help="maximum frames per group of pictures")
    p.add_argument("--size", type=int, help="center-crop to a square and resize to SIZE (paper: 512)")
    p.add_argument("--frames", type=int, help="encode at most this many frames")
    p.add_argument("--fps", type=float, help="frame rate of a folder of frames (default 25)")
    p.add_argument("--caption", help="text description sent with the video")
    p.add_argument("--intra-codec", default="av1", choices=INTRA_CODECS.names())
    p.add_argument("--intra-quality", type=int, help="fixed intra quality (0-100) instead of a budget")
    p.add_argument("--pose-estimator", default="flow", choices=[*POSE_ESTIMATORS.names(), "none"])
    p.add_argument("--pose-codec", default="compact", choices=POSE_CODECS.names())
    p.add_argument("--segmenter", default="motion", choices=[*SEGMENTERS.names(), "none"])
    p.add_argument("--mask-codec", default="cabac", choices=MASK_CODECS.names())
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


def _factors(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def encoder_config_from_args(args: argparse.Namespace) -> EncoderConfig:
    return EncoderConfig(
        bpp=args.bpp, preset=args.preset, gop=args.gop, size=args.size, max_frames=args.frames,
        intra_codec=args.intra_codec, intra_quality=args.intra_quality, caption=args.caption,
        pose_estimator=None if args.pose_estimator == "none" else args.pose_estimator,
        pose_codec=args.pose_codec, segmenter=None if args.segmenter == "none" else args.segmenter,
        mask_codec=args.mask_codec, object_motion=not args.no_object_motion, geometry=not args.no_geometry,
        mosaic=not args.no_mosaic, inter=not args.no_inter,
        rate_control=not args.no_rate_control, mask_factors=args.mask_factors,
        geometry_grid=args.geometry_grid, adaptive_gop=not args.fixed_gop, drift_db=args.drift_db,
    ).validated()


def frame_rate_from_args(args: argparse.Namespace) -> Fraction | None:
    if args.fps is None:
        return None
    if not 0 < args.fps <= 1000:
        raise InputError(f"--fps {args.fps} is out of range")
    return Fraction(args.fps).limit_denominator(1001)


def add_generator_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--generator", default="warp", choices=GENERATORS.names())
    add_diffusion_decode_args(p)
