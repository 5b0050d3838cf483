"""`cpsgd demo`: synthesise a clip, encode it, decode it, print the bit breakdown and write a
side-by-side video of source and reconstruction."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from cpsgd.bitstream.container import BitstreamReader
from cpsgd.bitstream.info import format_table, inspect_stream
from cpsgd.errors import InputError
from cpsgd.quality import psnr
from cpsgd.pipeline import EncoderConfig, decode_gops, encode_video, make_generator
from cpsgd.synth import SceneConfig, make_scene, write_clip
from cpsgd.video import open_video, open_writer

MARKER = ".cpsgd-demo"  # marks a folder the demo made, which it may refill on the next run
SCENE = SceneConfig(traj="pan", objects=1, num_frames=50, width=256, height=256, seed=0)


def _prepare(folder: Path, force: bool) -> None:
    if folder.exists():
        if not folder.is_dir():
            raise InputError(f"{folder} exists and is not a folder")
        if any(folder.iterdir()) and not (folder / MARKER).exists() and not force:
            raise InputError(f"{folder} is not empty and was not made by the demo (use --force)")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("made by `cpsgd demo`; the next demo run replaces this folder's files\n")


def run_demo(folder: Path, force: bool = False, config: EncoderConfig | None = None) -> dict[str, float]:
    """Run the whole codec on a synthetic clip; returns the headline figures."""
    _prepare(folder, force)
    config = config or EncoderConfig()
    clip = make_scene(SCENE)
    print(f"1/4 synthesised {SCENE.num_frames} frames of {SCENE.width}x{SCENE.height} ({SCENE.traj}, "
          f"{SCENE.objects} moving object) -> {folder / 'source'}")
    write_clip(clip, folder / "source", force=True)
    stream_path = folder / "demo.cpsgd"
    source = open_video(folder / "source" / "frames", fps=Fraction(clip.fps).limit_denominator(1001))
    report = encode_video(source, stream_path, config)
    print(f"2/4 encoded at target {config.target_bpp():g} BPP -> {stream_path} ({report.total_bytes:,} bytes)")
    with open(stream_path, "rb") as file:
        info = inspect_stream(file)
    print(format_table(info, per_gop=False))
    generator = make_generator("warp")
    decoded = []
    with open(stream_path, "rb") as file:
        for gop in decode_gops(BitstreamReader(file), generator):
            decoded.append(gop.frames)
    frames = np.concatenate(decoded)
    quality = float(np.mean([psnr(a, b) for a, b in zip(frames, clip.frames)]))
    print(f"3/4 decoded with the '{generator.name}' generator: mean PSNR {quality:.2f} dB")
    side_by_side = folder / "side_by_side.mp4"
    writer = open_writer(side_by_side, source.fps, force=True)
    for original, rebuilt in zip(clip.frames, frames):
        writer.write(np.concatenate([original, rebuilt], axis=1))
    writer.close()
    print(f"4/4 wrote {side_by_side} (left: source, right: decoded)")
    return {"bpp": info.bpp, "psnr": quality}
