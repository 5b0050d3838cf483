"""The diffusion generator on tiny random SVD components (the real code path, on CPU)."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from cpsgd.errors import InputError  # noqa: E402
from cpsgd.generators.base import GENERATORS, GopConditions  # noqa: E402
from cpsgd.generators.diffusion import (  # noqa: E402
    DiffusionConfig,
    DiffusionGenerator,
    add_diffusion_decode_args,
    chunk_plan,
)
from cpsgd.generators.diffusion.adapters import (  # noqa: E402
    CAMERA_SUBFOLDER,
    SEGMENTATION_SUBFOLDER,
    CameraAdapter,
    SegmentationAdapter,
)
from cpsgd.generators.diffusion.control import ControlledUNet  # noqa: E402
from cpsgd.generators.diffusion.plucker import plucker_embedding  # noqa: E402
from cpsgd.generators.diffusion.testing import build_tiny_svd, save_tiny_svd  # noqa: E402
from cpsgd.geometry.model import MosaicLayout, SceneGeometry  # noqa: E402
from cpsgd.poses.trajectory import Intrinsics, Trajectory  # noqa: E402

torch.set_num_threads(1)  # tiny models: threading overhead outweighs the work
FAST = DiffusionConfig(num_inference_steps=1, decode_chunk_size=2)


@pytest.fixture(scope="module")
def svd_dir(tmp_path_factory):
    return save_tiny_svd(tmp_path_factory.mktemp("svd"), num_frames=3)


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_svd(num_frames=3)


def _intra(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _rotation_y(degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def _pan(n: int, degrees_per_frame: float, step: float = 0.0) -> Trajectory:
    c2w = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        c2w[i, :3, :3] = _rotation_y(i * degrees_per_frame)
        c2w[i, 0, 3] = i * step
    return Trajectory(Intrinsics(0.8, 1.2), np.linalg.inv(c2w))


def _save_adapters(directory, tiny, camera_scale=0.0, seg_scale=0.0, seed=0):
    """Adapters fitted to ``tiny``'s U-Net; nonzero scales give the zero layers random weights."""
    torch.manual_seed(seed)
    camera = CameraAdapter.from_unet(tiny.unet, 2, norm_num_groups=8)
    segmentation = SegmentationAdapter.from_unet(tiny.unet, 2, norm_num_groups=8)
    with torch.no_grad():
        for layer in list(camera.fusions) + list(segmentation.projections):
            layer.weight.normal_(0.0, camera_scale if isinstance(layer, torch.nn.Linear) else seg_scale)
    camera.save_pretrained(directory / CAMERA_SUBFOLDER)
    segmentation.save_pretrained(directory / SEGMENTATION_SUBFOLDER)
    return directory


def test_registered_and_lazy():
    assert GENERATORS.get("diffusion") is DiffusionGenerator
    code = (
        "import sys, cpsgd, cpsgd.generators.diffusion, cpsgd.training\n"
        "print(any(m in sys.modules for m in ('torch', 'diffusers', 'transformers', 'accelerate')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_plucker_matches_hand_computation():
    # Frame 1 is rotated 90 degrees about y and moved by x=1 relative to frame 0; frame 0 itself is
    # an arbitrary pose, which the embedding must factor out.
    relative = np.eye(4)
    relative[:3, :3] = _rotation_y(90.0)
    relative[:3, 3] = [1.0, 0.0, 0.0]
    first = np.eye(4)
    first[:3, :3] = _rotation_y(30.0) @ np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]])
    first[:3, 3] = [3.0, -2.0, 5.0]
    c2w = np.stack([first, first @ relative])
    trajectory = Trajectory(Intrinsics(fx=0.5, fy=1.0, cx=0.5, cy=0.5), np.linalg.inv(c2w))
    emb = plucker_embedding(trajectory, height=2, width=4)  # K = [[2,0,2],[0,2,1],[0,0,1]] in pixels
    assert emb.shape == (2, 6, 2, 4) and emb.dtype == np.float32
    norm = np.sqrt(0.75**2 + 0.25**2 + 1.0)
    # Pixel (0, 0): centre (0.5, 0.5) -> camera ray (-0.75, -0.25, 1).
    np.testing.assert_allclose(emb[0, :, 0, 0], [0, 0, 0, -0.75 / norm, -0.25 / norm, 1 / norm], atol=1e-6)
    # Frame 1: d = R_y(90) (-0.75, -0.25, 1) = (1, -0.25, 0.75); o = (1, 0, 0); o x d = (0, -0.75, -0.25).
    expected = np.array([0, -0.75, -0.25, 1, -0.25, 0.75]) / norm
    np.testing.assert_allclose(emb[1, :, 0, 0], expected, atol=1e-6)
    # A larger grid extends the same rays: pixel (3, 1) keeps its coordinates.
    padded = plucker_embedding(trajectory, 2, 4, grid_height=8, grid_width=8)
    np.testing.assert_allclose(padded[:, :, :2, :4], emb, atol=1e-6)


