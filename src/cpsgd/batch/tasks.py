"""One unit of batch work (a whole clip) and the function that runs it on a worker.

A task carries only paths and settings: workers read their input and write their output
themselves, so nothing but a few hundred bytes travels each way. Outputs are written under a
temporary name and moved into place when complete.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np

from cpsgd import __version__
from cpsgd.bitstream.container import BitstreamReader
from cpsgd.generators import GENERATORS, Generator
from cpsgd.pipeline import EncoderConfig, decode_gops, encode_video
from cpsgd.video import open_video, open_writer
from cpsgd.video.writer import commit_path, create_temporary

OPERATIONS = ("encode", "decode", "bench")
DECODE_FORMATS = ("png", "mp4", "mkv", "y4m")


@dataclass(frozen=True)
class Settings:
    """Everything that decides an output's content; its digest is recorded next to each output."""

    op: str
    encoder: EncoderConfig | None = None  # encode and bench
    fps: float | None = None  # frame rate of frame folders, as `cpsgd encode --fps`
    generator: str | None = None  # decode and bench; None: the one the stream was made for
    generator_options: tuple[tuple[str, object], ...] = ()  # `cpsgd decode`'s generator options
    output_format: str = "png"  # decode: a PNG folder or a video file

    def digest(self) -> str:
        text = json.dumps({"cpsgd": __version__, **asdict(self)}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def output_name(self, name: str) -> str:
        if self.op == "decode":
            return name if self.output_format == "png" else f"{name}.{self.output_format}"
        return f"{name}.cpsgd"


@dataclass(frozen=True)
class Task:
    name: str
    input: Path
    output: Path
    settings: Settings
    poses: Path | None = None
    masks: Path | None = None

    def inputs(self) -> list[Path]:
        return [p for p in (self.input, self.poses, self.masks) if p is not None]


def content_hash(path: Path) -> str:
    """SHA-256 of a file, or of a folder's relative file names and contents."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if file != path:
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def inputs_hash(task: Task) -> str:
    return hashlib.sha256("".join(content_hash(p) for p in task.inputs()).encode()).hexdigest()


@lru_cache(maxsize=2)
def _generator(name: str, options: tuple[tuple[str, object], ...]) -> Generator:
    """Kept per worker process: a diffusion generator loads its model once, not once per clip."""
    return GENERATORS.get(name).from_cli_args(argparse.Namespace(**dict(options)))


def _encode(task: Task, out: Path) -> dict:
    from cpsgd.masks.io import MaskFolder
    from cpsgd.poses import load_poses

    config = task.settings.encoder
    fps = Fraction(task.settings.fps).limit_denominator(1001) if task.settings.fps else None
    source = open_video(task.input, size=config.size, max_frames=config.max_frames, fps=fps)
    trajectory = load_poses(task.poses, square_crop_of=source.crop_from) if task.poses else None
    masks = MaskFolder(task.masks, (source.height, source.width), config.size) if task.masks else None
    encode_video(source, out, config, trajectory, masks, show_progress=False)
    return _stream_facts(out)


def _stream_facts(stream: Path) -> dict:
    """Frames, size and bits as the stream itself declares them."""
    with open(stream, "rb") as file:
        header = BitstreamReader(file).header
    bits = 8 * stream.stat().st_size
    return {
        "frames": header.num_frames, "width": header.width, "height": header.height, "gops": header.num_gops,
        "bits": bits, "bpp": bits / (header.num_frames * header.width * header.height),
    }


def _score(task: Task, stream: Path) -> dict[str, float]:
    """PSNR and MS-SSIM of the decoded stream against the input as the encoder saw it, one GoP
    at a time so that memory holds one GoP of each."""
    from cpsgd.bench.metrics import ms_ssim, psnr

    config = task.settings.encoder
    fps = Fraction(task.settings.fps).limit_denominator(1001) if task.settings.fps else None
    reference = open_video(task.input, size=config.size, max_frames=config.max_frames, fps=fps).iter_frames()
    generator = _generator(task.settings.generator or config.generator, task.settings.generator_options)
    sums = {"psnr": 0.0, "ms_ssim": 0.0}
    count = 0
    with open(stream, "rb") as file:
        for gop in decode_gops(BitstreamReader(file), generator):
            ref = np.stack([next(reference) for _ in range(len(gop.frames))])
            sums["psnr"] += psnr(ref, gop.frames) * len(ref)
            sums["ms_ssim"] += ms_ssim(ref, gop.frames) * len(ref)
            count += len(ref)
    return {key: value / count for key, value in sums.items()}


def _decode(task: Task) -> dict:
    with open(task.input, "rb") as file:
        reader = BitstreamReader(file)
        generator = _generator(task.settings.generator or reader.header.generator, task.settings.generator_options)
        writer = open_writer(task.output, reader.header.fps, force=True)  # writes a temporary, then renames
        try:
            for gop in decode_gops(reader, generator):
                for frame in gop.frames:
                    writer.write(frame)
        except BaseException:
            writer.abort()
            raise
        writer.close()
    return _stream_facts(task.input)


def run_task(task: Task) -> dict:
    """Do one task on whichever worker runs it; returns its row for the results manifest."""
    start, cpu_start = time.perf_counter(), time.process_time()
    row: dict = {"name": task.name, "op": task.settings.op, "input": str(task.input), "input_hash": inputs_hash(task)}
    if task.settings.op == "decode":
        row.update(_decode(task))
    else:
        tmp = create_temporary(task.output)
        try:
            row.update(_encode(task, tmp))
            if task.settings.op == "bench":
                row["metrics"] = _score(task, tmp)
            commit_path(tmp, task.output)
        finally:
            tmp.unlink(missing_ok=True)
    row.update(
        status="done", output=task.output.name, output_hash=content_hash(task.output),
        settings_hash=task.settings.digest(), seconds=round(time.perf_counter() - start, 3),
        cpu_seconds=round(time.process_time() - cpu_start, 3),
        worker=f"{socket.gethostname()}:{os.getpid()}",
    )
    return row
