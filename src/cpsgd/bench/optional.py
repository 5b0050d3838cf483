"""The paper's learned metrics, from network weights the user has on disk (nothing is downloaded).

- LPIPS (AlexNet variant): torchvision's AlexNet ``features.*`` weights plus the LPIPS linear
  heads (``lin0.model.1.weight`` ... ``lin4``), given as one or more state-dict files; lower is better.
- CLIP similarity: cosine similarity of the CLIP image embeddings of source and decoded frames,
  from a transformers CLIP model folder (``CLIPModel`` or ``CLIPVisionModelWithProjection``).
- Aesthetic score (VBench): a linear head (``weight``, ``bias``) on the normalised CLIP image
  embedding, divided by 10 as VBench reports it; needs the CLIP folder and the head's state dict.

- FVD: I3D logits of each source and decoded clip (``cpsgd.bench.fvd``), from an I3D state dict
  (safetensors or torch); the distance itself is computed across sequences by the report.

A metric without its weights is skipped and the results say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from cpsgd.bench.fvd import CLIP_FRAMES, clip_features

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
# LPIPS input scaling (its ScalingLayer) and the channels of AlexNet's five ReLU taps.
_LPIPS_SHIFT = np.array([-0.030, -0.088, -0.188], dtype=np.float32)
_LPIPS_SCALE = np.array([0.458, 0.448, 0.450], dtype=np.float32)
ALEX_CHANNELS = (64, 192, 384, 256, 256)


def _load_state(paths: tuple[Path, ...]) -> dict:
    import torch

    state: dict = {}
    for path in paths:
        state.update(torch.load(path, map_location="cpu", weights_only=True))
    return state


def build_lpips_alex():
    """The LPIPS AlexNet network, randomly initialised (load weights into it)."""
    import torch
    from torch import nn

    class LpipsAlex(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # Same layer indices as torchvision's alexnet().features, so its weights load as they are.
            self.features = nn.Sequential(
                nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
                nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
                nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
                nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
                nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
            )
            self.taps = (1, 4, 7, 9, 11)
            for k, ch in enumerate(ALEX_CHANNELS):
                # LPIPS's heads are named "lin{k}.model.1.weight": a dropout, then a 1x1 conv.
                head = nn.Module()
                head.model = nn.Sequential(nn.Dropout(), nn.Conv2d(ch, 1, 1, bias=False))
                self.add_module(f"lin{k}", head)

        def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
            out = []
            for i, layer in enumerate(self.features):
                x = layer(x)
                if i in self.taps:
                    out.append(x / (x.norm(dim=1, keepdim=True) + 1e-10))
            return out

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            """a, b: (N, 3, H, W) in [-1, 1] -> (N,) distances."""
            shift = torch.from_numpy(_LPIPS_SHIFT).view(1, 3, 1, 1).to(a)
            scale = torch.from_numpy(_LPIPS_SCALE).view(1, 3, 1, 1).to(a)
            total = torch.zeros(a.shape[0], device=a.device)
            taps = zip(self._taps((a - shift) / scale), self._taps((b - shift) / scale), strict=True)
            for k, (fa, fb) in enumerate(taps):
                head = getattr(self, f"lin{k}").model[1]
                total = total + head((fa - fb) ** 2).mean(dim=(1, 2, 3))
            return total

    return LpipsAlex()


def _lpips_state(state: dict) -> dict:
    """Keep AlexNet's ``features.*`` and the heads (torchvision's file also holds a classifier)."""
    return {k: v for k, v in state.items() if k.startswith(("features.", "lin"))}


@lru_cache(maxsize=2)
def _lpips_net(paths: tuple[Path, ...], device: str):
    net = build_lpips_alex()
    net.load_state_dict(_lpips_state(_load_state(paths)))
    return net.to(device).eval()


def lpips_distance(net, reference: np.ndarray, decoded: np.ndarray, device: str = "cpu") -> float:
    """Mean LPIPS over frames of two (N, H, W, 3) uint8 clips."""
    import torch

    def tensor(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(device)

    with torch.no_grad():
        return float(net(tensor(reference), tensor(decoded)).mean())


def clip_pixels(frames: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3, size, size) float32, CLIP's resize, centre crop and normalisation."""
    h, w = frames.shape[1:3]
    scale = size / min(h, w)
    out = []
    for f in frames:
        r = cv2.resize(f, (max(size, round(w * scale)), max(size, round(h * scale))), interpolation=cv2.INTER_CUBIC)
        top, left = (r.shape[0] - size) // 2, (r.shape[1] - size) // 2
        out.append(r[top : top + size, left : left + size])
    x = (np.stack(out).astype(np.float32) / 255.0 - CLIP_MEAN) / CLIP_STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


