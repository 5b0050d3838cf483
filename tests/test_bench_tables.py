"""Report tables, mean curves and the anchor shown beside cpsgd, on hand-made rows."""

import pytest

from cpsgd.bench.report import VideoChoice, best_anchor, mean_curve, quality_table
from cpsgd.bench.viewer import strip_frames


def row(sequence: str, codec: str, bpp: float, **metrics: float) -> dict:
    return {"sequence": sequence, "codec": codec, "point": f"{codec}-{bpp:g}", "bpp": bpp, "metrics": metrics}


def test_a_mean_is_given_only_where_every_sequence_reaches_the_rate():
    rows = [row("a", "x265", 0.001, psnr=20.0), row("a", "x265", 0.004, psnr=26.0),
            row("b", "x265", 0.003, psnr=30.0), row("b", "x265", 0.004, psnr=31.0)]
    cells = quality_table(rows, "psnr", (0.002, 0.004))["x265"]
    # At 0.002 only 'a' reaches: its 23 dB alone would look like a fall from the 28.5 dB at 0.004.
    assert cells[0].mean is None and cells[0].text() == "reached on 1/2"
    assert cells[1].mean == pytest.approx(28.5) and cells[1].text(1) == "28.5"


def test_codecs_without_the_metric_are_left_out_and_niqe_has_a_source_row():
    rows = [row("a", "cpsgd", 0.003, psnr=20.0), row("a", "x265", 0.003, psnr=21.0, niqe=30.0)]
    rows[1]["reference"] = {"niqe": 25.0}
    assert set(quality_table(rows, "niqe", (0.003,))) == {"x265", "source"}
    assert quality_table(rows, "niqe", (0.003,))["source"][0].mean == 25.0


def test_mean_curve_spans_every_rate_and_keeps_single_point_fronts():
    # Sequence b's front stops at 0.004: beyond it b holds its best value, as a user would get.
    grid, mean = mean_curve([[(0.001, 20.0), (0.01, 30.0)], [(0.002, 24.0), (0.004, 26.0)]])
    assert grid[0] == pytest.approx(0.002) and grid[-1] == pytest.approx(0.01)
    assert mean[-1] == pytest.approx((30.0 + 26.0) / 2)
    # A codec whose extra bits never improve the metric has one-point fronts: still a mean.
    grid, mean = mean_curve([[(0.003, 18.0)], [(0.003, 20.0)]])
    assert list(grid) == [0.003] and list(mean) == [19.0]


def test_best_anchor_fits_the_budget_and_the_caption_says_when_none_does():
    cps = row("a", "cpsgd", 0.003, vmaf=10.0)
    rows = [cps, row("a", "x264", 0.0025, vmaf=8.0), row("a", "svtav1", 0.0029, vmaf=9.0),
            row("a", "x265", 0.0031, vmaf=30.0)]
    chosen = best_anchor(rows, "a", 0.003, "vmaf")
    assert chosen["codec"] == "svtav1"  # the best that spends no more bits; x265 spends 3% more
    assert "more bits" not in VideoChoice("a", cps, chosen).caption()
    costly = best_anchor([cps, row("a", "x264", 0.004, vmaf=5.0), row("a", "x265", 0.006, vmaf=9.0)], "a", 0.003, "vmaf")
    assert costly["bpp"] == 0.004
    assert "the cheapest shown spends 33% more bits" in VideoChoice("a", cps, costly).caption()


def test_strip_frames():
    assert strip_frames(25) == (0, 12, 24) and strip_frames(50) == (0, 12, 24)
    assert strip_frames(13) == (0, 6, 12) and strip_frames(1) == (0,)
