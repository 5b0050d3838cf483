"""Rate control: targets met, the split chosen by rendering, presets, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from cpsgd.errors import InputError
from cpsgd.geometry import GEOMETRY_CODECS
from cpsgd.masks.base import MASK_CODECS
from cpsgd.pipeline import PRESETS, EncoderConfig, decode_bytes, encode_frames
from cpsgd.pipeline.encoder import Encoder
from cpsgd.pipeline.ratecontrol import (
    MaskOption,
    PictureOption,
    SplitSearch,
    eval_indices,
)
from cpsgd.synth import SceneConfig, make_scene


@pytest.fixture(scope="module")
def clip():
    return make_scene(SceneConfig(traj="pan", objects=1, num_frames=12, width=96, height=96, seed=4))


def _bpp(data: bytes, frames: np.ndarray) -> float:
    n, h, w = frames.shape[:3]
    return 8 * len(data) / (n * h * w)


def _encode(clip, **options) -> bytes:
    config = EncoderConfig(segmenter=None, pose_estimator=None, **options)
    return encode_frames(clip.frames, clip.fps, config, clip.trajectory, clip.masks)


def test_rate_meets_the_target_on_average(clip) -> None:
    ratios = []
    for bpp in (0.04, 0.08):
        data = _encode(clip, bpp=bpp)
        ratios.append(_bpp(data, clip.frames) / bpp)
        assert decode_bytes(data).shape == clip.frames.shape
    assert all(0.9 <= r <= 1.03 for r in ratios), ratios
    assert abs(np.mean(ratios) - 1) <= 0.05, ratios


def test_unspent_bytes_carry_over_between_gops(clip) -> None:
    data = _encode(clip, bpp=0.06, gop=4, adaptive_gop=False)
    assert abs(_bpp(data, clip.frames) / 0.06 - 1) <= 0.05


def test_the_chosen_split_renders_best_and_fits(clip) -> None:
    frames, masks = clip.frames, clip.masks
    config = EncoderConfig(bpp=0.06, segmenter=None, pose_estimator=None)
    encoder = Encoder(config)
    budget = 700
    search = SplitSearch(frames, clip.trajectory, budget)
    options = encoder._mask_options(frames, masks, False)
    assert [o.factor for o in options] == list(PRESETS["high"].mask_factors)  # the nearest preset's
    # the objects' motion goes with every mask option whose first decoded mask has an object
    assert any(o.motion_payload is not None for o in options)
    assert all((o.motion_payload is not None) == (o.decoded is not None and o.decoded[0].any()) for o in options)
    pictures = encoder._pictures(frames, clip.trajectory, masks)
    assert [p.name for p in pictures][:2] == ["mosaic", "plain"]  # then the mosaic without strip
    chosen = search.choose(options, pictures)
    assert chosen.total_bytes <= budget
    previews = [search.evaluate(m, pictures[0]) for m in search.affordable(options)]
    best = max(previews, key=lambda s: s.score)
    # the best preview's masks (perhaps without their object motion), unless another picture won
    assert chosen.masks.payload is best.masks.payload or chosen.picture is not pictures[0]
    assert list(chosen.eval_frames) == list(eval_indices(len(frames), 5))


def test_masks_are_dropped_only_where_the_preset_allows(clip) -> None:
    assert any(p.drop_masks for p in PRESETS.values()) and not all(p.drop_masks for p in PRESETS.values())
    for name, preset in PRESETS.items():
        encoder = Encoder(EncoderConfig(preset=name, segmenter=None, pose_estimator=None))
        estimated = [o.factor for o in encoder._mask_options(clip.frames, clip.masks, False)]
        assert (None in estimated) == preset.drop_masks, name
        given = [o.factor for o in encoder._mask_options(clip.frames, clip.masks, True)]
        assert None not in given  # the user's own masks are always sent


def test_no_masks_is_an_option_and_costs_nothing(clip) -> None:
    none = MaskOption(None, None, None)
    assert none.cost == 0
    codec = GEOMETRY_CODECS.get("grid8")()
    plain = PictureOption.make("plain", clip.frames[0], None, codec, "av1")
    search = SplitSearch(clip.frames, clip.trajectory, 400)
    split = search.evaluate(none, plain)
    assert np.isfinite(split.score) and split.picture.cost == 0
    assert len(split.intra.payload) <= search.intra_budget(none, plain)


def test_presets_set_rate_and_side_information() -> None:
    assert EncoderConfig(preset="tiny").target_bpp() == 0.0005
    assert EncoderConfig(preset="tiny").candidate_mask_factors() == PRESETS["tiny"].mask_factors
    assert EncoderConfig(bpp=0.0016).operating_point() is PRESETS["low"]  # nearest preset
    assert EncoderConfig(bpp=0.004, preset="high").target_bpp() == 0.004  # bpp overrides the rate
    assert EncoderConfig().target_bpp() == PRESETS["medium"].bpp
    assert EncoderConfig(mask_factors=(12,)).candidate_mask_factors() == (12,)
    with pytest.raises(InputError):
        EncoderConfig(preset="huge").validated()
    with pytest.raises(InputError):
        EncoderConfig(mask_factors=(0,)).validated()


def test_mask_codec_factor_is_what_the_stream_carries(clip) -> None:
    from cpsgd.bitstream.container import BitstreamReader, SectionType

    data = _encode(clip, bpp=0.06, mask_factors=(12,))
    for gop in BitstreamReader.from_bytes(data).gops():
        section = gop.find(SectionType.MASKS)
        if section is not None:  # the rate control may also drop the masks
            assert section.payload[0] == 12
            MASK_CODECS.by_code(section.backend)().decompress(section.payload, gop.num_frames, 96, 96)


def test_same_input_same_bytes_with_rate_control(clip) -> None:
    config = {"bpp": 0.05, "gop": 6}
    assert _encode(clip, **config) == _encode(clip, **config)


def test_tiny_rate_keeps_the_pose_stream() -> None:
    from cpsgd.bitstream.container import BitstreamReader, SectionType

    clip = make_scene(SceneConfig(traj="pan", objects=1, num_frames=25, width=128, height=128, seed=5))
    data = encode_frames(clip.frames, clip.fps, EncoderConfig(preset="tiny", segmenter=None, pose_estimator=None),
                         clip.trajectory, clip.masks)
    gops = list(BitstreamReader.from_bytes(data).gops())
    assert all(g.find(SectionType.POSES) is not None for g in gops)
    assert decode_bytes(data).shape == clip.frames.shape
