"""The adapters that steer Stable Video Diffusion: camera poses and segmentation masks.

Segmentation comes in two kinds (``SEGMENTATION_ADAPTERS``, chosen by the class name in the saved
config): ``SegmentationAdapter``, an encoder trained from scratch, and ``ControlNetAdapter``, the
paper's choice after Ctrl-Adapter, which projects a frozen pretrained image ControlNet's features.
All are diffusers components (ConfigMixin + ModelMixin): ``save_pretrained`` writes config.json and
safetensors weights, ``from_pretrained`` reads them back. Both end in zero-initialised layers, so an
untrained adapter leaves SVD's output exactly unchanged (ControlNet's trick). ``from_unet`` builds
the configuration that fits a given U-Net; ``geometry_mismatch`` says why a loaded one does not.
"""

from __future__ import annotations

import math

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import TemporalBasicTransformerBlock
from diffusers.models.downsampling import Downsample2D
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import ResnetBlock2D
from torch import nn

CAMERA_SUBFOLDER = "camera_adapter"
SEGMENTATION_SUBFOLDER = "segmentation_adapter"


def _zero(module: nn.Module) -> nn.Module:
    for parameter in module.parameters():
        nn.init.zeros_(parameter)
    return module


class _LevelEncoder(nn.Module):
    """ResNet stages at the U-Net's resolutions: one feature map per level, halving between levels
    with the same stride-2 convolution as the U-Net, so sizes match for any latent size."""

    def __init__(
        self, block_out_channels: list[int], layers_per_level: int, groups: int, temb_channels: int | None
    ) -> None:
        super().__init__()
        self.levels = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        in_channels = block_out_channels[0]
        for level, channels in enumerate(block_out_channels):
            self.levels.append(
                nn.ModuleList(
                    ResnetBlock2D(
                        in_channels=in_channels if i == 0 else channels,
                        out_channels=channels,
                        temb_channels=temb_channels,
                        groups=groups,
                    )
                    for i in range(layers_per_level)
                )
            )
            in_channels = channels
            if level < len(block_out_channels) - 1:
                self.downsamplers.append(Downsample2D(channels, use_conv=True, padding=1, name="op"))

    def forward(self, hidden: torch.Tensor, temb: torch.Tensor | None = None) -> list[torch.Tensor]:
        features = []
        for level, blocks in enumerate(self.levels):
            if level > 0:
                hidden = self.downsamplers[level - 1](hidden)
            for block in blocks:
                hidden = block(hidden, temb)
            features.append(hidden)
        return features


def _check_downscale(factor: int) -> int:
    if factor < 1 or factor & (factor - 1):
        raise ValueError(f"downscale_factor must be a power of two, got {factor}")
    return int(math.log2(factor))


def temporal_blocks(unet: nn.Module) -> list[tuple[int, TemporalBasicTransformerBlock]]:
    """Every temporal transformer block of a UNetSpatioTemporalConditionModel, in execution order,
    with the resolution level it runs at (0 = full latent resolution)."""
    last = len(unet.down_blocks) - 1
    stages = [(i, block) for i, block in enumerate(unet.down_blocks)]
    stages.append((last, unet.mid_block))
    stages += [(last - j, block) for j, block in enumerate(unet.up_blocks)]
    return [
        (level, module)
        for level, stage in stages
        for module in stage.modules()
        if isinstance(module, TemporalBasicTransformerBlock)
    ]


def up_block_inputs(unet: nn.Module) -> tuple[list[int], list[int]]:
    """Channels and resolution level of the hidden states entering each up block."""
    channels = list(unet.config.block_out_channels)[::-1]
    last = len(channels) - 1
    return [channels[max(j - 1, 0)] for j in range(len(unet.up_blocks))], [
        last - j for j in range(len(unet.up_blocks))
    ]


