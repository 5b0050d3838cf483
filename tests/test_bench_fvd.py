"""FVD: the I3D network and its weight files, the Fréchet distance, the pairing of points across
sequences, and the path through `cpsgd bench` with a tiny randomly initialised I3D."""

import argparse
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from cpsgd.bench import add_bench_command
from cpsgd.bench.anchors import AnchorSetting
from cpsgd.bench.cli import config_from_args
from cpsgd.bench.datasets import Protocol, find_sources, load_sequence
from cpsgd.bench.fvd import (
    CLIP_FRAMES,
    I3D_SIZE,
    clip_window,
    frechet_distance,
    fvd,
    fvd_table,
    i3d_input,
)
from cpsgd.bench.i3d import I3D, I3DConfig, load_i3d
from cpsgd.bench.optional import OptionalMetrics
from cpsgd.bench.report import write_report
from cpsgd.bench.run import BenchConfig, run_bench
from cpsgd.errors import InputError
from tests.conftest import textured_clip
from tests.test_bench_datasets import make_davis

TINY = I3DConfig(width=1 / 32, num_classes=8)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: threads only add overhead on a shared CPU
    yield
    torch.set_num_threads(threads)


def tiny_i3d(seed: int = 0) -> I3D:
    """A tiny random I3D with non-trivial batch-norm statistics (so that loading them matters)."""
    torch.manual_seed(seed)
    net = I3D(TINY)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(2.0, 3.0)  # keeps activations from fading over 20 layers
    return net.eval()


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> tuple[I3D, object]:
    path = tmp_path_factory.mktemp("i3d") / "i3d_tiny.safetensors"
    net = tiny_i3d()
    save_file(net.state_dict(), path)
    return net, path


def test_default_network_has_the_published_shapes():
    state = I3D().state_dict()
    shapes = {
        "Conv3d_1a_7x7.conv3d.weight": (64, 3, 7, 7, 7),
        "Conv3d_2c_3x3.bn.running_var": (192,),
        "Mixed_3b.b1b.conv3d.weight": (128, 96, 3, 3, 3),
        "Mixed_4f.b3b.conv3d.weight": (128, 528, 1, 1, 1),
        "Mixed_5c.b0.conv3d.weight": (384, 832, 1, 1, 1),
        "logits.conv3d.weight": (400, 1024, 1, 1, 1),
        "logits.conv3d.bias": (400,),
    }
    assert {k: tuple(state[k].shape) for k in shapes} == shapes
    # 3 stem convs, 9 mixed blocks of 6 convs, each with batch norm; then the logits conv.
    assert sum(k.endswith("conv3d.weight") for k in state) == 3 + 9 * 6 + 1
    assert "Mixed_3b.b3a" not in {k.rsplit(".", 1)[0] for k in state}  # the pool branch has no weights


def test_same_padding_reproduces_tensorflow_output_sizes(tiny_weights):
    net, _ = tiny_weights
    sizes = {}
    for name in ("Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "MaxPool3d_4a_3x3", "Mixed_5c"):
        getattr(net, name).register_forward_hook(lambda m, i, o, name=name: sizes.__setitem__(name, o.shape[2:]))
    with torch.no_grad():
        out = net(torch.zeros(2, 3, CLIP_FRAMES, I3D_SIZE, I3D_SIZE))
    # 'SAME' padding gives ceil(size / stride) at every strided layer.
    assert sizes == {"Conv3d_1a_7x7": (8, 112, 112), "MaxPool3d_2a_3x3": (8, 56, 56),
                     "MaxPool3d_4a_3x3": (4, 14, 14), "Mixed_5c": (2, 7, 7)}
    assert out.shape == (2, TINY.num_classes)


def test_preprocessing_takes_the_centred_window_resized_to_224_in_minus1_1():
    frames = np.stack([np.full((40, 60, 3), i * 10, np.uint8) for i in range(25)])
    assert [int(f[0, 0, 0]) // 10 for f in clip_window(frames)] == list(range(4, 20))
    x = i3d_input(frames)
    assert x.shape == (1, 3, CLIP_FRAMES, I3D_SIZE, I3D_SIZE) and x.dtype == np.float32
    assert x[0, 0, 0, 0, 0] == pytest.approx(40 / 127.5 - 1) and x[0, :, -1].max() == pytest.approx(190 / 127.5 - 1)


def test_frechet_distance_against_hand_values():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2 with variances 4 and 1.
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[1.0]])) == pytest.approx(5.0)
    # Diagonal 2-D covariances: the same, per axis.
    value = frechet_distance(np.zeros(2), np.diag([9.0, 1.0]), np.array([1.0, 1.0]), np.diag([1.0, 4.0]))
    assert value == pytest.approx(2 + (3 - 1) ** 2 + (1 - 2) ** 2)
    rng = np.random.default_rng(0)
    x, y = rng.normal(0, 1, (50, 1)), rng.normal(3, 2, (60, 1))
    hand = (x.mean() - y.mean()) ** 2 + (x.std(ddof=1) - y.std(ddof=1)) ** 2
    assert fvd(x, y) == pytest.approx(hand, rel=1e-9)


