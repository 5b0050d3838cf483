"""A bounded fuzz run over the whole decoder: every mutant decodes or raises BitstreamError."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cpsgd.bitstream.fuzz import fuzz_decoder
from cpsgd.generators import GENERATORS
from cpsgd.generators.hold import HoldGenerator
from cpsgd.pipeline import EncoderConfig, encode_frames
from cpsgd.synth import SceneConfig, make_scene

from conftest import textured_clip


def seed_streams() -> list[bytes]:
    """Streams covering every section type and every intra codec."""
    clip = make_scene(SceneConfig(traj="orbit", objects=2, num_frames=6, width=64, height=48, seed=5))
    full = encode_frames(
        clip.frames, clip.fps, EncoderConfig(gop=3, bpp=0.2, caption="two cats orbit a camera", rate_control=False),
        clip.trajectory, clip.masks,
    )
    paper_poses = encode_frames(
        clip.frames, clip.fps, EncoderConfig(gop=6, bpp=0.2, pose_codec="paper", mosaic=False),
        clip.trajectory, clip.masks,
    )
    photo = textured_clip(2, 48, 64)
    plain = [
        encode_frames(photo, 25, EncoderConfig(bpp=0.5, intra_codec=codec, pose_estimator=None, segmenter=None))
        for codec in ("webp", "avif")
    ]
    return [full, paper_poses, *plain]


def test_mutants_decode_or_raise_bitstream_error() -> None:
    report = fuzz_decoder(seed_streams(), count=400, seed=1, generator="warp")
    assert report.tried == 400
    assert report.outcomes["rejected"] > 0 and report.outcomes["decoded"] > 0


def test_fuzz_report_counts_failures(monkeypatch) -> None:
    """The mutation fuzzer's report counts what goes wrong (the benchmark prints that count)."""

    class Broken(HoldGenerator):
        name = "broken"

        def generate(self, conditions):
            raise ValueError("a bug")

    monkeypatch.setitem(GENERATORS._by_name, "broken", Broken)
    report = fuzz_decoder(seed_streams()[:1], count=20, seed=2, generator="broken", stop_at_failure=False)
    assert report.tried == 20 and report.failed == report.outcomes["crashed"] > 0
    assert report.outcomes["decoded"] == 0 and len(report.failures) == report.failed


def test_crafted_streams_exit_0_or_2_within_limits() -> None:
    """A bounded run of the structure-aware fuzzer (benchmarks/fuzz_crafted.py runs them all):
    valid-CRC streams with absurd sizes, counts, layouts and payloads, each decoded by the CLI in a
    child process, must exit 0 or 2 within the time limit and the peak-RSS ceiling."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_crafted.py"
    result = subprocess.run(
        [sys.executable, str(script), "--random", "12", "--sample", "28", "--time-limit", "30", "--json"],
        capture_output=True, text=True, timeout=600,
    )
    totals = json.loads(result.stdout.strip().splitlines()[-1])
    assert totals["failed"] == [] and totals["failures"] == 0, totals["failed"]
    assert totals["streams"] == 28 and totals["exit_0"] > 0 and totals["exit_2"] > 0
    assert result.returncode == 0