class CameraAdapter(ModelMixin, ConfigMixin):
    """CameraCtrl-style pose adapter.

    Plücker embeddings (6 channels per pixel) are folded to the latent resolution with a pixel
    unshuffle, encoded by ResNet stages into one feature map per U-Net level, and fused into the
    input of every temporal transformer block as ``x + fusion(x + pose)`` with a zero-initialised
    linear ``fusion`` per block, so the temporal attention sees camera-aware features.
    """

    @register_to_config
    def __init__(
        self,
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        fusion_channels: tuple[int, ...] = (),
        fusion_levels: tuple[int, ...] = (),
        conditioning_channels: int = 6,
        downscale_factor: int = 8,
        layers_per_level: int = 1,
        norm_num_groups: int = 32,
    ) -> None:
        super().__init__()
        _check_downscale(downscale_factor)
        if len(fusion_channels) != len(fusion_levels):
            raise ValueError("fusion_channels and fusion_levels must have the same length")
        self.unshuffle = nn.PixelUnshuffle(downscale_factor)
        self.conv_in = nn.Conv2d(
            conditioning_channels * downscale_factor**2, block_out_channels[0], 3, padding=1
        )
        self.encoder = _LevelEncoder(list(block_out_channels), layers_per_level, norm_num_groups, None)
        self.fusions = nn.ModuleList(_zero(nn.Linear(c, c)) for c in fusion_channels)

    @classmethod
    def config_for_unet(cls, unet: nn.Module, vae_scale_factor: int) -> dict:
        blocks = temporal_blocks(unet)
        return {
            "block_out_channels": list(unet.config.block_out_channels),
            "fusion_channels": [block.norm_in.normalized_shape[0] for _, block in blocks],
            "fusion_levels": [level for level, _ in blocks],
            "downscale_factor": vae_scale_factor,
        }

    @classmethod
    def from_unet(cls, unet: nn.Module, vae_scale_factor: int, **options) -> CameraAdapter:
        return cls(**cls.config_for_unet(unet, vae_scale_factor), **options)

    def forward(self, plucker: torch.Tensor) -> list[torch.Tensor]:
        """(B*F, 6, H, W) embeddings -> per level (B*F, tokens, channels) features."""
        features = self.encoder(self.conv_in(self.unshuffle(plucker)))
        return [f.flatten(2).transpose(1, 2) for f in features]

    def fuse(self, index: int, hidden: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        return hidden + self.fusions[index](hidden + pose)


class SegmentationAdapter(ModelMixin, ConfigMixin):
    """Ctrl-Adapter-style segmentation control: a ControlNet-like encoder and zero projections.

    Like a ControlNet, the encoder reads the U-Net's own input (noisy latents concatenated with the
    conditioning image latents) plus an embedding of the mask frames downsampled to the latent
    resolution, with the diffusion timestep embedded into its ResNet blocks. Its per-level features
    are projected by zero-initialised 1x1 convolutions and added to the hidden states entering each
    up-sampling block of the U-Net, where the fine spatial detail is generated.
    """

    @register_to_config
    def __init__(
        self,
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        up_channels: tuple[int, ...] = (),
        up_levels: tuple[int, ...] = (),
        latent_channels: int = 8,
        conditioning_channels: int = 1,
        embedding_channels: int = 16,
        downscale_factor: int = 8,
        layers_per_level: int = 1,
        norm_num_groups: int = 32,
    ) -> None:
        super().__init__()
        steps = _check_downscale(downscale_factor)
        if len(up_channels) != len(up_levels):
            raise ValueError("up_channels and up_levels must have the same length")
        base = block_out_channels[0]
        embed = [nn.Conv2d(conditioning_channels, embedding_channels, 3, padding=1), nn.SiLU()]
        for _ in range(steps):
            embed += [nn.Conv2d(embedding_channels, embedding_channels, 3, stride=2, padding=1), nn.SiLU()]
        embed.append(_zero(nn.Conv2d(embedding_channels, base, 3, padding=1)))
        self.condition_embedding = nn.Sequential(*embed)
        self.conv_in = nn.Conv2d(latent_channels, base, 3, padding=1)
        self.time_proj = Timesteps(base, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(base, 4 * base)
        self.encoder = _LevelEncoder(list(block_out_channels), layers_per_level, norm_num_groups, 4 * base)
        self.projections = nn.ModuleList(
            _zero(nn.Conv2d(block_out_channels[level], channels, 1))
            for channels, level in zip(up_channels, up_levels, strict=True)
        )

    @classmethod
    def config_for_unet(cls, unet: nn.Module, vae_scale_factor: int) -> dict:
        channels, levels = up_block_inputs(unet)
        return {
            "block_out_channels": list(unet.config.block_out_channels),
            "up_channels": channels,
            "up_levels": levels,
            "latent_channels": unet.config.in_channels,
            "downscale_factor": vae_scale_factor,
        }

    @classmethod
    def from_unet(cls, unet: nn.Module, vae_scale_factor: int, **options) -> SegmentationAdapter:
        return cls(**cls.config_for_unet(unet, vae_scale_factor), **options)

    def forward(
        self, sample: torch.Tensor, timestep: torch.Tensor, masks: torch.Tensor
    ) -> list[torch.Tensor]:
        """sample (B*F, C, h, w) U-Net input, timestep (B*F,), masks (B*F, 1, H, W) in [-1, 1] ->
        one residual per up block."""
        temb = self.time_embedding(self.time_proj(timestep).to(sample.dtype))
        hidden = self.conv_in(sample) + self.condition_embedding(masks)
        features = self.encoder(hidden, temb)
        return [
            projection(features[level])
            for projection, level in zip(self.projections, self.config.up_levels, strict=True)
        ]


def _plain(value: object) -> object:
    return list(value) if isinstance(value, (list, tuple)) else value


def geometry_mismatch(adapter: ConfigMixin, expected: dict) -> list[str]:
    """The config keys (with both values) where an adapter does not fit the U-Net it is loaded for."""
    return [
        f"{key}={_plain(adapter.config.get(key))} (model needs {value})"
        for key, value in expected.items()
        if _plain(adapter.config.get(key)) != value
    ]


# Stable Diffusion 1.x/2.x training noise levels (scaled-linear betas), which an image ControlNet knows.
_SD_BETAS = (0.00085, 0.012, 1000)


def sd_timesteps(svd_timesteps: torch.Tensor) -> torch.Tensor:
    """SVD's continuous timesteps (c_noise = log(sigma) / 4) as the SD timesteps of the nearest
    noise level. The inputs agree without rescaling: SVD feeds the U-Net (x + sigma n) / sqrt(sigma^2
    + 1), which is SD's sqrt(abar) x + sqrt(1 - abar) n for sigma^2 = (1 - abar) / abar."""
    start, end, count = _SD_BETAS
    betas = torch.linspace(start**0.5, end**0.5, count, dtype=torch.float64) ** 2
    abar = torch.cumprod(1 - betas, dim=0)
    log_sigmas = 0.5 * torch.log((1 - abar) / abar)
    wanted = 4 * svd_timesteps.to(torch.float64).reshape(-1, 1)
    return (log_sigmas.to(wanted.device)[None] - wanted).abs().argmin(dim=1)


def controlnet_residual_table(controlnet: nn.Module) -> list[tuple[int, int]]:
    """(channels, resolution level) of each down residual a diffusers ControlNetModel returns: its
    conv_in output, every ResNet layer of every down block, and each downsampler's output."""
    channels = list(controlnet.config.block_out_channels)
    table = [(channels[0], 0)]
    for level, width in enumerate(channels):
        table += [(width, level)] * controlnet.config.layers_per_block
        if level < len(channels) - 1:
            table.append((width, level + 1))
    return table


class _ProjectionBlock(nn.Module):
    """ControlNet features -> an up block's hidden states: 1x1 projection, ResNet block, zero 1x1."""

    def __init__(self, source: int, target: int, groups: int) -> None:
        super().__init__()
        self.project = nn.Conv2d(source, target, 1)
        self.resnet = ResnetBlock2D(in_channels=target, out_channels=target, temb_channels=None, groups=groups)
        self.out = _zero(nn.Conv2d(target, target, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(self.resnet(self.project(features), None))


class ControlNetAdapter(ModelMixin, ConfigMixin):
    """Ctrl-Adapter-style segmentation control from a frozen pretrained image ControlNet.

    The ControlNet (e.g. a segmentation ControlNet for SD 1.5) reads each frame's noisy latent, the
    SD timestep of the same noise level (``sd_timesteps``), an all-zero text embedding (no prompt)
    and the frame's mask as a white-on-black image. For each of SVD's up blocks, the ControlNet
    residual at the same resolution (the last down residual of that level; the mid-block residual
    at the ControlNet's deepest level) passes through a small trainable block (1x1 projection,
    ResNet block, zero-initialised 1x1 convolution) and is added to the hidden states entering
    that up block. Only these blocks are saved; the ControlNet loads from its own folder.
    """

    @register_to_config
    def __init__(
        self,
        source_indices: tuple[int, ...] = (),  # per up block: the ControlNet down residual, -1 = mid
        source_channels: tuple[int, ...] = (),
        up_channels: tuple[int, ...] = (),
        controlnet_channels: tuple[int, ...] = (),  # the ControlNet this was trained with
        cross_attention_dim: int = 768,
        norm_num_groups: int = 32,
    ) -> None:
        super().__init__()
        if not len(source_indices) == len(source_channels) == len(up_channels):
            raise ValueError("source_indices, source_channels and up_channels must have the same length")
        self.blocks = nn.ModuleList(
            _ProjectionBlock(source, target, norm_num_groups)
            for source, target in zip(source_channels, up_channels, strict=True)
        )

    @classmethod
    def config_for_models(cls, unet: nn.Module, controlnet: nn.Module, vae_scale_factor: int) -> dict:
        up_channels, up_levels = up_block_inputs(unet)
        if controlnet.config.in_channels != unet.config.out_channels:
            raise ValueError(
                f"the ControlNet reads {controlnet.config.in_channels}-channel latents, SVD's are "
                f"{unet.config.out_channels}-channel"
            )
        embedding = controlnet.config.conditioning_embedding_out_channels
        if 2 ** (len(embedding) - 1) != vae_scale_factor:
            raise ValueError(
                f"the ControlNet downsamples its image {2 ** (len(embedding) - 1)}x, SVD's VAE {vae_scale_factor}x"
            )
        table = controlnet_residual_table(controlnet)
        deepest = len(controlnet.config.block_out_channels) - 1
        indices = []
        for level in up_levels:
            level = min(level, deepest)
            indices.append(-1 if level == deepest else max(i for i, (_, lv) in enumerate(table) if lv == level))
        mid_channels = controlnet.config.block_out_channels[-1]
        return {
            "source_indices": indices,
            "source_channels": [mid_channels if i < 0 else table[i][0] for i in indices],
            "up_channels": up_channels,
            "controlnet_channels": list(controlnet.config.block_out_channels),
            "cross_attention_dim": controlnet.config.cross_attention_dim,
        }

    @classmethod
    def from_models(cls, unet: nn.Module, controlnet: nn.Module, vae_scale_factor: int, **options) -> ControlNetAdapter:
        return cls(**cls.config_for_models(unet, controlnet, vae_scale_factor), **options)

    def forward(
        self, controlnet: nn.Module, sample: torch.Tensor, timestep: torch.Tensor, masks: torch.Tensor
    ) -> list[torch.Tensor]:
        """sample (B*F, C, h, w) U-Net input (noisy latents first), timestep (B*F,) SVD timesteps,
        masks (B*F, 1, H, W) in [-1, 1] -> one residual per up block."""
        frames = sample.shape[0]
        latents = sample[:, : controlnet.config.in_channels].to(controlnet.dtype)
        text = torch.zeros(frames, 1, self.config.cross_attention_dim, device=sample.device, dtype=controlnet.dtype)
        image = ((masks + 1) / 2).expand(-1, 3, -1, -1).to(controlnet.dtype)
        with torch.no_grad():
            down, mid = controlnet(latents, sd_timesteps(timestep), text, image, return_dict=False)
        features = [mid if index < 0 else down[index] for index in self.config.source_indices]
        return [block(feature.to(self.dtype)) for block, feature in zip(self.blocks, features, strict=True)]


SEGMENTATION_ADAPTERS = {cls.__name__: cls for cls in (SegmentationAdapter, ControlNetAdapter)}