def test_fvd_of_few_clips_in_many_dimensions():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 3, (4, 100))
    assert fvd(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = rng.normal(0, 1, 100)
    assert fvd(a, a + shift) == pytest.approx(shift @ shift, rel=1e-7)  # equal covariances: the mean term
    # Rank-deficient covariances (rank 3 of 100): the distance in the span equals the full one.
    b = rng.normal(1, 2, (4, 100))
    full = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert fvd(a, b) == pytest.approx(full, rel=1e-6)
    with pytest.raises(ValueError):
        fvd(a[:1], b)


def test_weights_round_trip_through_safetensors_and_torch_files(tiny_weights, tmp_path):
    net, path = tiny_weights
    x = torch.from_numpy(i3d_input(textured_clip(CLIP_FRAMES, 48, 48)))
    loaded = load_i3d(path)
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=1e-5)
        assert not torch.allclose(tiny_i3d(seed=1)(x), net(x), atol=1e-3)
    # A torch file as older ports ship it: no batch-norm step counters.
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "i3d.pt")
    with torch.no_grad():
        assert torch.allclose(load_i3d(tmp_path / "i3d.pt")(x), net(x), atol=1e-5)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("change", ["shape", "missing", "extra", "not_i3d", "garbage", "torchscript"])
def test_a_state_dict_that_does_not_fit_is_one_input_error(tiny_weights, tmp_path, change):
    net, _ = tiny_weights
    state = dict(net.state_dict())
    if change == "shape":
        state["Mixed_4c.b2b.conv3d.weight"] = torch.zeros(3, 3, 3, 3, 3)
    elif change == "missing":
        del state["Mixed_5b.b0.bn.weight"]
    elif change == "extra":
        state["classifier.weight"] = torch.zeros(2)
    elif change == "not_i3d":
        state = {"features.0.weight": torch.zeros(4, 3, 3, 3)}
    path = tmp_path / "bad.pt"
    if change == "garbage":
        path.write_bytes(b"not a state dict")
    elif change == "torchscript":
        torch.jit.script(torch.nn.Linear(2, 2)).save(path)
    else:
        torch.save(state, path)
    with pytest.raises(InputError, match="bad.pt"):
        load_i3d(path)


def row(seq: str, codec: str, bpp: float, psnr: float, source: list[float], decoded: list[float]) -> dict:
    return {"sequence": seq, "codec": codec, "point": f"{codec}-{bpp}", "bpp": bpp, "metrics": {"psnr": psnr},
            "fvd_features": {"source": source, "decoded": decoded}}


