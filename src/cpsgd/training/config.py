"""Options of an adapter training run (no torch import: the CLI builds this before loading models)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cpsgd.errors import InputError

ADAPTER_CHOICES = ("camera", "segmentation", "joint")


@dataclass
class TrainConfig:
    """``adapter``: camera or segmentation alone (each from scratch, or from ``init_adapters``), or
    joint (both, usually initialised from the two separately trained ones, as the paper does)."""

    adapter: str
    data_dir: Path
    model_dir: Path
    output_dir: Path
    init_adapters: Path | None = None
    controlnet_dir: Path | None = None  # segmentation from this pretrained image ControlNet (Ctrl-Adapter)
    steps: int = 40_000
    learning_rate: float = 1e-4
    batch_size: int = 1
    gradient_accumulation: int = 1
    max_grad_norm: float = 1.0
    num_frames: int | None = None  # default: the U-Net's frame count
    height: int = 320
    width: int = 512
    frame_stride: int = 1
    mixed_precision: str = "no"  # no | fp16 | bf16
    gradient_checkpointing: bool = False  # recompute U-Net activations in backward: less memory
    cpu: bool = False
    checkpoint_every: int = 1000
    resume: bool = False
    log_every: int = 10
    seed: int = 0
    num_workers: int = 0
    p_mean: float = 0.7  # log-normal noise levels, as in SVD fine-tuning
    p_std: float = 1.6
    noise_aug_strength: float = 0.02
    fps: int = 7
    motion_bucket_id: int = 127
    variant: str | None = None
    val_dir: Path | None = None  # held-out clips, scored every val_every steps
    val_every: int = 500
    val_windows: int = 8

    def __post_init__(self) -> None:
        if self.adapter not in ADAPTER_CHOICES:
            raise InputError(f"--adapter must be one of {', '.join(ADAPTER_CHOICES)}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise InputError("--mixed-precision must be no, fp16 or bf16")
        if (
            min(
                self.steps, self.batch_size, self.gradient_accumulation, self.checkpoint_every, self.log_every
            )
            < 1
            or min(self.val_every, self.val_windows) < 1
        ):
            raise InputError(
                "steps, batch size, accumulation, checkpoint, log and validation settings must be positive"
            )
        if self.height % 8 or self.width % 8 or self.height < 8 or self.width < 8:
            raise InputError("training height and width must be positive multiples of 8")
        if self.num_frames is not None and self.num_frames < 2:
            raise InputError("--frames must be at least 2")
