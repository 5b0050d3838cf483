"""Train the camera and segmentation adapters on a frozen Stable Video Diffusion (paper §3).

The loss is SVD's own EDM objective (Karras et al. with sigma_data = 1, as SVD is trained): a
log-normal noise level sigma, the U-Net's v-style output turned into a denoised latent with
c_skip = 1/(sigma^2+1), c_out = -sigma/sqrt(sigma^2+1), the input scaled by c_in = 1/sqrt(sigma^2+1),
the timestep c_noise = log(sigma)/4, and the squared error weighted by (sigma^2+1)/sigma^2.
Only the adapters learn; accelerate handles devices, mixed precision and checkpoint state.

Validation (``val_dir``) is a proxy for pose- and mask-following that costs no sampling: the
EDM loss on held-out windows with the adapters' conditions and without them, under the same
noise. A gap (loss without conditions minus loss with them) above zero means the adapters use the
poses and masks to predict the held-out video; generating videos and re-estimating their poses
(``benchmarks/diffusion_toy.py``) is the direct measure, too slow to run during training.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from PIL import Image
from torch.utils.data import DataLoader

from cpsgd.errors import InputError
from cpsgd.generators.diffusion.adapters import (
    CAMERA_SUBFOLDER,
    SEGMENTATION_SUBFOLDER,
    CameraAdapter,
    ControlNetAdapter,
    SegmentationAdapter,
)
from cpsgd.generators.diffusion.control import ControlledUNet
from cpsgd.generators.diffusion.loading import (
    adapter_config_for,
    load_adapter,
    load_controlnet,
    load_svd_pipeline,
    segmentation_adapter_class,
    vae_scale_factor,
)
from cpsgd.training.config import TrainConfig
from cpsgd.training.data import ClipDataset, scan_clips

CHECKPOINTS = "checkpoints"
LOG_FILE = "train_log.jsonl"


def edm_loss(
    unet: torch.nn.Module,
    latents: torch.Tensor,
    condition_latents: torch.Tensor,
    image_embeddings: torch.Tensor,
    added_time_ids: torch.Tensor,
    plucker: torch.Tensor | None,
    masks: torch.Tensor | None,
    p_mean: float,
    p_std: float,
) -> torch.Tensor:
    """SVD's denoising loss for clean ``latents`` (B, F, C, h, w); see the module docstring."""
    batch = latents.shape[0]
    sigma = torch.exp(p_mean + p_std * torch.randn(batch, device=latents.device)).view(batch, 1, 1, 1, 1)
    noisy = latents + sigma * torch.randn_like(latents)
    scale = (sigma**2 + 1).sqrt()
    model_input = torch.cat([noisy / scale, condition_latents], dim=2)
    output = unet(model_input, 0.25 * sigma.log().flatten(), image_embeddings, added_time_ids, plucker, masks)
    denoised = noisy / scale**2 - sigma / scale * output.float()
    weight = (sigma**2 + 1) / sigma**2
    return (weight * (denoised - latents) ** 2).mean()