def test_chunk_plan():
    assert chunk_plan(3, 4, 1) == [(0, 3)]
    assert chunk_plan(7, 3, 1) == [(0, 3), (2, 5), (4, 7)]
    assert chunk_plan(8, 3, 1) == [(0, 3), (2, 5), (4, 7), (5, 8)]
    for n, size, overlap in [(25, 14, 1), (50, 25, 4), (9, 4, 2)]:
        plan = chunk_plan(n, size, overlap)
        assert plan[0][0] == 0 and plan[-1][1] == n
        assert all(b - a == size for a, b in plan)
        assert all(b[0] <= a[1] - overlap for a, b in zip(plan, plan[1:], strict=False))


def test_generate_any_size_and_deterministic(svd_dir):
    generator = DiffusionGenerator(svd_dir, config=FAST)
    intra = _intra(20, 30)  # not a multiple of 8: padded for the model, cropped back
    masks = np.zeros((3, 20, 30), np.uint8)
    conditions = GopConditions(3, 20, 30, intra, _pan(3, 2.0), masks, caption="a dog")
    out = generator.generate(conditions)
    assert out.shape == (3, 20, 30, 3) and out.dtype == np.uint8
    assert np.array_equal(out[0], intra)
    assert not np.array_equal(out[1], intra)
    assert np.array_equal(generator.generate(conditions), out)
    assert generator.generate(GopConditions(1, 20, 30, intra)).shape == (1, 20, 30, 3)


def test_mosaic_intra_is_cut_to_frame_zero(svd_dir):
    # The intra picture is a 40x30 background mosaic; frame 0 is its 24x16 window at (8, 5).
    mosaic = _intra(30, 40, seed=3)
    geometry = SceneGeometry.at_infinity().with_layout(MosaicLayout(40, 30, 8, 5))
    conditions = GopConditions(2, 16, 24, mosaic, side_channels={"geometry": geometry})
    window = mosaic[5:21, 8:32]
    generator = DiffusionGenerator(svd_dir, config=FAST)
    seen = []
    run = generator._run_chunk
    generator._run_chunk = lambda image, *rest: seen.append(image.copy()) or run(image, *rest)
    out = generator.generate(conditions)
    assert np.array_equal(out[0], window)
    assert np.array_equal(seen[0][:16, :24], window)  # SVD is conditioned on frame 0, not the mosaic
    assert np.array_equal(out[0], GENERATORS.get("hold")().generate(conditions)[0])


def test_long_gop_in_overlapping_chunks(svd_dir):
    config = DiffusionConfig(num_inference_steps=1, decode_chunk_size=3, frames_per_call=3, chunk_overlap=1)
    generator = DiffusionGenerator(svd_dir, config=config)
    generator.load()
    calls = []
    run = generator._run_chunk

    def spy(image, frames, trajectory, masks, size, noise):
        calls.append((image.copy(), frames, len(trajectory)))
        return run(image, frames, trajectory, masks, size, noise)

    generator._run_chunk = spy
    intra = _intra(16, 24)
    out = generator.generate(GopConditions(7, 16, 24, intra, _pan(7, 3.0)))
    assert out.shape == (7, 16, 24, 3)
    assert [(frames, poses) for _, frames, poses in calls] == [(3, 3)] * 3
    # Each later chunk starts from the frame the previous one generated where they overlap.
    assert np.array_equal(calls[0][0], intra)
    assert np.array_equal(calls[1][0], out[2]) and np.array_equal(calls[2][0], out[4])


