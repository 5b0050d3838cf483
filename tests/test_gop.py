"""Adaptive GoPs: scene cuts start a new GoP, drift ends one early, the look-ahead stays bounded."""

from __future__ import annotations

import numpy as np

from cpsgd.bitstream.container import BitstreamReader
from cpsgd.pipeline import EncoderConfig, decode_bytes
from cpsgd.pipeline.encoder import encode_gops
from cpsgd.pipeline.ratecontrol import Split, drift_cut
from cpsgd.pipeline.scenecut import LookAhead, first_cut
from cpsgd.synth import SceneConfig, make_scene

FAST = {"segmenter": None, "pose_estimator": None}  # these tests are about GoP boundaries


def _scene(traj: str, seed: int, frames: int = 8) -> np.ndarray:
    return make_scene(SceneConfig(traj=traj, objects=1, num_frames=frames, width=64, height=64, seed=seed)).frames


def _encode(frames: np.ndarray, config: EncoderConfig, block: int = 5):
    import io
    from fractions import Fraction

    out = io.BytesIO()
    blocks = (frames[i : i + block] for i in range(0, len(frames), block))
    report = encode_gops(blocks, out, frames.shape[2], frames.shape[1], Fraction(25), config)
    return out.getvalue(), report


def test_scene_cut_starts_a_new_gop() -> None:
    frames = np.concatenate([_scene("pan", 1), _scene("shake", 7)])
    assert first_cut(frames, 3.0) == 8
    data, report = _encode(frames, EncoderConfig(bpp=0.05, gop=25, **FAST))
    assert [g.num_frames for g in report.gops] == [8, 8]
    assert [g.ended_by for g in report.gops] == ["scene cut", "end"]
    assert [g.num_frames for g in BitstreamReader.from_bytes(data).gops()] == [8, 8]
    assert decode_bytes(data).shape == frames.shape


def test_no_cut_inside_one_moving_scene() -> None:
    for traj in ("pan", "dolly", "orbit", "shake"):
        assert first_cut(_scene(traj, 3, 12), 3.0) == 12


def test_fixed_gops_without_adaptive_mode() -> None:
    frames = np.concatenate([_scene("pan", 1), _scene("shake", 7)])
    _, report = _encode(frames, EncoderConfig(bpp=0.05, gop=6, adaptive_gop=False, **FAST))
    assert [g.num_frames for g in report.gops] == [6, 6, 4]


def test_gop_length_is_bounded_and_lookahead_holds_at_most_gop_frames() -> None:
    frames = _scene("pan", 2, 13)
    lookahead = LookAhead((frames[i : i + 1] for i in range(len(frames))), capacity=4)
    seen = []
    while (window := lookahead.window()) is not None:
        assert len(window) <= 4
        seen.append(window[0])
        lookahead.advance(1)
    assert np.array_equal(np.stack(seen), frames)
    _, report = _encode(frames, EncoderConfig(bpp=0.05, gop=4, **FAST))
    assert all(g.num_frames <= 4 for g in report.gops) and sum(g.num_frames for g in report.gops) == 13


def _split(psnr: list[float], frames: list[int]) -> Split:
    return Split(None, None, None, 0.0, np.array(psnr), np.array(frames), None)  # type: ignore[arg-type]


def test_drift_cut_rule() -> None:
    frames = [0, 6, 12, 18, 24]
    assert drift_cut(_split([30, 22, 21, 20, 19], frames), 6.0, 6) is None  # gentle decay holds
    assert drift_cut(_split([30, 22, 21, 15, 14], frames), 6.0, 6) == 18  # falls 7 dB by frame 18
    assert drift_cut(_split([30, 22, 21, 15, 14], frames), 6.0, 10) == 15  # both parts keep 10 frames
    assert drift_cut(_split([30, 22, 15, 14, 14], frames), 6.0, 13) is None  # 13 + 13 > 25
    assert drift_cut(_split([30, 22, 21, 20, 14], frames), 6.0, 6) == 19  # late drift: a 6-frame tail


def test_drift_ends_a_gop_early() -> None:
    # a slow cross-fade between two scenes: no cut, but no warp of the first frame predicts the end
    a, b = _scene("pan", 1, 1)[0].astype(np.float32), _scene("shake", 7, 1)[0].astype(np.float32)
    fade = np.stack([(1 - t) * a + t * b for t in np.linspace(0, 1, 20)]).round().astype(np.uint8)
    assert first_cut(fade, 3.0) == 20
    # the warp mode's drift cut (at this rate a video codes the fade whole, and video does not drift)
    _, drifting = _encode(fade, EncoderConfig(bpp=0.2, gop=20, drift_db=3.0, min_gop=4, inter=False, **FAST))
    assert drifting.gops[0].ended_by == "drift" and drifting.gops[0].num_frames < 20
    assert sum(g.num_frames for g in drifting.gops) == 20
    _, fixed = _encode(fade, EncoderConfig(bpp=0.2, gop=20, drift_db=50.0, inter=False, **FAST))
    assert [g.num_frames for g in fixed.gops] == [20]
    _, video = _encode(fade, EncoderConfig(bpp=0.2, gop=20, drift_db=3.0, min_gop=4, **FAST))
    assert [(g.num_frames, g.mode) for g in video.gops] == [(20, "inter")]


def test_drift_that_a_new_intra_cannot_fix_keeps_the_gop_whole(monkeypatch) -> None:
    # every frame is the same picture under fresh noise: some frame always renders a little worse
    # than frame 1, which proposes a cut, but two GoPs would only halve each intra frame's bytes
    from cpsgd.pipeline.encoder import Encoder

    gains: list[float] = []
    measure = Encoder._cut_gain
    monkeypatch.setattr(Encoder, "_cut_gain", lambda self, *a: gains.append(measure(self, *a)) or gains[-1])
    rng = np.random.default_rng(0)
    base = _scene("pan", 1, 1)[0].astype(np.int16)
    noisy = np.stack([np.clip(base + rng.integers(-4, 5, base.shape), 0, 255) for _ in range(16)]).astype(np.uint8)
    _, report = _encode(noisy, EncoderConfig(bpp=0.05, gop=16, drift_db=0.01, min_gop=4, **FAST))
    assert len(gains) == 1 and gains[0] <= 0  # the cut was proposed, tried and found worse
    assert [g.num_frames for g in report.gops] == [16] and report.gops[0].ended_by == "length"
