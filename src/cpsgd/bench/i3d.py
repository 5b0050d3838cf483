"""I3D, the Inflated 3D ConvNet (Inception-v1 inflated to 3-D; Carreira and Zisserman, CVPR 2017),
the feature network of the Fréchet Video Distance.

Module and parameter names follow the common PyTorch port of DeepMind's Kinetics-400 RGB I3D
(``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_4b.b1b.bn.running_var``, ..., ``logits.conv3d.bias``),
so that its state dicts load as they are. TensorFlow's 'SAME' padding is reproduced exactly: a
strided layer puts the odd padding pixel after, not before.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cpsgd.errors import InputError

# The layers in order. Convs: (out channels, kernel, stride); pools: (kernel, stride);
# mixed blocks: channels of branch 0 (1x1), 1 (1x1 -> 3x3x3), 2 (1x1 -> 3x3x3), 3 (pool -> 1x1).
_LAYERS: tuple[tuple[str, tuple], ...] = (
    ("Conv3d_1a_7x7", (64, 7, 2)),
    ("MaxPool3d_2a_3x3", ((1, 3, 3), (1, 2, 2))),
    ("Conv3d_2b_1x1", (64, 1, 1)),
    ("Conv3d_2c_3x3", (192, 3, 1)),
    ("MaxPool3d_3a_3x3", ((1, 3, 3), (1, 2, 2))),
    ("Mixed_3b", (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", (128, 128, 192, 32, 96, 64)),
    ("MaxPool3d_4a_3x3", ((3, 3, 3), (2, 2, 2))),
    ("Mixed_4b", (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", (256, 160, 320, 32, 128, 128)),
    ("MaxPool3d_5a_2x2", ((2, 2, 2), (2, 2, 2))),
    ("Mixed_5b", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", (384, 192, 384, 48, 128, 128)),
)
# The final average pool (time, height, width): one output for a 16-frame 224x224 clip.
_POOL = (2, 7, 7)


@dataclass(frozen=True)
class I3DConfig:
    """``width`` multiplies every channel count (tests build tiny networks); 1.0 is the published
    network whose Kinetics-400 weights FVD uses."""

    width: float = 1.0
    num_classes: int = 400

    def channels(self, c: int) -> int:
        return max(1, round(c * self.width))


def _triple(v: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return (v, v, v) if isinstance(v, int) else v


def _pad_same(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], value: float = 0.0) -> torch.Tensor:
    """Pad (B, C, T, H, W) as TensorFlow's 'SAME' does: output size ceil(size / stride)."""
    pads: list[int] = []
    for size, k, s in reversed(list(zip(x.shape[2:], kernel, stride, strict=True))):  # F.pad: last dim first
        total = max(k - (s if size % s == 0 else size % s), 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value)


class Unit3D(nn.Module):
    """'SAME'-padded Conv3d, then batch norm and ReLU; the logits layer has a bias and neither."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, logits: bool = False) -> None:
        super().__init__()
        self.kernel, self.stride = _triple(kernel), _triple(stride)
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, bias=logits)
        # TensorFlow's batch-norm epsilon, which the published weights were trained with.
        self.bn = None if logits else nn.BatchNorm3d(cout, eps=1e-3, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        return x if self.bn is None else F.relu(self.bn(x))


class MaxPoolSame(nn.Module):
    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # -inf padding: TensorFlow's max pool ignores padded positions.
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride, -torch.inf), self.kernel, self.stride)


class Mixed(nn.Module):
    """An inflated Inception block: four branches concatenated along channels."""

    def __init__(self, cin: int, c: tuple[int, ...]) -> None:
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a, self.b1b = Unit3D(cin, c[1]), Unit3D(c[1], c[2], 3)
        self.b2a, self.b2b = Unit3D(cin, c[3]), Unit3D(c[3], c[4], 3)
        self.b3a, self.b3b = MaxPoolSame((3, 3, 3), (1, 1, 1)), Unit3D(cin, c[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x)))
        return torch.cat(branches, dim=1)


class I3D(nn.Module):
    def __init__(self, config: I3DConfig = I3DConfig()) -> None:
        super().__init__()
        cin = 3
        for name, spec in _LAYERS:
            if name.startswith("MaxPool"):
                self.add_module(name, MaxPoolSame(*spec))
            elif name.startswith("Conv"):
                cout, kernel, stride = spec
                self.add_module(name, Unit3D(cin, config.channels(cout), kernel, stride))
                cin = config.channels(cout)
            else:
                c = tuple(config.channels(v) for v in spec)
                self.add_module(name, Mixed(cin, c))
                cin = c[0] + c[2] + c[4] + c[5]
        self.logits = Unit3D(cin, config.num_classes, logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) in [-1, 1], T >= 9 and H, W >= 193 (16x224x224 for FVD) -> (B, classes)
        logits, averaged over the positions the final pool leaves."""
        for name, _ in _LAYERS:
            x = getattr(self, name)(x)
        x = self.logits(F.avg_pool3d(x, _POOL, stride=1))
        return x.mean(dim=(2, 3, 4))


def _unreadable(path: Path, exc: Exception) -> InputError:
    return InputError(f"{path}: cannot read it as a state dict ({type(exc).__name__}: {exc})")


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives (the form some FVD code ships I3D in) hold compiled code beside the weights."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file, or a torch state dict read with ``weights_only=True``."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(path)
        except (OSError, SafetensorError) as exc:
            raise _unreadable(path, exc) from None
    elif _is_torchscript(path):
        raise InputError(f"{path}: a TorchScript archive, not a state dict (save its state_dict() instead)")
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        # What a truncated, foreign or code-carrying pickle raises under weights_only.
        except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError) as exc:
            raise _unreadable(path, exc) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: not a state dict of tensors")
    return state


def config_of(state: dict[str, torch.Tensor], path: Path) -> I3DConfig:
    """The width and class count that a state dict's first and last layers imply."""
    try:
        stem, logits = state["Conv3d_1a_7x7.conv3d.weight"], state["logits.conv3d.weight"]
    except KeyError as exc:
        raise InputError(f"{path}: not the weights of an I3D (no {exc.args[0]})") from None
    if not 1 <= stem.shape[0] <= 64:  # wider than the published network: refuse before allocating it
        raise InputError(f"{path}: not the weights of an I3D (first layer has {stem.shape[0]} channels)")
    return I3DConfig(width=stem.shape[0] / 64, num_classes=logits.shape[0])


def load_i3d(path: Path) -> I3D:
    """An I3D in eval mode with the weights of ``path``, its width and classes read from them (the
    published Kinetics-400 network: 1.0 and 400); InputError unless every other name and shape is
    exactly that network's (batch-norm step counters may be absent, as in older files)."""
    state = read_state_dict(path)
    config = config_of(state, path)
    net = I3D(config)
    expected = net.state_dict()
    for key, value in expected.items():
        if key.endswith("num_batches_tracked"):
            state.setdefault(key, value)
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    wrong = sorted(k for k in expected.keys() & state.keys() if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing (first: {missing[0]})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected (first: {unexpected[0]})")
        if wrong:
            k = wrong[0]
            shapes = f"{tuple(state[k].shape)}, expected {tuple(expected[k].shape)}"
            problems.append(f"{len(wrong)} of the wrong shape (first: {k} {shapes})")
        raise InputError(f"{path}: not the weights of an I3D (width {config.width}, {config.num_classes} classes): "
                         + "; ".join(problems))
    net.load_state_dict(state)
    return net.eval()
