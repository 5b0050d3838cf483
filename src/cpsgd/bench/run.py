"""The benchmark driver: code every sequence with every codec point, score it, append a JSONL row.

Rows already in ``results.jsonl`` are kept and their points are not coded again, so an
interrupted run picks up where it stopped.
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cpsgd.bench import metrics as m
from cpsgd.bench.anchors import AnchorSetting, library_versions, scales_for
from cpsgd.bench.codecs import CPSGD_CODECS, DEFAULT_CODECS, DEFAULT_TARGETS, Point, codec_points
from cpsgd.bench.datasets import Protocol, Sequence, Source, find_sources, load_sequence
from cpsgd.bench.optional import OptionalMetrics
from cpsgd.bench.semantic import SemanticReference
from cpsgd.bench.viewer import DECODED_DIR, ViewerReference, strip_frames
from cpsgd.quality import frame_psnr

RESULTS = "results.jsonl"
# "disocclusion": PSNR and MS-SSIM where the object uncovers background; "temporal": warping error
# against the source's (cpsgd.bench.viewer); "poses": rotation error of poses re-estimated on the
# decoded clip; "masks": J of its re-segmentation.
ALL_METRICS = ("psnr", "ms_ssim", "ms_ssim_rgb", "vmaf", "niqe", "disocclusion", "temporal", "poses", "masks")
# Pose and mask fidelity re-estimate poses and re-segment every encode: together they cost more
# than all the other metrics, so a run computes them only when --metrics asks for them.
DEFAULT_METRICS = tuple(name for name in ALL_METRICS if name not in ("poses", "masks"))


@dataclass(frozen=True)
class BenchConfig:
    dataset: Path
    out_dir: Path
    codecs: tuple[str, ...] = DEFAULT_CODECS
    targets: tuple[float, ...] = DEFAULT_TARGETS
    protocol: Protocol = Protocol()
    scales: tuple[int, ...] | None = None  # anchor encode sizes; None: scales_for(protocol.size)
    anchor_settings: tuple[AnchorSetting, ...] | None = None  # None: each codec's default ladder
    metrics: tuple[str, ...] = DEFAULT_METRICS
    optional: OptionalMetrics = field(default_factory=OptionalMetrics)
    device: str = "cpu"  # torch device of VMAF and the optional networks
    generator: str = "warp"  # cpsgd's decoder-side generator
    generator_options: tuple[tuple[str, str], ...] = ()  # its keyword arguments (diffusion: model_dir, ...)
    gop: int | None = None  # cpsgd's longest GoP; None: the encoder's default
    video_bpp: float = 0.003  # rate of the side-by-side videos in the HTML report
    videos: bool = True


def software_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), **library_versions()}
    for package in ("cpsgd", "numpy", "opencv-python-headless", "vmaf-torch", "scikit-video", "torch"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    return versions


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by an interrupted run: that point is coded again
    return rows


# Anchor points above this multiple of the highest target rate are coded but not scored: the
# tables read hulls at the targets, and a point that far above them never sets a value there.
SCORE_RATE_LIMIT = 4.0
# Seconds per point, measured on a 2-core machine on 13-frame 256x256 clips (0.85 megapixel-
# frames) and scaled by clip size: coding, and each metric. On a quiet machine a 7-clip run
# scored its anchor points in a median 0.46 s (psnr, both MS-SSIMs, disocclusion, temporal);
# under the load of other jobs the same points took 10-30 times longer.
_MEASURED_MEGAPIXEL_FRAMES = 13 * 256 * 256 / 1e6
CODING_SECONDS = {"cpsgd": 3.0, "hold": 3.0, "intra": 3.0, "anchor": 0.15}
METRIC_SECONDS = {"psnr": 0.01, "ms_ssim": 0.05, "ms_ssim_rgb": 0.14, "vmaf": 0.6, "niqe": 0.06,
                  "disocclusion": 0.15, "temporal": 0.03, "poses": 0.5, "masks": 0.4}


def estimate_seconds(config: BenchConfig, jobs: int = 1) -> tuple[float, int]:
    """(estimated wall time, points) of the points not yet in the results; anchors above the
    scoring limit are counted as scored, so it errs long."""
    rows = read_rows(config.out_dir / RESULTS)
    done = {(r["sequence"], r["codec"], r["point"]) for r in rows}
    points = all_points(config)
    per_metric = sum(METRIC_SECONDS.get(name, 0.0) for name in config.metrics)
    megapixel_frames = config.protocol.frames * config.protocol.size**2 / 1e6
    todo = [(s, p) for s in find_sources(config.dataset) for p in points if (s.name, p.codec, p.key) not in done]
    seconds = sum(CODING_SECONDS.get(p.codec, CODING_SECONDS["anchor"]) + per_metric for _, p in todo)
    workers = max(1, min(jobs, os.cpu_count() or 1))
    return seconds * megapixel_frames / _MEASURED_MEGAPIXEL_FRAMES / workers, len(todo)


def all_points(config: BenchConfig) -> list[Point]:
    settings = list(config.anchor_settings) if config.anchor_settings is not None else None
    points: list[Point] = []
    for codec in config.codecs:
        scales = config.scales if config.scales is not None else scales_for(config.protocol.size)
        points += codec_points(
            codec, config.targets, config.generator, settings, scales, config.generator_options, config.gop
        )
    return points


@dataclass
class Reference:
    """What every decoded clip of one sequence is compared with, computed once per sequence."""

    seq: Sequence
    semantic: SemanticReference | None
    viewer: ViewerReference
    fvd: list[float] | None  # the source clip's FVD features
    niqe: float | None  # the source's own NIQE at the working size (NIQE depends on resolution)


def evaluate(
    reference: np.ndarray,
    decoded: np.ndarray,
    config: BenchConfig,
    semantic: SemanticReference | None,
    viewer: ViewerReference | None = None,
) -> dict[str, float | None]:
    scores: dict[str, float | None] = {}
    if "psnr" in config.metrics:
        scores["psnr"] = m.psnr(reference, decoded)
    if "ms_ssim" in config.metrics:
        scores["ms_ssim"] = m.ms_ssim(reference, decoded)
    if "ms_ssim_rgb" in config.metrics:
        scores["ms_ssim_rgb"] = m.ms_ssim_rgb(reference, decoded)
    if "vmaf" in config.metrics:
        scores["vmaf"] = m.vmaf(reference, decoded, config.device)
    if "niqe" in config.metrics:
        scores["niqe"] = m.niqe(decoded)
    if viewer is not None:
        scores.update(viewer.scores(decoded, "disocclusion" in config.metrics, "temporal" in config.metrics))
    if semantic is not None:
        scores.update(semantic.scores(decoded))
    scores.update(config.optional.scores(reference, decoded, config.device))
    return scores


@lru_cache(maxsize=4)
def prepared(config: BenchConfig, source: Source) -> Reference:
    """A sequence and its references, kept while its points are scored (one clip each)."""
    seq = load_sequence(source, config.protocol)
    poses, masks = "poses" in config.metrics, "masks" in config.metrics
    semantic = SemanticReference.of(seq.frames, seq.masks, poses, masks) if poses or masks else None
    viewer = ViewerReference.of(seq.frames, seq.masks, "temporal" in config.metrics)
    niqe = m.niqe(seq.frames) if "niqe" in config.metrics else None
    return Reference(seq, semantic, viewer, config.optional.fvd_features(seq.frames, config.device), niqe)


def _score_task(config: BenchConfig, source: Source, index: int, versions: dict) -> dict:
    return score_point(prepared(config, source), all_points(config)[index], config, versions)


def _share_cores(threads: int) -> None:
    """Give one worker its share of the cores: torch (VMAF) and OpenCV otherwise each use every
    core, and workers competing for them ran VMAF 5-6 times slower (12 s against 2 s a point)."""
    import cv2

    cv2.setNumThreads(threads)
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(threads)


def run_bench(config: BenchConfig, progress: bool = True, jobs: int = 1) -> list[dict]:
    """Code and score every (sequence, point) not yet in the results; return all rows.

    ``jobs`` > 1 scores points in that many worker processes (rows are still written one by one
    as they finish, so an interrupted run resumes)."""
    # SVT-AV1 prints its banner to stderr for every encode unless told to log errors only.
    os.environ.setdefault("SVT_LOG", "1")
    config.out_dir.mkdir(parents=True, exist_ok=True)
    results = config.out_dir / RESULTS
    rows = read_rows(results)
    done = {(r["sequence"], r["codec"], r["point"]) for r in rows}
    points = all_points(config)
    versions = software_versions()
    todo = [
        (source, i)
        for source in find_sources(config.dataset)
        for i, p in enumerate(points)
        if (source.name, p.codec, p.key) not in done
    ]
    with results.open("a") as out, tqdm(total=len(todo), unit="point", desc="bench", disable=not progress) as bar:

        def keep(row: dict) -> None:
            out.write(json.dumps(row) + "\n")
            out.flush()
            rows.append(row)
            bar.set_postfix_str(f"{row['sequence']} {row['point']}")
            bar.update()

        if jobs <= 1:
            for source, i in todo:
                keep(_score_task(config, source, i, versions))
        else:
            # Spawned workers: forked ones would inherit torch's (and CUDA's) threads.
            context = multiprocessing.get_context("spawn")
            threads = max(1, (os.cpu_count() or 1) // jobs)
            with ProcessPoolExecutor(jobs, mp_context=context, initializer=_share_cores, initargs=(threads,)) as pool:
                futures = [pool.submit(_score_task, config, source, i, versions) for source, i in todo]
                for future in as_completed(futures):
                    keep(future.result())
    return rows


def score_point(ref: Reference, point: Point, config: BenchConfig, versions: dict) -> dict:
    """One row: the point's bits, scores, per-frame PSNR, GoP starts and settings."""
    start = time.perf_counter()
    seq, semantic = ref.seq, ref.semantic
    coded = point.run(seq.frames, seq.fps)
    n, h, w = seq.frames.shape[:3]
    bpp = coded.bits / (n * h * w)
    notes = config.optional.notes(n)
    if point.codec in CPSGD_CODECS or bpp <= SCORE_RATE_LIMIT * max(config.targets):
        scores = evaluate(seq.frames, coded.frames, config, semantic, ref.viewer)
    else:
        scores = {}
        notes.append(f"anchor points above {SCORE_RATE_LIMIT:g}x the highest target rate are coded, not scored")
    notes += ref.viewer.notes("disocclusion" in config.metrics, "temporal" in config.metrics)
    if semantic is not None:
        notes += semantic.notes("poses" in config.metrics, "masks" in config.metrics)
    fvd_decoded = config.optional.fvd_features(coded.frames, config.device) if ref.fvd is not None else None
    if point.codec in CPSGD_CODECS:
        # The report's strips show these frames; decoding cpsgd again would cost as long as the run.
        indices = strip_frames(n)
        saved = config.out_dir / DECODED_DIR
        saved.mkdir(exist_ok=True)
        np.savez_compressed(saved / f"{seq.name}__{point.key}.npz", frames=coded.frames[list(indices)], indices=indices)
    row = {
        "sequence": seq.name,
        "codec": point.codec,
        "point": point.key,
        "bits": coded.bits,
        "bpp": bpp,
        "frames": n,
        "width": w,
        "height": h,
        "fps": seq.fps,
        "metrics": scores,
        # Per-frame PSNR and GoP starts: the report measures pops at GoP starts from them.
        "frame_psnr": [round(float(v), 3) for v in frame_psnr(seq.frames, coded.frames)],
        "gop_starts": coded.gop_starts,
        "reference": {"niqe": ref.niqe, "warp_err": ref.viewer.source_warp_err},
        "parts": coded.parts,
        "settings": coded.settings,
        "protocol": asdict(config.protocol),
        "notes": notes,
        "versions": versions,
        "seconds": round(time.perf_counter() - start, 3),
    }
    if fvd_decoded is not None:
        # FVD is a distance between sets of clips: the report pools these features across sequences.
        row["fvd_features"] = {"source": ref.fvd, "decoded": fvd_decoded}
    return row