class SvdConditioner:
    """Frozen SVD parts that turn a batch into U-Net inputs, as StableVideoDiffusionPipeline does."""

    def __init__(self, pipe, config: TrainConfig, dtype: torch.dtype) -> None:
        self.pipe, self.config, self.dtype = pipe, config, dtype

    @torch.no_grad()
    def __call__(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        pipe, cfg = self.pipe, self.config
        frames = batch["frames"]
        size, count = frames.shape[:2]
        vae = pipe.vae
        latents = vae.encode(frames.flatten(0, 1).to(vae.dtype)).latent_dist.sample()
        latents = (latents * vae.config.scaling_factor).unflatten(0, (size, count))
        first = frames[:, 0] + cfg.noise_aug_strength * torch.randn_like(frames[:, 0])
        # Like the pipeline: the conditioning latent is the mode, unscaled, repeated over frames.
        condition = vae.encode(first.to(vae.dtype)).latent_dist.mode()
        condition = condition[:, None].expand(-1, count, -1, -1, -1)
        images = [Image.fromarray(image.numpy()) for image in batch["first"].cpu()]
        embeddings = pipe._encode_image(images, frames.device, 1, False)
        time_ids = torch.tensor(
            [[cfg.fps - 1, cfg.motion_bucket_id, cfg.noise_aug_strength]], device=frames.device
        ).repeat(size, 1)
        return (
            latents.float(),
            condition.to(self.dtype),
            embeddings.to(self.dtype),
            time_ids.to(self.dtype),
        )


@torch.no_grad()
def validation_losses(
    unet: torch.nn.Module, conditioner: SvdConditioner, batches: list[dict], config: TrainConfig
) -> tuple[float, float]:
    """Mean held-out EDM loss with and without the conditions; noise seeded per window, the same
    at every evaluation."""
    with_conditions, without = [], []
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    for index, batch in enumerate(batches):
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(config.seed + index)
            latents, condition, embeddings, time_ids = conditioner(batch)
            noise_seed = int(torch.randint(2**31, ()).item())
            for conditioned, losses in ((True, with_conditions), (False, without)):
                torch.manual_seed(noise_seed)
                loss = edm_loss(
                    unet, latents, condition, embeddings, time_ids,
                    batch.get("plucker") if conditioned else None, batch.get("masks") if conditioned else None,
                    config.p_mean, config.p_std,
                )
                losses.append(loss.item())
    return sum(with_conditions) / len(batches), sum(without) / len(batches)


def _validation_batches(config: TrainConfig, num_frames: int, camera: bool, masks: bool, device) -> list[dict]:
    """Up to ``val_windows`` windows spread evenly over the held-out clips, batch size 1."""
    clips = scan_clips(config.val_dir, camera, masks, (num_frames - 1) * config.frame_stride + 1)
    dataset = ClipDataset(clips, num_frames, config.height, config.width, config.frame_stride)
    picks = sorted({round(i * (len(dataset) - 1) / max(1, config.val_windows - 1)) for i in range(config.val_windows)})
    return [{key: value[None].to(device) for key, value in dataset[i].items()} for i in picks]


def _adapters(config: TrainConfig, unet: torch.nn.Module, scale: int, controlnet, report):
    """The adapters this run trains: from ``init_adapters`` where it holds them, else fresh. The
    segmentation adapter projects ``controlnet``'s features when one is given."""
    segmentation_class = SegmentationAdapter if controlnet is None else ControlNetAdapter
    wanted = {
        "camera": (config.adapter in ("camera", "joint"), CameraAdapter, CAMERA_SUBFOLDER),
        "segmentation": (config.adapter in ("segmentation", "joint"), segmentation_class, SEGMENTATION_SUBFOLDER),
    }
    adapters = {}
    for name, (needed, cls, sub) in wanted.items():
        if not needed:
            adapters[name] = None
        elif config.init_adapters is not None and (config.init_adapters / sub).is_dir():
            if sub == SEGMENTATION_SUBFOLDER and segmentation_adapter_class(config.init_adapters / sub) is not cls:
                raise InputError(
                    f"{config.init_adapters / sub} holds another kind of segmentation adapter than {cls.__name__}"
                )
            adapters[name] = load_adapter(cls, config.init_adapters / sub, unet, scale, controlnet=controlnet)
            report(f"{name} adapter: starting from {config.init_adapters / sub}")
        else:
            adapters[name] = cls(**adapter_config_for(cls, unet, scale, controlnet))
            report(f"{name} adapter ({cls.__name__}): starting from scratch (zero-initialised output layers)")
    return adapters["camera"], adapters["segmentation"]


def _latest_checkpoint(output_dir: Path) -> Path | None:
    folders = sorted((output_dir / CHECKPOINTS).glob("step-*"))
    return folders[-1] if folders else None


def train(config: TrainConfig) -> dict:
    """Run (or resume) training; returns the final step, last logged loss and adapters folder."""
    accelerator = Accelerator(
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation,
        cpu=config.cpu,
    )
    set_seed(config.seed)
    weight_dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[
        config.mixed_precision
    ]
    pipe = load_svd_pipeline(config.model_dir, weight_dtype, accelerator.device, config.variant)
    if pipe.vae.dtype != torch.float32:
        pipe.vae.to(torch.float32)  # encode in full precision, as the pipeline upcasts SVD's VAE
    for module in (pipe.unet, pipe.vae, pipe.image_encoder):
        module.requires_grad_(False)
    if config.gradient_checkpointing:
        pipe.unet.enable_gradient_checkpointing()
    scale = vae_scale_factor(pipe)
    needs_controlnet = config.controlnet_dir is not None and config.adapter != "camera"
    controlnet = load_controlnet(config.controlnet_dir, weight_dtype, accelerator.device) if needs_controlnet else None
    camera, segmentation = _adapters(config, pipe.unet, scale, controlnet, accelerator.print)
    controlled = ControlledUNet(pipe.unet, camera, segmentation, controlnet)
    trainable = [m for m in (camera, segmentation) if m is not None]
    for module in trainable:
        module.to(accelerator.device).train()
    parameters = [p for m in trainable for p in m.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate)

    num_frames = config.num_frames or pipe.unet.config.num_frames
    clips = scan_clips(
        config.data_dir,
        need_poses=camera is not None,
        need_masks=segmentation is not None,
        min_frames=(num_frames - 1) * config.frame_stride + 1,
    )
    dataset = ClipDataset(clips, num_frames, config.height, config.width, config.frame_stride)
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=True,
        num_workers=config.num_workers,
        generator=torch.Generator().manual_seed(config.seed),
        drop_last=len(dataset) >= config.batch_size,
    )

    # Checkpoints hold the adapters (as diffusers components) and the optimizer, not the frozen U-Net.
    def save_adapters(models, weights, directory) -> None:
        for adapter, sub in _named(models):
            adapter.save_pretrained(Path(directory) / sub)
        weights.clear()

    def load_adapters(models, directory) -> None:
        for adapter, sub in _named(models):
            saved = type(adapter).from_pretrained(Path(directory) / sub, use_safetensors=True)
            adapter.load_state_dict(saved.state_dict())
        models.clear()

    def _named(models):
        for model in models:
            unwrapped = accelerator.unwrap_model(model)
            for adapter, sub in (
                (unwrapped.camera, CAMERA_SUBFOLDER),
                (unwrapped.segmentation, SEGMENTATION_SUBFOLDER),
            ):
                if adapter is not None:
                    yield adapter, sub

    accelerator.register_save_state_pre_hook(save_adapters)
    accelerator.register_load_state_pre_hook(load_adapters)
    controlled, optimizer, loader = accelerator.prepare(controlled, optimizer, loader)
    conditioner = SvdConditioner(pipe, config, weight_dtype)

    validation = None
    if config.val_dir is not None:
        validation = _validation_batches(
            config, num_frames, camera is not None, segmentation is not None, accelerator.device
        )

    step = 0
    output_dir = Path(config.output_dir)
    if config.resume:
        latest = _latest_checkpoint(output_dir)
        if latest is None:
            raise InputError(f"--resume: no checkpoint in {output_dir / CHECKPOINTS}")
        accelerator.load_state(str(latest))
        step = json.loads((latest / "state.json").read_text())["step"]
        accelerator.print(f"resumed from {latest} at step {step}")

    log_path = output_dir / LOG_FILE
    output_dir.mkdir(parents=True, exist_ok=True)
    last_loss = math.nan
    running, count = 0.0, 0
    while step < config.steps:
        for batch in loader:
            with accelerator.accumulate(controlled):
                latents, condition, embeddings, time_ids = conditioner(batch)
                with accelerator.autocast():
                    loss = edm_loss(
                        controlled,
                        latents,
                        condition,
                        embeddings,
                        time_ids,
                        batch.get("plucker"),
                        batch.get("masks"),
                        config.p_mean,
                        config.p_std,
                    )
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(parameters, config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            running += accelerator.gather(loss.detach()).mean().item()
            count += 1
            if not accelerator.sync_gradients:
                continue
            step += 1
            if step % config.log_every == 0 or step == config.steps:
                last_loss, running, count = running / count, 0.0, 0
                accelerator.print(f"step {step}/{config.steps} loss {last_loss:.5f}")
                if accelerator.is_main_process:
                    with log_path.open("a") as log:
                        log.write(json.dumps({"step": step, "loss": last_loss}) + "\n")
            if validation is not None and (step % config.val_every == 0 or step == config.steps):
                val_loss, unconditioned = validation_losses(controlled, conditioner, validation, config)
                accelerator.print(
                    f"step {step} validation loss {val_loss:.5f}, without conditions {unconditioned:.5f} "
                    f"(gap {unconditioned - val_loss:+.5f})"
                )
                if accelerator.is_main_process:
                    with log_path.open("a") as log:
                        entry = {"step": step, "val_loss": val_loss, "val_loss_without_conditions": unconditioned}
                        log.write(json.dumps(entry) + "\n")
            if step % config.checkpoint_every == 0 or step == config.steps:
                folder = output_dir / CHECKPOINTS / f"step-{step:08d}"
                accelerator.save_state(str(folder))
                if accelerator.is_main_process:
                    (folder / "state.json").write_text(json.dumps({"step": step}))
            if step >= config.steps:
                break

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for adapter, sub in _named([controlled]):
            adapter.save_pretrained(output_dir / sub)
    return {"step": step, "loss": last_loss, "adapters": str(output_dir)}
