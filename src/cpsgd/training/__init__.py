"""``cpsgd train``: fit the camera / segmentation adapters of the diffusion generator (paper §3).

Only argparse is imported here; torch, diffusers and accelerate load when training starts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

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
    parser.add_argument(
        "--adapter",
        required=True,
        choices=ADAPTER_CHOICES,
        help="train one adapter alone, or both jointly (start joint from --init-adapters)",
    )
    parser.add_argument("--data", required=True, type=Path, help="folder of training clips")
    parser.add_argument("--model", required=True, type=Path, help="local SVD directory (diffusers layout)")
    parser.add_argument(
        "-o", "--output", required=True, type=Path, help="folder for adapters, checkpoints, log"
    )
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
    parser.set_defaults(handler=run_train)
    return parser


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
    )


def run_train(args: argparse.Namespace) -> int:
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