def test_fvd_table_pools_the_hull_point_nearest_each_target_across_sequences():
    rng = np.random.default_rng(2)
    src = {s: rng.normal(size=5).tolist() for s in "abc"}
    rows, used = [], {}
    for s in "abc":
        for bpp, psnr in ((0.001, 20.0), (0.002, 24.0), (0.0021, 23.0), (0.004, 27.0)):
            if s == "c" and bpp == 0.001:
                continue  # sequence c never went that low
            dec = rng.normal(size=5).tolist()
            rows.append(row(s, "x264", bpp, psnr, src[s], dec))
            used[(s, bpp)] = dec
    rows.append(row("a", "cpsgd", 0.0019, 20.0, src["a"], src["a"]))
    table = fvd_table(rows, (0.001, 0.002, 0.003, 0.0045))

    def expected(bpp: float, seqs: str) -> float:
        return fvd(np.array([src[s] for s in seqs]), np.array([used[(s, bpp)] for s in seqs]))

    low, mid, between, high = table["x264"]
    assert (low.clips, low.total, low.value) == (2, 3, pytest.approx(expected(0.001, "ab")))
    # 0.0021 is off the PSNR hull (0.002 does better with fewer bits), so 0.002 is used.
    assert (mid.clips, mid.value, mid.bpp) == (3, pytest.approx(expected(0.002, "abc")), pytest.approx(0.002))
    assert between.text() == "unreachable"  # no hull point within a factor 1.25 of 0.003
    assert high.value == pytest.approx(expected(0.004, "abc")) and "(3/3)" in high.text()
    assert table["cpsgd"][1].text() == "needs 2 clips (1/1)" and table["cpsgd"][0].clips == 0


def test_notes_without_weights_and_with_too_few_frames(tiny_weights):
    _, path = tiny_weights
    assert "fvd skipped: no --fvd-weights given" in OptionalMetrics().notes(25)
    metrics = OptionalMetrics(fvd=path)
    assert not any("fvd" in n for n in metrics.notes(25))
    assert any("fvd skipped: I3D needs 16-frame clips" in n for n in metrics.notes(8))
    assert metrics.fvd_features(textured_clip(8, 32, 32)) is None


def test_cli_option_and_missing_file(tmp_path):
    parser = argparse.ArgumentParser()
    add_bench_command(parser.add_subparsers())
    (tmp_path / "i3d.safetensors").write_bytes(b"")
    args = parser.parse_args(["bench", str(tmp_path), "-o", str(tmp_path / "r"),
                              "--fvd-weights", str(tmp_path / "i3d.safetensors")])
    assert config_from_args(args).optional.fvd == tmp_path / "i3d.safetensors"
    args.fvd_weights = tmp_path / "missing.safetensors"
    with pytest.raises(InputError, match="missing.safetensors"):
        config_from_args(args)


def test_bench_rows_carry_i3d_features_and_the_report_has_an_fvd_table(tiny_weights, tmp_path):
    net, path = tiny_weights
    config = BenchConfig(
        dataset=make_davis(tmp_path / "davis", ("seq_a", "seq_b"), frames=CLIP_FRAMES, annotate=False),
        out_dir=tmp_path / "report",
        codecs=("x264",),
        protocol=Protocol(frames=CLIP_FRAMES, size=32),
        anchor_settings=(AnchorSetting("x264", 32, "crf", 30), AnchorSetting("x264", 32, "crf", 45)),
        metrics=("psnr",),
        optional=OptionalMetrics(fvd=path),
        videos=False,
    )
    rows = run_bench(config, progress=False)
    assert len(rows) == 4
    frames = load_sequence(find_sources(config.dataset)[0], config.protocol).frames
    with torch.no_grad():
        expected_source = net(torch.from_numpy(i3d_input(frames)))[0].numpy()
    for r in rows:
        feats = r["fvd_features"]
        assert len(feats["source"]) == len(feats["decoded"]) == TINY.num_classes
        assert not any("fvd" in n for n in r["notes"])
        assert np.allclose(feats["source"], expected_source, rtol=1e-4, atol=1e-5)
    # Both sequences hold the same clip, so each setting gives both the same rate and features, and
    # the FVD reduces to the squared distance between source and decoded features.
    first = rows[0]
    target = first["bpp"]
    write_report(rows, config.out_dir, (target, target / 100))
    src, dec = (np.array(first["fvd_features"][k]) for k in ("source", "decoded"))
    summary = json.loads((config.out_dir / "summary.json").read_text())
    reached, unreachable = summary["fvd"]["x264"]
    assert np.sum((src - dec) ** 2) > 1e-5  # the coding changed the features (rounding: ~1e-12)
    assert reached["clips"] == 2 and reached["value"] == pytest.approx(np.sum((src - dec) ** 2), rel=1e-4)
    assert unreachable["clips"] == 0 and unreachable["value"] is None
    assert "## FVD at target rates" in (config.out_dir / "summary.md").read_text()
    assert "FVD at target rates" in (config.out_dir / "index.html").read_text()