def test_untrained_adapters_leave_svd_unchanged(svd_dir, tiny, tmp_path):
    conditions = GopConditions(3, 16, 24, _intra(16, 24), _pan(3, 5.0, 0.3), np.ones((3, 16, 24), np.uint8))
    plain = DiffusionGenerator(svd_dir, config=FAST).generate(conditions)
    adapters = _save_adapters(tmp_path, tiny)
    steered = DiffusionGenerator(svd_dir, adapters, config=FAST).generate(conditions)
    assert np.array_equal(plain, steered)


def test_camera_adapter_follows_poses(svd_dir, tiny, tmp_path):
    adapters = _save_adapters(tmp_path, tiny, camera_scale=0.5)
    shutil.rmtree(tmp_path / SEGMENTATION_SUBFOLDER)  # camera adapter only
    generator = DiffusionGenerator(svd_dir, adapters, config=FAST)
    intra = _intra(16, 24)
    left = generator.generate(GopConditions(3, 16, 24, intra, _pan(3, -10.0)))
    right = generator.generate(GopConditions(3, 16, 24, intra, _pan(3, 10.0)))
    assert not np.array_equal(left[1:], right[1:])
    assert np.array_equal(left[0], right[0])


def _unet_call_and_two_masks():
    """The tiny U-Net's inputs (3 frames of 8x12 latents) and two mask sequences that differ."""
    sample = torch.randn(1, 3, 8, 8, 12)
    args = (sample, torch.tensor(0.5), torch.randn(1, 1, 32), torch.randn(1, 3))
    masks_a = -torch.ones(1, 3, 1, 16, 24)
    masks_b = masks_a.clone()
    masks_b[..., 4:12, 6:18] = 1.0
    return args, masks_a, masks_b


def test_segmentation_adapter_steers_up_blocks(tiny):
    torch.manual_seed(0)
    unet = tiny.unet
    segmentation = SegmentationAdapter.from_unet(unet, 2, norm_num_groups=8)
    args, masks_a, masks_b = _unet_call_and_two_masks()
    with torch.no_grad():
        plain = unet(*args, return_dict=False)[0]
        controlled = ControlledUNet(unet, segmentation=segmentation)
        assert torch.equal(controlled(*args, masks=masks_b), plain)  # zero projections: no effect
        for layer in [*segmentation.projections, segmentation.condition_embedding[-1]]:
            layer.weight.normal_(0.0, 0.2)
        out_a, out_b = controlled(*args, masks=masks_a), controlled(*args, masks=masks_b)
        controlled.remove()
        assert torch.equal(unet(*args, return_dict=False)[0], plain)  # hooks removed
    assert not torch.allclose(out_a, out_b)
    # Guidance batches (uncond + cond) reuse the same masks for both halves.
    sample, timestep, embeddings, time_ids = args
    pair = (torch.cat([sample, sample]), timestep, torch.cat([embeddings] * 2), torch.cat([time_ids] * 2))
    with torch.no_grad():
        controlled = ControlledUNet(unet, segmentation=segmentation)
        doubled = controlled(*pair, masks=masks_b)
        controlled.remove()
    torch.testing.assert_close(doubled[1:], out_b, rtol=1e-4, atol=1e-5)


def test_adapters_round_trip_bit_exactly(tiny, tmp_path):
    torch.manual_seed(1)
    for cls in (CameraAdapter, SegmentationAdapter):
        adapter = cls.from_unet(tiny.unet, 2, norm_num_groups=8)
        with torch.no_grad():
            for parameter in adapter.parameters():
                parameter.normal_()
        adapter.save_pretrained(tmp_path / cls.__name__)
        assert (tmp_path / cls.__name__ / "diffusion_pytorch_model.safetensors").is_file()
        loaded = cls.from_pretrained(tmp_path / cls.__name__)
        public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
        assert public(loaded.config) == public(adapter.config)
        state, reloaded = adapter.state_dict(), loaded.state_dict()
        assert state.keys() == reloaded.keys()
        assert all(torch.equal(state[k], reloaded[k]) for k in state)


