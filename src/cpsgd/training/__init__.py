"""``cpsgd train``: fit the camera / segmentation adapters of the diffusion generator (paper §3).

Only argparse is imported here; torch, diffusers and accelerate load when training starts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cpsgd.errors import InputError
from cpsgd.generators.diffusion.generator import require_diffusion_extra
from cpsgd.training.config import ADAPTER_CHOICES, TrainConfig


def add_train_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``train`` to the CLI; the parsed namespace's ``handler`` runs it and returns an exit code."""
    parser = subparsers.add_parser(
        "train",
        help="train the diffusion generator's camera/segmentation adapters (needs cpsgd[diffusion])",
        description="Train adapters on a frozen Stable Video Diffusion. DATA holds one folder per clip: "
        "frames (PNG/JPEG, in name order), poses.txt (RealEstate10K) and, for the segmentation "
        "adapter, masks/ with one label PNG per frame. The adapters are written to OUTPUT/camera_adapter "
        "and OUTPUT/segmentation_adapter, ready for `cpsgd decode --generator diffusion --adapters OUTPUT`.",
    )
    defaults = TrainConfig(adapter="camera", data_dir=Path(), model_dir=Path(), output_dir=Path())
    # Required unless the `prepare` subcommand is given (checked in run_train).
    parser.add_argument(
        "--adapter",
        choices=ADAPTER_CHOICES,
        help="train one adapter alone, or both jointly (start joint from --init-adapters)",
    )
    parser.add_argument("--data", type=Path, help="folder of training clips")
    parser.add_argument("--model", type=Path, help="local SVD directory (diffusers layout)")
    parser.add_argument("-o", "--output", type=Path, help="folder for adapters, checkpoints, log")
    parser.add_argument("--init-adapters", type=Path, help="start from the adapters in this folder")
    parser.add_argument(
        "--controlnet",
        type=Path,
        help="segmentation adapter over this pretrained image ControlNet (diffusers folder, e.g. a "
        "segmentation ControlNet for SD 1.5), as the paper does; default: an encoder trained from scratch",
    )
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--lr", type=float, default=defaults.learning_rate)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--grad-accum", type=int, default=defaults.gradient_accumulation)
    parser.add_argument("--frames", type=int, default=None, help="frames per sample (default: the model's)")
    parser.add_argument("--height", type=int, default=defaults.height)
    parser.add_argument("--width", type=int, default=defaults.width)
    parser.add_argument("--frame-stride", type=int, default=defaults.frame_stride)
    parser.add_argument("--mixed-precision", default=defaults.mixed_precision, choices=["no", "fp16", "bf16"])
    parser.add_argument(
        "--gradient-checkpointing", action="store_true", help="trade U-Net recomputation for memory"
    )
    parser.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU is present")
    parser.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in OUTPUT")
    parser.add_argument("--log-every", type=int, default=defaults.log_every)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--num-workers", type=int, default=defaults.num_workers)
    parser.add_argument("--variant", default=None, help='weight variant of the SVD files, e.g. "fp16"')
    parser.add_argument("--val-data", type=Path, help="held-out clips (e.g. `train prepare`'s val/), scored "
                        "as the loss with and without the conditions")
    parser.add_argument("--val-every", type=int, default=defaults.val_every)
    parser.add_argument("--val-windows", type=int, default=defaults.val_windows)
    parser.set_defaults(handler=run_train)
    _add_prepare(parser.add_subparsers(dest="train_command", metavar="prepare"))
    return parser


def _add_prepare(subparsers: argparse._SubParsersAction) -> None:
    from cpsgd.masks.base import SEGMENTERS

    p = subparsers.add_parser(
        "prepare",
        help="RealEstate10K camera files + your videos -> the training layout",
        description="For each RealEstate10K camera file in CAMERAS, find its video in VIDEOS (named by the "
        "clip id or by the YouTube id in the file's URL), take the frame nearest to each camera line's "
        "timestamp, and write OUTPUT/train/<clip>/ and OUTPUT/val/<clip>/ (frames/, poses.txt, masks/).",
    )
    p.add_argument("--cameras", required=True, type=Path, help="folder of RealEstate10K camera files (*.txt)")
    p.add_argument("--videos", required=True, type=Path, help="folder of the downloaded videos")
    p.add_argument("-o", "--output", required=True, type=Path, help="training data folder to write")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of clips held out for validation")
    p.add_argument("--segmenter", choices=[*SEGMENTERS.names(), "none"], default="none",
                   help="also write masks with this segmenter (for the segmentation adapter)")
    p.add_argument("--force", action="store_true", help="write into an existing non-empty output folder")
    p.set_defaults(handler=run_prepare)


def run_prepare(args: argparse.Namespace) -> int:
    from cpsgd.masks.base import SEGMENTERS
    from cpsgd.training.prepare import prepare

    if args.output.exists() and any(args.output.iterdir()) and not args.force:
        raise InputError(f"{args.output} is not empty (use --force to add to it)")
    segmenter = None if args.segmenter == "none" else SEGMENTERS.get(args.segmenter)()
    clips = prepare(args.cameras, args.videos, args.output, args.val_fraction, segmenter)
    for split in ("train", "val"):
        chosen = [c for c in clips if c.split == split]
        print(f"{split}: {len(chosen)} clips, {sum(c.frames for c in chosen)} frames")
    dropped = sum(c.poses_dropped for c in clips)
    if dropped:
        print(f"{dropped} camera lines lay past the end of their video and were left out")
    return 0


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        adapter=args.adapter,
        data_dir=args.data,
        model_dir=args.model,
        output_dir=args.output,
        init_adapters=args.init_adapters,
        controlnet_dir=args.controlnet,
        steps=args.steps,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        gradient_accumulation=args.grad_accum,
        num_frames=args.frames,
        height=args.height,
        width=args.width,
        frame_stride=args.frame_stride,
        mixed_precision=args.mixed_precision,
        gradient_checkpointing=args.gradient_checkpointing,
        cpu=args.cpu,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        log_every=args.log_every,
        seed=args.seed,
        num_workers=args.num_workers,
        variant=args.variant,
        val_dir=args.val_data,
        val_every=args.val_every,
        val_windows=args.val_windows,
    )


def run_train(args: argparse.Namespace) -> int:
    missing = [flag for flag, value in (("--adapter", args.adapter), ("--data", args.data), ("--model", args.model),
                                        ("-o", args.output)) if value is None]
    if missing:
        raise InputError(f"cpsgd train needs {', '.join(missing)} (or the prepare subcommand)")
    config = config_from_args(args)
    require_diffusion_extra()
    from cpsgd.training.trainer import train

    result = train(config)
    print(
        f"trained to step {result['step']} (last logged loss {result['loss']:.5f}); "
        f"adapters in {result['adapters']}"
    )
    return 0


__all__ = ["TrainConfig", "add_train_command", "config_from_args", "run_train"]
