"""The benchmark driver: code every sequence with every codec point, score it, append a JSONL row.

Rows already in ``results.jsonl`` are kept and their points are not coded again, so an
interrupted run picks up where it stopped.
"""

from __future__ import annotations

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
from cpsgd.bench.anchors import DEFAULT_SCALES, AnchorSetting, library_versions
from cpsgd.bench.codecs import DEFAULT_CODECS, DEFAULT_TARGETS, Point, codec_points
from cpsgd.bench.datasets import Protocol, Sequence, Source, find_sources, load_sequence
from cpsgd.bench.optional import OptionalMetrics
from cpsgd.bench.semantic import SemanticReference

RESULTS = "results.jsonl"
# "poses": rotation error of poses re-estimated on the decoded clip; "masks": J of its re-segmentation.
ALL_METRICS = ("psnr", "ms_ssim", "vmaf", "niqe", "poses", "masks")


@dataclass(frozen=True)
class BenchConfig:
    dataset: Path
    out_dir: Path
    codecs: tuple[str, ...] = DEFAULT_CODECS
    targets: tuple[float, ...] = DEFAULT_TARGETS
    protocol: Protocol = Protocol()
    scales: tuple[int, ...] = DEFAULT_SCALES
    anchor_settings: tuple[AnchorSetting, ...] | None = None  # None: each codec's default ladder
    metrics: tuple[str, ...] = ALL_METRICS
    optional: OptionalMetrics = field(default_factory=OptionalMetrics)
    device: str = "cpu"  # torch device of VMAF and the optional networks
    generator: str = "warp"  # cpsgd's decoder-side generator
    generator_options: tuple[tuple[str, str], ...] = ()  # its keyword arguments (diffusion: model_dir, ...)
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


def all_points(config: BenchConfig) -> list[Point]:
    settings = list(config.anchor_settings) if config.anchor_settings is not None else None
    points: list[Point] = []
    for codec in config.codecs:
        points += codec_points(
            codec, config.targets, config.generator, settings, config.scales, config.generator_options
        )
    return points


def evaluate(
    reference: np.ndarray,
    decoded: np.ndarray,
    config: BenchConfig,
    semantic: SemanticReference | None,
) -> dict[str, float | None]:
    scores: dict[str, float | None] = {}
    if "psnr" in config.metrics:
        scores["psnr"] = m.psnr(reference, decoded)
    if "ms_ssim" in config.metrics:
        scores["ms_ssim"] = m.ms_ssim(reference, decoded)
    if "vmaf" in config.metrics:
        scores["vmaf"] = m.vmaf(reference, decoded, config.device)
    if "niqe" in config.metrics:
        scores["niqe"] = m.niqe(decoded)
    if semantic is not None:
        scores.update(semantic.scores(decoded))
    scores.update(config.optional.scores(reference, decoded, config.device))
    return scores


@lru_cache(maxsize=4)
def _prepared(
    config: BenchConfig, source: Source
) -> tuple[Sequence, SemanticReference | None, list[float] | None]:
    """A sequence, its semantic reference and its FVD features, kept while its points are scored
    (one clip each)."""
    seq = load_sequence(source, config.protocol)
    poses, masks = "poses" in config.metrics, "masks" in config.metrics
    semantic = SemanticReference.of(seq.frames, seq.masks, poses, masks) if poses or masks else None
    return seq, semantic, config.optional.fvd_features(seq.frames, config.device)


def _score_task(config: BenchConfig, source: Source, index: int, versions: dict) -> dict:
    seq, semantic, fvd_source = _prepared(config, source)
    return score_point(seq, all_points(config)[index], config, semantic, versions, fvd_source)


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
            with ProcessPoolExecutor(jobs, mp_context=context) as pool:
                futures = [pool.submit(_score_task, config, source, i, versions) for source, i in todo]
                for future in as_completed(futures):
                    keep(future.result())
    return rows


def score_point(
    seq: Sequence,
    point: Point,
    config: BenchConfig,
    semantic: SemanticReference | None,
    versions: dict,
    fvd_source: list[float] | None = None,
) -> dict:
    """One row; ``fvd_source``: the source clip's FVD features, when FVD is computed."""
    start = time.perf_counter()
    coded = point.run(seq.frames, seq.fps)
    n, h, w = seq.frames.shape[:3]
    scores = evaluate(seq.frames, coded.frames, config, semantic)
    notes = config.optional.notes(n)
    if semantic is not None:
        notes += semantic.notes("poses" in config.metrics, "masks" in config.metrics)
    fvd_decoded = config.optional.fvd_features(coded.frames, config.device) if fvd_source is not None else None
    row = {
        "sequence": seq.name,
        "codec": point.codec,
        "point": point.key,
        "bits": coded.bits,
        "bpp": coded.bits / (n * h * w),
        "frames": n,
        "width": w,
        "height": h,
        "fps": seq.fps,
        "metrics": scores,
        "parts": coded.parts,
        "settings": coded.settings,
        "protocol": asdict(config.protocol),
        "notes": notes,
        "versions": versions,
        "seconds": round(time.perf_counter() - start, 3),
    }
    if fvd_decoded is not None:
        # FVD is a distance between sets of clips: the report pools these features across sequences.
        row["fvd_features"] = {"source": fvd_source, "decoded": fvd_decoded}
    return row
