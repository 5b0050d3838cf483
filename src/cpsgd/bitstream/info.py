"""Exact bit accounting of a .cpsgd file, read from the file itself (the paper's Table 1)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import BinaryIO

from cpsgd.bitstream.container import BitstreamReader, SectionType

PARTS = [t.part for t in SectionType] + ["overhead"]


@dataclass
class GopInfo:
    index: int
    num_frames: int
    bits: dict[str, int]
    backends: dict[str, int]
    mode: str = "warp"  # "inter": the GoP is coded as video (an inter section, no intra picture)


@dataclass
class StreamInfo:
    width: int
    height: int
    fps: float
    gop_size: int
    num_frames: int
    total_bits: int
    bits: dict[str, int]
    gops: list[GopInfo] = field(default_factory=list)
    generator: str = "warp"  # the decoder-side generator the stream was made for (its header says)

    @property
    def bpp(self) -> float:
        return self.total_bits / (self.width * self.height * self.num_frames)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["bpp"] = self.bpp
        data["bpp_by_part"] = {part: bits / (self.width * self.height * self.num_frames) for part, bits in self.bits.items()}
        return data


def inspect_stream(file: BinaryIO) -> StreamInfo:
    """Walk every GoP (checking lengths and CRCs) and count bits per part; the parts add up to
    the file size, with headers, lengths and CRCs counted as overhead."""
    start = file.tell()
    reader = BitstreamReader(file)
    header = reader.header
    totals = dict.fromkeys(PARTS, 0)
    totals["overhead"] = 8 * reader.header_bytes
    gops = []
    for gop in reader.gops():
        bits = {s.type.part: 8 * len(s.payload) for s in gop.sections}
        bits["overhead"] = 8 * gop.coded_bytes - sum(bits.values())
        for part, value in bits.items():
            totals[part] += value
        mode = "inter" if gop.find(SectionType.INTER) is not None else "warp"
        gops.append(GopInfo(gop.index, gop.num_frames, bits, {s.type.part: s.backend for s in gop.sections}, mode))
    total = 8 * (file.tell() - start)
    return StreamInfo(
        header.width, header.height, float(header.fps), header.gop_size, header.num_frames, total, totals, gops,
        header.generator,
    )


def format_table(info: StreamInfo, per_gop: bool = True) -> str:
    """A plain-text table: bits and BPP per part, like the paper's Table 1."""
    pixels = info.width * info.height * info.num_frames
    lines = [
        f"{info.width}x{info.height}, {info.num_frames} frame{'' if info.num_frames == 1 else 's'} at "
        f"{info.fps:g} fps, {len(info.gops)} GoP{'' if len(info.gops) == 1 else 's'} (max {info.gop_size} frames), "
        f"made for the {info.generator} generator",
        f"{'part':<14}{'bits':>12}{'BPP':>12}{'share':>9}",
    ]
    for part in PARTS:
        bits = info.bits[part]
        lines.append(f"{part:<14}{bits:>12,}{bits / pixels:>12.3e}{100 * bits / info.total_bits:>8.2f}%")
    lines.append(f"{'total':<14}{info.total_bits:>12,}{info.bpp:>12.3e}{100:>8.2f}%")
    if per_gop:
        shown = [p for p in PARTS if info.bits[p]]
        lines.append("")
        lines.append(f"{'GoP':>5}{'frames':>8}{'mode':>7}" + "".join(f"{p:>14}" for p in shown))
        for gop in info.gops:
            lines.append(
                f"{gop.index:>5}{gop.num_frames:>8}{gop.mode:>7}" + "".join(f"{gop.bits.get(p, 0):>14,}" for p in shown)
            )
    return "\n".join(lines)