@lru_cache(maxsize=2)
def _clip_model(path: Path, device: str):
    from transformers import CLIPVisionModelWithProjection

    return CLIPVisionModelWithProjection.from_pretrained(path, use_safetensors=True, local_files_only=True).to(device).eval()


def clip_embeddings(model, frames: np.ndarray, device: str = "cpu") -> np.ndarray:
    """(N, D) L2-normalised CLIP image embeddings."""
    import torch

    pixels = torch.from_numpy(clip_pixels(frames, model.config.image_size)).to(device)
    with torch.no_grad():
        emb = model(pixel_values=pixels).image_embeds
    return torch.nn.functional.normalize(emb, dim=-1).cpu().numpy()


def aesthetic_head(path: Path | None, dim: int):
    """VBench's linear aesthetic head; random when ``path`` is None (tests)."""
    import torch

    head = torch.nn.Linear(dim, 1)
    if path is not None:
        head.load_state_dict(_load_state((path,)))
    return head.eval()


@dataclass(frozen=True)
class OptionalMetrics:
    """Local weight paths of the optional metrics; a metric whose paths are missing is skipped."""

    lpips: tuple[Path, ...] = ()
    clip: Path | None = None
    aesthetic_head: Path | None = None
    fvd: Path | None = None  # I3D weights

    def notes(self, num_frames: int) -> list[str]:
        notes = []
        if not self.lpips:
            notes.append("lpips skipped: no --lpips-weights given")
        if self.clip is None:
            notes.append("clip_sim skipped: no --clip-model given")
        if self.clip is None or self.aesthetic_head is None:
            notes.append("aesthetic skipped: needs --clip-model and --aesthetic-head")
        if self.fvd is None:
            notes.append("fvd skipped: no --fvd-weights given")
        elif num_frames < CLIP_FRAMES:
            notes.append(f"fvd skipped: I3D needs {CLIP_FRAMES}-frame clips, the sequences have {num_frames} frames")
        return notes

    def fvd_features(self, frames: np.ndarray, device: str = "cpu") -> list[float] | None:
        """I3D features of one clip for FVD; None without weights or with too few frames."""
        if self.fvd is None or len(frames) < CLIP_FRAMES:
            return None
        return clip_features(self.fvd, frames, device)

    def scores(self, reference: np.ndarray, decoded: np.ndarray, device: str = "cpu") -> dict[str, float]:
        out: dict[str, float] = {}
        if self.lpips:
            out["lpips"] = lpips_distance(_lpips_net(self.lpips, device), reference, decoded, device)
        if self.clip is not None:
            model = _clip_model(self.clip, device)
            dec = clip_embeddings(model, decoded, device)
            out["clip_sim"] = float(np.mean(np.sum(clip_embeddings(model, reference, device) * dec, axis=1)))
            if self.aesthetic_head is not None:
                out["aesthetic"] = aesthetic_score(
                    aesthetic_head(self.aesthetic_head, dec.shape[1]), dec
                )
        return out


def aesthetic_score(head, embeddings: np.ndarray) -> float:
    """Mean over frames of the head's score on normalised embeddings, /10 as VBench reports it."""
    import torch

    with torch.no_grad():
        return float(head(torch.from_numpy(embeddings).float()).mean()) / 10.0
