"""Encoder settings."""

from __future__ import annotations

from dataclasses import dataclass, replace

from cpsgd.errors import InputError

# Named operating points (bits per pixel over all frames), from the floor of the tuned anchors
# down to where only cpsgd still reaches.
PRESETS: dict[str, float] = {"tiny": 0.0005, "low": 0.0015, "medium": 0.003, "high": 0.005}
DEFAULT_BPP = PRESETS["medium"]


@dataclass(frozen=True)
class EncoderConfig:
    bpp: float | None = None            # target bits per pixel; None: the preset's, else DEFAULT_BPP
    preset: str | None = None
    gop: int = 25                       # maximum frames per GoP
    size: int | None = None             # square protocol size (center crop + resize); None keeps input
    max_frames: int | None = None
    intra_codec: str = "av1"
    intra_quality: int | None = None    # fixed quality instead of a byte budget
    caption: str | None = None
    pose_estimator: str | None = None   # None: no pose section
    pose_codec: str = "compact"
    segmenter: str | None = None        # None: no mask section (unless masks are given)
    mask_codec: str = "cabac"

    def target_bpp(self) -> float:
        if self.bpp is not None:
            return self.bpp
        if self.preset is not None:
            return PRESETS[self.preset]
        return DEFAULT_BPP

    def validated(self) -> EncoderConfig:
        if self.preset is not None and self.preset not in PRESETS:
            raise InputError(f"unknown preset {self.preset!r}; choose one of: {', '.join(PRESETS)}")
        if self.bpp is not None and not 1e-5 <= self.bpp <= 8:
            raise InputError(f"--bpp {self.bpp} is out of range (0.00001 to 8)")
        if not 1 <= self.gop <= 1024:
            raise InputError(f"--gop {self.gop} is out of range (1 to 1024)")
        if self.intra_quality is not None and not 0 <= self.intra_quality <= 100:
            raise InputError("intra quality must be 0 to 100")
        if self.caption is not None and len(self.caption.encode("utf-8")) > 4096:
            raise InputError("the caption is longer than 4096 bytes")
        return self

    def with_(self, **changes: object) -> EncoderConfig:
        return replace(self, **changes)
