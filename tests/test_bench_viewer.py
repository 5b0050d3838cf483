"""Viewer metrics on tiny synthetic clips whose answer is known: a ghost, a flicker, a pop."""

import numpy as np
import pytest

from cpsgd.bench.report import with_pops
from cpsgd.bench.viewer import ViewerReference, gop_pop, uncovered_regions
from tests.conftest import textured_clip

N, SIZE = 6, 64


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray]:
    """A textured background sliding 2 px per frame and a flat red square moving right 6 px per frame."""
    frames = textured_clip(N, SIZE, SIZE).copy()
    masks = np.zeros((N, SIZE, SIZE), np.uint8)
    for i in range(N):
        masks[i, 20:40, 6 + 6 * i : 26 + 6 * i] = 1
        frames[i][masks[i] == 1] = (220, 30, 30)
    return frames, masks


def test_uncovered_region_is_masked_in_frame_0_and_free_in_frame_i(scene):
    _, masks = scene
    region = uncovered_regions(masks)
    assert not region[0].any()
    assert region[3].sum() == 20 * 18 and region[3, 20:40, 6:24].all()


def test_a_ghost_on_the_uncovered_background_lowers_disocclusion_fidelity(scene):
    frames, masks = scene
    ref = ViewerReference.of(frames, masks, temporal=False)
    rng = np.random.default_rng(0)
    clean = np.clip(frames + rng.normal(0, 3, frames.shape), 0, 255).astype(np.uint8)
    ghost = clean.copy()
    region = uncovered_regions(masks)
    ghost[region] = (220, 30, 30)  # the square's colour left behind where it was in frame 0
    good, bad = ref.scores(clean, temporal=False), ref.scores(ghost, temporal=False)
    assert good["disocc_psnr"] > 35 and bad["disocc_psnr"] < good["disocc_psnr"] - 20
    assert good["disocc_ms_ssim"] > 0.95 and bad["disocc_ms_ssim"] < good["disocc_ms_ssim"] - 0.3


def test_no_masks_or_a_still_object_skip_disocclusion(scene):
    frames, masks = scene
    assert ViewerReference.of(frames, None, temporal=False).scores(frames, temporal=False) == {}
    still = np.repeat(masks[:1], N, axis=0)
    ref = ViewerReference.of(frames, still, temporal=False)
    assert ref.uncovered is None and "disocclusion skipped" in ref.notes(True, False)[0]


def test_a_flickering_clip_has_higher_temporal_error_than_a_steady_one(scene):
    frames, masks = scene
    ref = ViewerReference.of(frames, masks)
    assert ref.scores(frames)["warp_err_excess"] == pytest.approx(0.0, abs=1e-9)
    steady = np.clip(frames.astype(int) + 8, 0, 255).astype(np.uint8)  # off, but the same in every frame
    flicker = np.clip(frames.astype(int) + np.array([15, -15] * (N // 2))[:, None, None, None], 0, 255).astype(np.uint8)
    steady_err = ref.scores(steady)["warp_err_excess"]
    flicker_err = ref.scores(flicker)["warp_err_excess"]
    assert abs(steady_err) < 1.5
    assert flicker_err > steady_err + 8


def test_gop_pop_is_the_jump_into_each_gop_start():
    saw_tooth = [30.0, 27.0, 24.0, 30.0, 27.0, 24.0, 31.0]
    assert gop_pop(saw_tooth, [0, 3, 6]) == pytest.approx((6 + 7) / 2)
    assert gop_pop(saw_tooth, [0]) is None


def test_anchors_are_measured_at_the_gop_starts_of_the_cpsgd_point_nearest_in_rate():
    def row(codec, bpp, psnr, starts=None):
        return {"sequence": "s", "codec": codec, "point": f"{codec}-{bpp}", "bpp": bpp, "metrics": {"psnr": 1.0},
                "frame_psnr": psnr, "gop_starts": starts}

    rows = [row("cpsgd", 0.003, [30, 24, 31, 25], [0, 2]), row("cpsgd", 0.01, [30, 29, 28, 27], [0]),
            row("x265", 0.0031, [28, 27.5, 27, 26.5]), row("x265", 0.011, [33, 32, 31, 30])]
    pops = {(r["codec"], r["bpp"]): r["metrics"]["gop_pop_db"] for r in with_pops(rows)}
    assert pops[("cpsgd", 0.003)] == pytest.approx(7.0)  # a pop is detected
    assert pops[("x265", 0.0031)] == pytest.approx(0.5)  # measured at frame 2, cpsgd's GoP start
    assert pops[("cpsgd", 0.01)] is None and pops[("x265", 0.011)] is None  # one GoP: no pop