def test_adapter_for_another_model_fails_clearly(svd_dir, tiny, tmp_path):
    # Trained for a U-Net with other channel widths.
    camera = CameraAdapter(
        **{**CameraAdapter.config_for_unet(tiny.unet, 2), "block_out_channels": [16, 32]}, norm_num_groups=8
    )
    camera.save_pretrained(tmp_path / "a" / CAMERA_SUBFOLDER)
    with pytest.raises(InputError, match=r"CameraAdapter .* built for a different model: block_out_channels"):
        DiffusionGenerator(svd_dir, tmp_path / "a", config=FAST).load()
    # A config.json that does not describe its weights file.
    good = CameraAdapter.from_unet(tiny.unet, 2, norm_num_groups=8)
    good.save_pretrained(tmp_path / "b" / CAMERA_SUBFOLDER)
    config_path = tmp_path / "b" / CAMERA_SUBFOLDER / "config.json"
    config = json.loads(config_path.read_text())
    config["layers_per_level"] = 2
    config_path.write_text(json.dumps(config))
    with pytest.raises(InputError, match="cannot load CameraAdapter .*do not match its config.json"):
        DiffusionGenerator(svd_dir, tmp_path / "b", config=FAST).load()
    (tmp_path / "c").mkdir()
    with pytest.raises(InputError, match="no adapters"):
        DiffusionGenerator(svd_dir, tmp_path / "c", config=FAST).load()
    with pytest.raises(InputError, match="not a diffusers model directory"):
        DiffusionGenerator(tmp_path, config=FAST).load()


def test_cli_options_build_the_generator(svd_dir):
    parser = argparse.ArgumentParser()
    add_diffusion_decode_args(parser)
    args = parser.parse_args(
        [
            "--model",
            str(svd_dir),
            "--steps",
            "3",
            "--dtype",
            "fp32",
            "--frames-per-call",
            "5",
            "--attention",
            "math",
            "--guidance",
            "1",
            "2",
        ]
    )
    generator = DiffusionGenerator.from_cli_args(args)
    assert generator.config.num_inference_steps == 3 and generator.config.frames_per_call == 5
    assert generator.config.attention == "math" and generator.config.max_guidance_scale == 2.0
    with pytest.raises(InputError, match="--model"):
        DiffusionGenerator.from_cli_args(parser.parse_args([]))
    with pytest.raises(InputError, match="chunk_overlap"):
        DiffusionConfig(frames_per_call=4, chunk_overlap=4)


def test_bench_with_the_diffusion_generator(svd_dir, tmp_path, capsys):
    from cpsgd.cli import main
    from tests.test_bench_datasets import make_davis

    dataset = make_davis(tmp_path / "davis", ("seq",), frames=3, annotate=False)
    options = ["--codecs", "cpsgd", "--bpp", "0.05", "--frames", "3", "--size", "16", "--metrics", "psnr"]
    report = tmp_path / "report"
    command = ["bench", str(dataset), "-o", str(report), *options, "--no-videos", "--generator", "diffusion"]
    assert main(command) == 2 and "--model" in capsys.readouterr().err
    assert main([*command, "--model", str(svd_dir)]) == 0
    rows = [json.loads(line) for line in (report / "results.jsonl").read_text().splitlines()]
    assert [(row["codec"], row["settings"]["generator"]) for row in rows] == [("cpsgd", "diffusion")]
    assert rows[0]["settings"]["config"]["generator"] == "diffusion"  # the stream is made for it too


def test_sd_timesteps_match_the_noise_level():
    from cpsgd.generators.diffusion.adapters import sd_timesteps

    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    abar = torch.cumprod(1 - betas, 0)
    sigmas = ((1 - abar) / abar).sqrt()
    picks = torch.tensor([0, 250, 500, 999])
    assert torch.equal(sd_timesteps(0.25 * sigmas[picks].log()), picks)


@pytest.fixture(scope="module")
def controlnet_dir(tmp_path_factory):
    from cpsgd.generators.diffusion.testing import save_tiny_controlnet

    return save_tiny_controlnet(tmp_path_factory.mktemp("controlnet"))


