"""Tiny randomly initialised SVD checkpoints (and a ControlNet that fits them), for tests and the
GPU smoke check.

The sizes follow diffusers' own SVD tests (a U-Net with block channels (32, 64)); the CLIP image
encoder takes 224x224 input as SVD's pipeline feeds it, with 32x32 patches to stay small. The
output is noise-like: these models prove the code path, not the picture quality.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import (
    AutoencoderKLTemporalDecoder,
    ControlNetModel,
    EulerDiscreteScheduler,
    StableVideoDiffusionPipeline,
    UNetSpatioTemporalConditionModel,
)
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection


def build_tiny_svd(num_frames: int = 4, seed: int = 0) -> StableVideoDiffusionPipeline:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNetSpatioTemporalConditionModel(
            sample_size=16,
            num_frames=num_frames,
            in_channels=8,
            out_channels=4,
            down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
            up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
            block_out_channels=(32, 64),
            layers_per_block=1,
            cross_attention_dim=32,
            num_attention_heads=(4, 8),
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=24,
        )
        vae = AutoencoderKLTemporalDecoder(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            block_out_channels=(32, 64),
            layers_per_block=1,
            latent_channels=4,
        )
        image_encoder = CLIPVisionModelWithProjection(
            CLIPVisionConfig(
                hidden_size=32,
                projection_dim=32,
                num_hidden_layers=1,
                num_attention_heads=4,
                intermediate_size=37,
                image_size=224,
                patch_size=32,
            )
        )
    return _assemble(vae, image_encoder, unet)


def _assemble(vae, image_encoder, unet) -> StableVideoDiffusionPipeline:
    """A pipeline of these components with SVD's scheduler (EDM sigmas, v-prediction, continuous
    timesteps) and image preprocessing."""
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        interpolation_type="linear",
        num_train_timesteps=1000,
        prediction_type="v_prediction",
        sigma_max=700.0,
        sigma_min=0.002,
        steps_offset=1,
        timestep_spacing="leading",
        timestep_type="continuous",
        use_karras_sigmas=True,
    )
    feature_extractor = CLIPImageProcessor(crop_size=224, size=224)
    return StableVideoDiffusionPipeline(
        vae=vae,
        image_encoder=image_encoder,
        unet=unet,
        scheduler=scheduler,
        feature_extractor=feature_extractor,
    )


def save_tiny_svd(directory: str | Path, num_frames: int = 4, seed: int = 0) -> Path:
    """Write a tiny SVD directory in diffusers layout (safetensors weights) and return its path."""
    directory = Path(directory)
    build_tiny_svd(num_frames, seed).save_pretrained(directory, safe_serialization=True)
    return directory


def build_tiny_controlnet(seed: int = 0) -> ControlNetModel:
    """An SD-style image ControlNet at the tiny SVD's sizes (4-channel latents, 2x image downscale)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        controlnet = ControlNetModel(
            in_channels=4,
            block_out_channels=(32, 64),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            layers_per_block=1,
            cross_attention_dim=32,
            attention_head_dim=8,
            conditioning_embedding_out_channels=(16, 32),
        )
        # A pretrained ControlNet's zero-initialised convolutions are not zero any more.
        zeroed = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]
        for block in [*zeroed, controlnet.controlnet_cond_embedding.conv_out]:
            torch.nn.init.normal_(block.weight, std=0.1)
    return controlnet


def save_tiny_controlnet(directory: str | Path, seed: int = 0) -> Path:
    directory = Path(directory)
    build_tiny_controlnet(seed).save_pretrained(directory, safe_serialization=True)
    return directory


# The published SVD-XT configuration (stable-video-diffusion-img2vid-xt): U-Net (1.5 B parameters),
# temporal VAE and the ViT-H/14 CLIP image encoder, for checks of memory and speed at full size
# with random weights.
SVD_XT_UNET = dict(
    sample_size=96, in_channels=8, out_channels=4, num_frames=25,
    down_block_types=("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",),
    up_block_types=("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * 3,
    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=1024,
    num_attention_heads=(5, 10, 20, 20), addition_time_embed_dim=256, projection_class_embeddings_input_dim=768,
    transformer_layers_per_block=1,
)
SVD_XT_VAE = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=768,
    scaling_factor=0.18215, force_upcast=True,
)
SVD_XT_IMAGE_ENCODER = dict(
    hidden_size=1280, intermediate_size=5120, num_attention_heads=16, num_hidden_layers=32, patch_size=14,
    image_size=224, projection_dim=1024, hidden_act="gelu",
)


def build_random_svd_xt(device: str | torch.device = "cpu", seed: int = 0) -> StableVideoDiffusionPipeline:
    """SVD-XT's architecture with random weights, built directly on ``device`` (fp32)."""
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        unet = UNetSpatioTemporalConditionModel(**SVD_XT_UNET)
        vae = AutoencoderKLTemporalDecoder(**SVD_XT_VAE)
        image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**SVD_XT_IMAGE_ENCODER))
    return _assemble(vae, image_encoder, unet)
