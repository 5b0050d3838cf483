"""The paper's segmenter ("sam2"): SAM2's video predictor prompted with boxes.

Optional extra: needs the ``sam2`` package (Meta's segment-anything-2) and a local checkpoint.
Only its video-predictor path is used, which imports neither torchvision nor the CUDA extension
(without the extension SAM2 skips its hole-filling post-processing and warns once).

Boxes come from a ``BoxSource`` (``cpsgd.masks.prompts``): the motion segmenter's regions by
default, or a caption's moving objects found by Grounding DINO. Each box becomes one SAM2
object, tracked forwards (and backwards when the prompt is not on frame 0); objects keep their
ids 1..K in the label map, and where two overlap the higher logit wins.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from cpsgd.errors import InputError
from cpsgd.masks.base import SEGMENTERS, Segmenter
from cpsgd.masks.prompts import BoxSource, MotionBoxes

DEFAULT_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
MAX_OBJECTS = 255


def build_predictor(config: str, checkpoint: Path | None, device: str = "cpu", overrides: tuple[str, ...] = ()):
    """SAM2 video predictor from a packaged config name (e.g. configs/sam2.1/sam2.1_hiera_l.yaml)
    and a checkpoint (loaded by SAM2 with ``torch.load(weights_only=True)``); ``checkpoint=None``
    keeps random weights, which only tests want."""
    try:
        from sam2.build_sam import build_sam2_video_predictor
    except ImportError as exc:
        raise InputError(
            f"the sam2 segmenter needs the sam2 package ({exc}); see the README's SAM2 notes"
        ) from None
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise InputError(f"SAM2 checkpoint {checkpoint} does not exist")
    try:
        return build_sam2_video_predictor(
            config, str(checkpoint) if checkpoint else None, device=device, hydra_overrides_extra=list(overrides)
        )
    except Exception as exc:  # noqa: BLE001  (hydra and SAM2 raise many types for a bad config or checkpoint)
        raise InputError(f"cannot build SAM2 from {config!r} and {checkpoint}: {exc}") from None


@SEGMENTERS.register("sam2")
class Sam2Segmenter(Segmenter):
    """SAM2 video segmentation from box prompts.

    checkpoint: local SAM2 checkpoint (.pt), required unless ``predictor`` is given.
    config: SAM2 config name matching the checkpoint. boxes: prompt source (default motion boxes).
    predictor: an already built SAM2 video predictor (tests pass a tiny random one).
    """

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        config: str = DEFAULT_CONFIG,
        boxes: BoxSource | None = None,
        device: str = "cpu",
        predictor=None,
    ) -> None:
        if predictor is None:
            if checkpoint is None:
                raise InputError("the sam2 segmenter needs a checkpoint (--sam2-checkpoint FILE)")
            predictor = build_predictor(config, Path(checkpoint), device)
        self.predictor = predictor
        self.boxes = boxes or MotionBoxes()

    def segment(self, frames: np.ndarray) -> np.ndarray:
        import torch

        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
            raise InputError(f"frames must be a non-empty (N, H, W, 3) uint8 array, got {frames.dtype} {frames.shape}")
        n, h, w = frames.shape[:3]
        prompt = self.boxes.prompt(frames)
        boxes = prompt.boxes[:MAX_OBJECTS]
        labels = np.zeros((n, h, w), np.uint8)
        if not boxes:
            return labels
        with tempfile.TemporaryDirectory() as folder, torch.inference_mode(), warnings.catch_warnings():
            # SAM2 reads videos as a folder of "<index>.jpg"; without its CUDA extension it warns
            # on every frame that hole filling is skipped.
            warnings.filterwarnings("ignore", message="(?s).*Skipping the post-processing")
            for index, frame in enumerate(frames):
                Image.fromarray(frame).save(Path(folder) / f"{index:05d}.jpg", quality=95)
            state = self.predictor.init_state(folder, offload_video_to_cpu=True, offload_state_to_cpu=True)
            for obj_id, box in enumerate(boxes, start=1):
                self.predictor.add_new_points_or_box(
                    state, frame_idx=prompt.frame_index, obj_id=obj_id, box=np.asarray(box, np.float32)
                )
            directions = [False] + ([True] if prompt.frame_index > 0 else [])
            for reverse in directions:
                for t, obj_ids, logits in self.predictor.propagate_in_video(
                    state, start_frame_idx=prompt.frame_index, reverse=reverse
                ):
                    labels[t] = _to_labels(logits[:, 0].float().cpu().numpy(), obj_ids)
        return labels


def _to_labels(logits: np.ndarray, obj_ids: list[int]) -> np.ndarray:
    """(K, H, W) per-object logits -> labels: the best object where its logit is positive."""
    best = np.argmax(logits, axis=0)
    ids = np.asarray(obj_ids, np.uint8)[best]
    return np.where(np.take_along_axis(logits, best[None], axis=0)[0] > 0, ids, 0).astype(np.uint8)
