"""The paper's generator: Stable Video Diffusion steered by the camera and segmentation adapters.

This module imports neither torch nor diffusers at import time, so registering the generator is
cheap; the model code is imported when a generator is first loaded.

What each decoded part does here:
- intra frame: frame 0 (cut out of the background mosaic when the intra picture is one) is SVD's
  conditioning image (CLIP image embedding + VAE latent), as in SVD; it is also
  returned unchanged as frame 0, since the decoder already has it exactly.
- poses: Plücker embeddings for the camera adapter (skipped when the stream has no pose section).
- masks: foreground (label > 0) frames for the segmentation adapter (skipped when absent): an
  encoder trained from scratch, or (``--controlnet``) a frozen image ControlNet's features
  projected by trained adapter blocks, as the paper does after Ctrl-Adapter.
- caption: unused. SVD is conditioned on an image, not on text, and neither adapter reads text.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cpsgd.errors import InputError
from cpsgd.generators.base import GENERATORS, Generator, GopConditions

ATTENTION_CHOICES = ("sdpa", "math", "sliced")


@dataclass
class DiffusionConfig:
    """Inference options. ``frames_per_call`` defaults to the U-Net's frame count (14 for SVD,
    25 for SVD-XT); longer GoPs are generated in chunks that overlap by ``chunk_overlap`` frames,
    each chunk conditioned on the already generated frame where it starts."""

    dtype: str = "auto"  # auto (fp16 on GPU, fp32 on CPU) | fp16 | bf16 | fp32
    device: str = "auto"
    num_inference_steps: int = 25
    decode_chunk_size: int = 8
    frames_per_call: int | None = None
    chunk_overlap: int = 1
    attention: str = "sdpa"  # sdpa: PyTorch fused attention; math: plain; sliced: bounded memory
    attention_slice_size: int = 64
    forward_chunking: bool = False  # feed-forward layers one frame at a time (less memory)
    seed: int = 0
    fps: int = 7  # SVD's frame-rate micro-conditioning
    motion_bucket_id: int = 127
    noise_aug_strength: float = 0.02
    min_guidance_scale: float = 1.0
    max_guidance_scale: float = 3.0
    variant: str | None = None  # e.g. "fp16" for SVD's *.fp16.safetensors files

    def __post_init__(self) -> None:
        if self.num_inference_steps < 1:
            raise InputError("num_inference_steps must be at least 1")
        if self.decode_chunk_size < 1:
            raise InputError("decode_chunk_size must be at least 1")
        if self.frames_per_call is not None and self.frames_per_call < 2:
            raise InputError("frames_per_call must be at least 2")
        if self.chunk_overlap < 1:
            raise InputError("chunk_overlap must be at least 1")
        if self.frames_per_call is not None and self.chunk_overlap >= self.frames_per_call:
            raise InputError("chunk_overlap must be smaller than frames_per_call")
        if self.attention not in ATTENTION_CHOICES:
            raise InputError(f"attention must be one of {', '.join(ATTENTION_CHOICES)}")
        if self.attention_slice_size < 1:
            raise InputError("attention_slice_size must be at least 1")


def require_diffusion_extra() -> None:
    """Fail with a one-line user error, not a traceback, when the optional packages are missing."""
    try:
        import accelerate  # noqa: F401
        import diffusers  # noqa: F401
        import safetensors  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise InputError(
            f"the diffusion generator needs the diffusion extra (pip install 'cpsgd[diffusion]'): {exc}"
        ) from None


def chunk_plan(num_frames: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of at most ``size`` frames covering ``num_frames``; consecutive ranges
    share at least ``overlap`` frames (the last one is moved back to end exactly at num_frames)."""
    if num_frames <= size:
        return [(0, num_frames)]
    chunks, start = [], 0
    while start + size < num_frames:
        chunks.append((start, start + size))
        start += size - overlap
    chunks.append((num_frames - size, num_frames))
    return chunks


