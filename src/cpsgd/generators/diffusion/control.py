"""Wire the adapters into SVD's U-Net with forward hooks, leaving diffusers' U-Net code untouched.

A hook before the U-Net's forward computes the adapters' features for the current call (the
segmentation encoder needs that call's noisy sample and timestep); hooks before every temporal
transformer block and every up block then add them. The same object serves the stock diffusers
pipeline at inference (``conditioned``) and training (``forward``), so both run the same code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from cpsgd.generators.diffusion.adapters import CameraAdapter, ControlNetAdapter, SegmentationAdapter, temporal_blocks


def _match_batch(condition: torch.Tensor, batch: int) -> torch.Tensor:
    """Repeat (B, F, ...) conditions for a U-Net batch of k*B (classifier-free guidance runs the
    unconditional and conditional halves in one batch; the adapters steer both)."""
    if batch % condition.shape[0]:
        raise ValueError(f"U-Net batch {batch} is not a multiple of the condition batch {condition.shape[0]}")
    return condition.repeat(batch // condition.shape[0], *([1] * (condition.ndim - 1)))


class ControlledUNet(nn.Module):
    """A UNetSpatioTemporalConditionModel with a camera and/or a segmentation adapter attached;
    a ``ControlNetAdapter`` comes with the frozen ``controlnet`` whose features it projects."""

    def __init__(
        self,
        unet: nn.Module,
        camera: CameraAdapter | None = None,
        segmentation: SegmentationAdapter | ControlNetAdapter | None = None,
        controlnet: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if isinstance(segmentation, ControlNetAdapter) != (controlnet is not None):
            raise ValueError("a ControlNetAdapter needs its ControlNet, and only it uses one")
        self.unet = unet
        self.camera = camera
        self.segmentation = segmentation
        self.controlnet = controlnet
        self._plucker: torch.Tensor | None = None
        self._masks: torch.Tensor | None = None
        self._pose_tokens: list[torch.Tensor] | None = None
        self._residuals: list[torch.Tensor] | None = None
        self._handles = [unet.register_forward_pre_hook(self._prepare, with_kwargs=True)]
        if camera is not None:
            for index, (_, block) in enumerate(temporal_blocks(unet)):
                self._handles.append(
                    block.register_forward_pre_hook(self._temporal_hook(index), with_kwargs=True)
                )
        if segmentation is not None:
            for index, block in enumerate(unet.up_blocks):
                self._handles.append(block.register_forward_pre_hook(self._up_hook(index), with_kwargs=True))

    @contextmanager
    def conditioned(self, plucker: torch.Tensor | None, masks: torch.Tensor | None) -> Iterator[None]:
        """Within the block, every U-Net call is steered by ``plucker`` (B, F, 6, H, W) and ``masks``
        (B, F, 1, H, W); None (or a missing adapter) leaves that control out."""
        self._plucker = plucker if self.camera is not None else None
        self._masks = masks if self.segmentation is not None else None
        try:
            yield
        finally:
            self._plucker = self._masks = self._pose_tokens = self._residuals = None

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        plucker: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
    ) -> torch.Tensor:
        with self.conditioned(plucker, masks):
            return self.unet(sample, timestep, encoder_hidden_states, added_time_ids, return_dict=False)[0]

    def remove(self) -> None:
        """Detach the hooks: the U-Net is plain SVD again."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _prepare(self, _module: nn.Module, args: tuple, kwargs: dict) -> None:
        sample = args[0] if args else kwargs["sample"]
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        batch, frames = sample.shape[:2]
        self._pose_tokens = self._residuals = None
        if self._plucker is not None:
            plucker = _match_batch(self._plucker, batch).flatten(0, 1)
            self._pose_tokens = self.camera(plucker.to(self.camera.dtype))
        if self._masks is not None:
            masks = _match_batch(self._masks, batch).flatten(0, 1)
            steps = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(batch)
            steps = steps.repeat_interleave(frames)
            dtype = self.segmentation.dtype
            inputs = (sample.flatten(0, 1).to(dtype), steps, masks.to(dtype))
            if self.controlnet is not None:
                self._residuals = self.segmentation(self.controlnet, *inputs)
            else:
                self._residuals = self.segmentation(*inputs)

    def _temporal_hook(self, index: int):
        level = self.camera.config.fusion_levels[index]

        def hook(_module: nn.Module, args: tuple, kwargs: dict):
            if self._pose_tokens is None:
                return None
            hidden = args[0] if args else kwargs["hidden_states"]
            fused = self.camera.fuse(index, hidden, self._pose_tokens[level].to(hidden.dtype))
            if args:
                return (fused, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": fused}

        return hook

    def _up_hook(self, index: int):
        def hook(_module: nn.Module, args: tuple, kwargs: dict):
            if self._residuals is None:
                return None
            hidden = args[0] if args else kwargs["hidden_states"]
            steered = hidden + self._residuals[index].to(hidden.dtype)
            if args:
                return (steered, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": steered}

        return hook
