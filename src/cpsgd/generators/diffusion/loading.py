"""Load SVD from a local diffusers-layout directory and the adapters from an adapters directory.

Layout of an adapters directory (what ``cpsgd train`` writes): ``camera_adapter/`` and/or
``segmentation_adapter/``, each with ``config.json`` and ``diffusion_pytorch_model.safetensors``.
The segmentation adapter's class (``_class_name`` in its config) says which kind it is; a
``ControlNetAdapter`` also needs the pretrained ControlNet it was trained with (``load_controlnet``).
"""

from __future__ import annotations

import json
from pathlib import Path

import diffusers
import torch
from diffusers import ControlNetModel, StableVideoDiffusionPipeline
from diffusers.utils import SAFETENSORS_WEIGHTS_NAME
from packaging import version
from safetensors import safe_open

from cpsgd.errors import InputError
from cpsgd.generators.diffusion.adapters import (
    CAMERA_SUBFOLDER,
    SEGMENTATION_ADAPTERS,
    SEGMENTATION_SUBFOLDER,
    CameraAdapter,
    ControlNetAdapter,
    SegmentationAdapter,
    geometry_mismatch,
)

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise InputError(f"unknown device {device!r}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but no CUDA device is available")
    return resolved


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """'auto' is fp16 on a GPU and fp32 on a CPU (CPU half-precision kernels are slow or missing)."""
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; choose auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


def _dtype_option(dtype: torch.dtype) -> dict:
    """diffusers renamed ``torch_dtype`` to ``dtype`` in 0.36; use the name this version expects."""
    key = "dtype" if version.parse(diffusers.__version__) >= version.parse("0.36") else "torch_dtype"
    return {key: dtype}


def load_svd_pipeline(
    model_dir: str | Path, dtype: torch.dtype, device: torch.device, variant: str | None = None
) -> StableVideoDiffusionPipeline:
    """SVD / SVD-XT components (U-Net, temporal VAE, CLIP image encoder, Euler scheduler) from disk;
    weights only from safetensors files, never from pickles."""
    model_dir = Path(model_dir)
    if not (model_dir / "model_index.json").is_file():
        raise InputError(f"{model_dir} is not a diffusers model directory (no model_index.json)")
    try:
        pipe = StableVideoDiffusionPipeline.from_pretrained(
            model_dir, variant=variant, use_safetensors=True, local_files_only=True, **_dtype_option(dtype)
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise InputError(f"cannot load Stable Video Diffusion from {model_dir}: {exc}") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def vae_scale_factor(pipe: StableVideoDiffusionPipeline) -> int:
    return 2 ** (len(pipe.vae.config.block_out_channels) - 1)


def load_controlnet(directory: str | Path, dtype: torch.dtype, device: torch.device) -> ControlNetModel:
    """A pretrained image ControlNet (diffusers layout, safetensors weights), frozen."""
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise InputError(f"{directory} is not a diffusers ControlNet directory (no config.json)")
    try:
        controlnet = ControlNetModel.from_pretrained(
            directory, use_safetensors=True, local_files_only=True, **_dtype_option(dtype)
        )
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise InputError(f"cannot load a ControlNet from {directory}: {exc}") from None
    return controlnet.requires_grad_(False).eval().to(device)


def segmentation_adapter_class(directory: Path) -> type[SegmentationAdapter] | type[ControlNetAdapter]:
    """The kind of segmentation adapter saved in ``directory``, from its config's class name."""
    try:
        name = json.loads((directory / "config.json").read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError) as exc:
        raise InputError(f"cannot read the segmentation adapter's config in {directory}: {exc}") from None
    if name not in SEGMENTATION_ADAPTERS:
        raise InputError(f"{directory}: unknown segmentation adapter {name!r}")
    return SEGMENTATION_ADAPTERS[name]


def adapter_config_for(cls: type, unet: torch.nn.Module, scale: int, controlnet: torch.nn.Module | None) -> dict:
    """The configuration of ``cls`` that fits this U-Net (and ControlNet, for a ControlNetAdapter)."""
    if cls is not ControlNetAdapter:
        return cls.config_for_unet(unet, scale)
    if controlnet is None:
        raise InputError(
            "this segmentation adapter projects a ControlNet's features: give its folder (--controlnet DIR)"
        )
    try:
        return ControlNetAdapter.config_for_models(unet, controlnet, scale)
    except ValueError as exc:
        raise InputError(f"the ControlNet does not fit this model: {exc}") from None


def load_adapter(
    cls: type[CameraAdapter] | type[SegmentationAdapter] | type[ControlNetAdapter],
    directory: Path,
    unet: torch.nn.Module,
    scale: int,
    dtype: torch.dtype = torch.float32,
    controlnet: torch.nn.Module | None = None,
) -> CameraAdapter | SegmentationAdapter | ControlNetAdapter:
    """Load one adapter and check that its weights match its config and that it fits this U-Net
    (and, for a ``ControlNetAdapter``, the ``controlnet`` it projects)."""
    try:
        adapter = cls.from_pretrained(
            directory, use_safetensors=True, local_files_only=True, **_dtype_option(dtype)
        )
        # diffusers only warns about weights missing from a checkpoint; a partial adapter is an error.
        with safe_open(directory / SAFETENSORS_WEIGHTS_NAME, framework="pt") as weights:
            stored = set(weights.keys())
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise InputError(f"cannot load {cls.__name__} from {directory}: {exc}") from None
    expected = set(adapter.state_dict())
    if stored != expected:
        missing, unexpected = sorted(expected - stored), sorted(stored - expected)
        raise InputError(
            f"cannot load {cls.__name__} from {directory}: its weights do not match its config.json "
            f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''})"
        )
    wrong = geometry_mismatch(adapter, adapter_config_for(cls, unet, scale, controlnet))
    if wrong:
        raise InputError(f"{cls.__name__} in {directory} was built for a different model: {'; '.join(wrong)}")
    return adapter


def load_adapters(
    adapters_dir: str | Path,
    unet: torch.nn.Module,
    scale: int,
    dtype: torch.dtype = torch.float32,
    controlnet: torch.nn.Module | None = None,
) -> tuple[CameraAdapter | None, SegmentationAdapter | ControlNetAdapter | None]:
    """The adapters found in ``adapters_dir`` (either may be absent, not both)."""
    adapters_dir = Path(adapters_dir)
    camera_dir, segmentation_dir = adapters_dir / CAMERA_SUBFOLDER, adapters_dir / SEGMENTATION_SUBFOLDER
    found = [
        load_adapter(CameraAdapter, camera_dir, unet, scale, dtype) if camera_dir.is_dir() else None,
        load_adapter(segmentation_adapter_class(segmentation_dir), segmentation_dir, unet, scale, dtype, controlnet)
        if segmentation_dir.is_dir()
        else None,
    ]
    if found == [None, None]:
        raise InputError(
            f"no adapters in {adapters_dir}: expected {CAMERA_SUBFOLDER}/ or {SEGMENTATION_SUBFOLDER}/"
        )
    return found[0], found[1]