def test_controlnet_adapter_steers_up_blocks_and_trains(tiny, controlnet_dir):
    from diffusers import ControlNetModel

    from cpsgd.generators.diffusion.adapters import ControlNetAdapter

    torch.manual_seed(0)
    controlnet = ControlNetModel.from_pretrained(controlnet_dir).requires_grad_(False)
    adapter = ControlNetAdapter.from_models(tiny.unet, controlnet, 2, norm_num_groups=8)
    # The tiny U-Net's up blocks enter at levels 1 (the ControlNet's deepest: its mid block) and 0.
    assert list(adapter.config.source_indices) == [-1, 1]
    args, masks_a, masks_b = _unet_call_and_two_masks()
    with torch.no_grad():
        plain = tiny.unet(*args, return_dict=False)[0]
    controlled = ControlledUNet(tiny.unet, segmentation=adapter, controlnet=controlnet)
    with torch.no_grad():
        assert torch.equal(controlled(*args, masks=masks_b), plain)  # zero-initialised: no effect
        for block in adapter.blocks:
            block.out.weight.normal_(0.0, 0.2)
        out_a, out_b = controlled(*args, masks=masks_a), controlled(*args, masks=masks_b)
    assert not torch.allclose(out_a, out_b)
    controlled(*args, masks=masks_b).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in adapter.blocks[0].project.parameters())
    assert all(p.grad is None for p in controlnet.parameters())  # the ControlNet stays frozen
    controlled.remove()
    with pytest.raises(ValueError, match="needs its ControlNet"):
        ControlledUNet(tiny.unet, segmentation=adapter)


def test_generator_with_a_controlnet_adapter(svd_dir, tiny, controlnet_dir, tmp_path):
    from diffusers import ControlNetModel

    from cpsgd.generators.diffusion.adapters import ControlNetAdapter

    torch.manual_seed(0)
    controlnet = ControlNetModel.from_pretrained(controlnet_dir)
    adapter = ControlNetAdapter.from_models(tiny.unet, controlnet, 2, norm_num_groups=8)
    with torch.no_grad():
        for block in adapter.blocks:
            block.out.weight.normal_(0.0, 0.5)
    adapter.save_pretrained(tmp_path / SEGMENTATION_SUBFOLDER)
    generator = DiffusionGenerator(svd_dir, tmp_path, FAST, controlnet_dir)
    intra = _intra(16, 24)
    still = np.zeros((3, 16, 24), np.uint8)
    moving = still.copy()
    moving[:, 4:12, 2:10] = 1
    a = generator.generate(GopConditions(3, 16, 24, intra, masks=still))
    b = generator.generate(GopConditions(3, 16, 24, intra, masks=moving))
    assert not np.array_equal(a[1:], b[1:]) and np.array_equal(a[0], b[0])
    with pytest.raises(InputError, match="--controlnet"):
        DiffusionGenerator(svd_dir, tmp_path, FAST).load()
    with pytest.raises(InputError, match="does not exist"):
        DiffusionGenerator(svd_dir, tmp_path, FAST, tmp_path / "missing")


def test_gpu_check_full_size_path_runs_tiny_on_the_cpu(capsys):
    """benchmarks/gpu_check.py --full: the SVD-XT check's code, at the tiny configuration."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    gpu_check.full_size_check("cpu", ("fp32",), ((16, 24),), 3, 1, tiny=True)
    out = capsys.readouterr().out
    assert "tiny fp32: train step, 3 frames 16x24" in out and "tiny fp32: decode 3 frames 16x24, 1 steps" in out


def test_svd_xt_configuration_is_the_published_one():
    from diffusers import UNetSpatioTemporalConditionModel

    from cpsgd.generators.diffusion.adapters import temporal_blocks
    from cpsgd.generators.diffusion.testing import SVD_XT_UNET

    with torch.device("meta"):  # no memory: the architecture only
        unet = UNetSpatioTemporalConditionModel(**SVD_XT_UNET)
    assert 1.4e9 < sum(p.numel() for p in unet.parameters()) < 1.6e9
    assert len(temporal_blocks(unet)) == 16 and unet.config.num_frames == 25