def _pad(images: np.ndarray, height: int, width: int, axis: int) -> np.ndarray:
    """Edge-pad images whose height is ``axis`` (and width ``axis + 1``) on the bottom and right."""
    pads = [(0, 0)] * images.ndim
    pads[axis] = (0, height - images.shape[axis])
    pads[axis + 1] = (0, width - images.shape[axis + 1])
    return np.pad(images, pads, mode="edge")


@GENERATORS.register("diffusion")
class DiffusionGenerator(Generator):
    """Image-to-video generation with SVD (+ adapters) loaded from local diffusers directories."""

    def __init__(
        self,
        model_dir: str | Path,
        adapters_dir: str | Path | None = None,
        config: DiffusionConfig | None = None,
        controlnet_dir: str | Path | None = None,
    ) -> None:
        """``controlnet_dir``: the pretrained image ControlNet a ``ControlNetAdapter`` projects."""
        self.model_dir = Path(model_dir)
        self.adapters_dir = None if adapters_dir is None else Path(adapters_dir)
        self.controlnet_dir = None if controlnet_dir is None else Path(controlnet_dir)
        self.config = config or DiffusionConfig()
        folders = (("model", self.model_dir), ("adapters", self.adapters_dir), ("ControlNet", self.controlnet_dir))
        for name, folder in folders:
            if folder is not None and not folder.is_dir():
                raise InputError(f"{name} directory {folder} does not exist")
        self._pipe = None
        self._control = None

    @classmethod
    def from_cli_args(cls, args: argparse.Namespace) -> DiffusionGenerator:
        """Build from the options added by ``add_diffusion_decode_args``."""
        if args.diffusion_model is None:
            raise InputError("--generator diffusion needs --model DIR (a local SVD diffusers directory)")
        min_guidance, max_guidance = args.diffusion_guidance
        config = DiffusionConfig(
            dtype=args.diffusion_dtype,
            device=args.diffusion_device,
            num_inference_steps=args.diffusion_steps,
            decode_chunk_size=args.diffusion_decode_chunk_size,
            frames_per_call=args.diffusion_frames_per_call,
            chunk_overlap=args.diffusion_chunk_overlap,
            attention=args.diffusion_attention,
            forward_chunking=args.diffusion_forward_chunking,
            seed=args.diffusion_seed,
            motion_bucket_id=args.diffusion_motion_bucket,
            noise_aug_strength=args.diffusion_noise_aug,
            min_guidance_scale=min_guidance,
            max_guidance_scale=max_guidance,
            variant=args.diffusion_variant,
        )
        return cls(args.diffusion_model, args.diffusion_adapters, config, args.diffusion_controlnet)

    def load(self) -> None:
        """Load SVD and the adapters onto the device (done on the first ``generate``)."""
        if self._pipe is not None:
            return
        require_diffusion_extra()
        from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0, SlicedAttnProcessor

        from cpsgd.generators.diffusion.adapters import ControlNetAdapter
        from cpsgd.generators.diffusion.control import ControlledUNet
        from cpsgd.generators.diffusion.loading import (
            load_adapters,
            load_controlnet,
            load_svd_pipeline,
            resolve_device,
            resolve_dtype,
            vae_scale_factor,
        )

        cfg = self.config
        device = resolve_device(cfg.device)
        dtype = resolve_dtype(cfg.dtype, device)
        pipe = load_svd_pipeline(self.model_dir, dtype, device, cfg.variant)
        processor = {
            "sdpa": AttnProcessor2_0(),
            "math": AttnProcessor(),
            "sliced": SlicedAttnProcessor(cfg.attention_slice_size),
        }[cfg.attention]
        pipe.unet.set_attn_processor(processor)
        if cfg.forward_chunking:
            pipe.unet.enable_forward_chunking()
        camera = segmentation = controlnet = None
        if self.controlnet_dir is not None:
            controlnet = load_controlnet(self.controlnet_dir, dtype, device)
        if self.adapters_dir is not None:
            camera, segmentation = load_adapters(
                self.adapters_dir, pipe.unet, vae_scale_factor(pipe), dtype, controlnet
            )
        if controlnet is not None and not isinstance(segmentation, ControlNetAdapter):
            raise InputError("--controlnet is given, but the adapters hold no ControlNet segmentation adapter")
        for adapter in (camera, segmentation):
            if adapter is not None:
                adapter.to(device).eval()
        self._control = ControlledUNet(pipe.unet, camera, segmentation, controlnet)
        self._pipe = pipe

    def generate(self, conditions: GopConditions) -> np.ndarray:
        n, height, width = conditions.num_frames, conditions.height, conditions.width
        intra = self._intra(conditions)
        if n == 1:
            return intra[None]
        trajectory, masks = conditions.trajectory, conditions.masks
        if trajectory is not None and len(trajectory) < n:
            raise InputError(f"trajectory has {len(trajectory)} poses for a GoP of {n} frames")
        if masks is not None and masks.shape[:3] != (n, height, width):
            raise InputError(f"masks {masks.shape} do not match the GoP ({n}, {height}, {width})")
        self.load()
        import torch

        from cpsgd.generators.diffusion.loading import vae_scale_factor

        multiple = max(8, vae_scale_factor(self._pipe))
        padded_h, padded_w = -(-height // multiple) * multiple, -(-width // multiple) * multiple
        intra = _pad(intra, padded_h, padded_w, axis=0)
        if masks is not None:
            masks = _pad(masks, padded_h, padded_w, axis=1)
        size = self.config.frames_per_call or self._pipe.unet.config.num_frames
        overlap = min(self.config.chunk_overlap, size - 1)
        # A CPU generator draws the same noise whatever the device, so output depends on the seed only.
        noise = torch.Generator("cpu").manual_seed(self.config.seed)
        out = np.empty((n, padded_h, padded_w, 3), np.uint8)
        covered = 0
        for start, stop in chunk_plan(n, size, overlap):
            image = intra if start == 0 else out[start]
            chunk = self._run_chunk(
                image,
                stop - start,
                None if trajectory is None else trajectory.slice(start, stop),
                None if masks is None else masks[start:stop],
                (height, width),
                noise,
            )
            shared = covered - start
            if shared > 0:  # cross-fade the frames generated twice, from the old chunk to the new one
                weight = (np.arange(shared) / shared)[:, None, None, None]
                mixed = (1 - weight) * out[start:covered] + weight * chunk[:shared]
                out[start:covered] = np.round(mixed).astype(np.uint8)
            out[max(covered, start) : stop] = chunk[max(shared, 0) :]
            covered = stop
        out[0] = intra
        return out[:, :height, :width]

    @staticmethod
    def _intra(conditions: GopConditions) -> np.ndarray:
        intra = np.asarray(conditions.intra)
        if intra.ndim != 3 or intra.shape[2] != 3 or intra.dtype != np.uint8:
            raise InputError(f"intra frame must be (H, W, 3) uint8, got {intra.shape} {intra.dtype}")
        # A background mosaic is cut to frame 0's window, as hold and warp do, not squashed.
        from cpsgd.generators.warp import intra_frame  # here: `--help` must not load the warp's SciPy

        return intra_frame(replace(conditions, intra=intra))

    def _run_chunk(self, image, frames, trajectory, masks, original_size, noise) -> np.ndarray:
        """One SVD call: (frames, H', W', 3) uint8 at the padded size."""
        import torch
        from PIL import Image

        from cpsgd.generators.diffusion.plucker import plucker_embedding

        cfg, pipe = self.config, self._pipe
        padded_h, padded_w = image.shape[:2]
        device, dtype = pipe.unet.device, pipe.unet.dtype
        plucker = mask_frames = None
        if trajectory is not None:
            embedding = plucker_embedding(trajectory, *original_size, padded_h, padded_w)
            plucker = torch.from_numpy(embedding)[None].to(device, dtype)
        if masks is not None:
            mask_frames = (torch.from_numpy(masks > 0).to(device, dtype) * 2 - 1)[None, :, None]
        with torch.inference_mode(), self._control.conditioned(plucker, mask_frames):
            video = pipe(
                image=Image.fromarray(image),
                height=padded_h,
                width=padded_w,
                num_frames=frames,
                num_inference_steps=cfg.num_inference_steps,
                min_guidance_scale=cfg.min_guidance_scale,
                max_guidance_scale=cfg.max_guidance_scale,
                fps=cfg.fps,
                motion_bucket_id=cfg.motion_bucket_id,
                noise_aug_strength=cfg.noise_aug_strength,
                decode_chunk_size=cfg.decode_chunk_size,
                generator=noise,
                output_type="np",
            ).frames[0]
        return np.round(np.clip(video, 0.0, 1.0) * 255).astype(np.uint8)


def add_diffusion_decode_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``cpsgd decode --generator diffusion`` (dests all start with ``diffusion_``)."""
    defaults = DiffusionConfig()
    group = parser.add_argument_group("diffusion generator (--generator diffusion)")
    group.add_argument(
        "--model",
        dest="diffusion_model",
        metavar="DIR",
        help="local Stable Video Diffusion (or SVD-XT) directory in diffusers layout",
    )
    group.add_argument(
        "--adapters",
        dest="diffusion_adapters",
        metavar="DIR",
        help="trained adapters (camera_adapter/, segmentation_adapter/) from `cpsgd train`",
    )
    group.add_argument(
        "--controlnet",
        dest="diffusion_controlnet",
        metavar="DIR",
        help="the pretrained image ControlNet (diffusers layout) a ControlNet segmentation adapter projects",
    )
    group.add_argument(
        "--dtype", dest="diffusion_dtype", default=defaults.dtype, choices=["auto", "fp16", "bf16", "fp32"],
        help="weights' precision; auto: fp16 on a GPU, fp32 on the CPU",
    )
    group.add_argument(
        "--device", dest="diffusion_device", default=defaults.device, help="auto, cpu, cuda, cuda:1, ..."
    )
    group.add_argument(
        "--steps",
        dest="diffusion_steps",
        type=int,
        default=defaults.num_inference_steps,
        help="denoising steps",
    )
    group.add_argument(
        "--decode-chunk-size",
        dest="diffusion_decode_chunk_size",
        type=int,
        default=defaults.decode_chunk_size,
        help="frames the VAE decodes at once",
    )
    group.add_argument(
        "--frames-per-call",
        dest="diffusion_frames_per_call",
        type=int,
        default=None,
        help="frames generated per SVD call (default: the model's frame count)",
    )
    group.add_argument(
        "--chunk-overlap",
        dest="diffusion_chunk_overlap",
        type=int,
        default=defaults.chunk_overlap,
        help="frames shared by consecutive chunks of a long GoP",
    )
    group.add_argument(
        "--attention", dest="diffusion_attention", default=defaults.attention, choices=ATTENTION_CHOICES,
        help="sdpa: PyTorch's fused attention; math: plain; sliced: bounded memory",
    )
    group.add_argument(
        "--forward-chunking",
        dest="diffusion_forward_chunking",
        action="store_true",
        help="run feed-forward layers in chunks to save memory",
    )
    group.add_argument("--seed", dest="diffusion_seed", type=int, default=defaults.seed, help="noise seed")
    group.add_argument(
        "--motion-bucket", dest="diffusion_motion_bucket", type=int, default=defaults.motion_bucket_id,
        help="SVD's motion conditioning (higher: more motion)",
    )
    group.add_argument(
        "--noise-aug", dest="diffusion_noise_aug", type=float, default=defaults.noise_aug_strength,
        help="noise added to the conditioning picture",
    )
    group.add_argument(
        "--guidance",
        dest="diffusion_guidance",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=(defaults.min_guidance_scale, defaults.max_guidance_scale),
        help="classifier-free guidance, rising from MIN (first frame) to MAX (last)",
    )
    group.add_argument(
        "--variant",
        dest="diffusion_variant",
        default=None,
        help='weight file variant, e.g. "fp16" for *.fp16.safetensors',
    )
