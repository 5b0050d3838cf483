"""Operational RD hull and log-BPP interpolation on hand-made points."""

import math

import pytest

from cpsgd.bench.hull import quality_at, rd_hull


def test_hull_keeps_only_points_that_improve_with_rate():
    points = [(0.004, 30.0), (0.001, 20.0), (0.002, 19.0), (0.003, 25.0), (0.003, 24.0), (0.008, 29.0)]
    assert rd_hull(points) == [(0.001, 20.0), (0.003, 25.0), (0.004, 30.0)]


def test_hull_for_lower_is_better_metrics():
    points = [(0.001, 8.0), (0.002, 9.0), (0.004, 5.0)]
    assert rd_hull(points, higher_is_better=False) == [(0.001, 8.0), (0.004, 5.0)]


def test_hull_drops_unusable_points():
    assert rd_hull([(0.0, 10.0), (0.002, float("nan")), (0.003, 12.0)]) == [(0.003, 12.0)]


def test_quality_interpolates_in_log_bpp():
    hull = [(0.001, 20.0), (0.004, 30.0)]
    # 0.002 is halfway between 0.001 and 0.004 in log rate.
    assert quality_at(hull, 0.002) == pytest.approx(25.0)
    assert quality_at(hull, 0.001) == pytest.approx(20.0)
    expected = 20.0 + 10.0 * math.log(0.003 / 0.001) / math.log(4)
    assert quality_at(hull, 0.003) == pytest.approx(expected)


def test_quality_below_minimum_rate_is_unreachable_and_above_maximum_holds():
    hull = [(0.001, 20.0), (0.004, 30.0)]
    assert quality_at(hull, 0.0009) is None
    assert quality_at(hull, 0.01) == pytest.approx(30.0)
    assert quality_at([], 0.01) is None
