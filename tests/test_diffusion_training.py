"""Adapter training (`cpsgd train`) on tiny random SVD components and a tiny synthetic clip."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("accelerate")
cv2 = pytest.importorskip("cv2")

from cpsgd.errors import InputError  # noqa: E402
from cpsgd.generators.diffusion.adapters import (  # noqa: E402
    CAMERA_SUBFOLDER,
    SEGMENTATION_SUBFOLDER,
    CameraAdapter,
    SegmentationAdapter,
)
from cpsgd.generators.diffusion.testing import save_tiny_svd  # noqa: E402
from cpsgd.poses.re10k import write_re10k  # noqa: E402
from cpsgd.poses.trajectory import Intrinsics, Trajectory  # noqa: E402
from cpsgd.training import add_train_command, config_from_args  # noqa: E402
from cpsgd.training.config import TrainConfig  # noqa: E402
from cpsgd.poses.formats import crop_intrinsics  # noqa: E402
from cpsgd.training.data import ClipDataset, scan_clips  # noqa: E402
from cpsgd.training.trainer import train  # noqa: E402

torch.set_num_threads(1)  # tiny models: threading overhead outweighs the work


def _reset_accelerate() -> None:
    """accelerate keeps one process-wide state; each training run here picks its own precision."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    yield
    _reset_accelerate()


@pytest.fixture(scope="module")
def svd_dir(tmp_path_factory):
    return save_tiny_svd(tmp_path_factory.mktemp("svd"), num_frames=3)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """One clip of 5 frames (20x32, cropped to 16x24 for training) with poses and masks."""
    root = tmp_path_factory.mktemp("data")
    clip = root / "clip0"
    (clip / "masks").mkdir(parents=True)
    rng = np.random.default_rng(0)
    c2w = np.tile(np.eye(4), (5, 1, 1))
    c2w[:, 0, 3] = np.linspace(0.0, 0.4, 5)
    for i in range(5):
        cv2.imwrite(str(clip / f"{i:05d}.png"), rng.integers(0, 256, (20, 32, 3), dtype=np.uint8))
        mask = np.zeros((20, 32), np.uint8)
        mask[5:15, 4 + 3 * i : 14 + 3 * i] = 1
        cv2.imwrite(str(clip / "masks" / f"{i:05d}.png"), mask)
    write_re10k(clip / "poses.txt", Trajectory(Intrinsics(0.6, 0.9), np.linalg.inv(c2w)))
    return root


def _config(svd_dir, data_dir, output, adapter="camera", **options) -> TrainConfig:
    values = dict(steps=2, height=16, width=24, num_frames=3, checkpoint_every=1, log_every=1, cpu=True)
    values.update(options)
    return TrainConfig(adapter=adapter, data_dir=data_dir, model_dir=svd_dir, output_dir=output, **values)


def test_crop_keeps_rays_of_the_real_camera():
    # A 32x20 image cropped to its central 30x20 (aspect 3:2): the principal point moves by 1 pixel.
    k = Intrinsics(fx=0.5, fy=0.8, cx=0.5, cy=0.5)
    cropped = crop_intrinsics(k, height=20, width=32, box=(0, 1, 20, 30))
    assert cropped.fx == pytest.approx(0.5 * 32 / 30) and cropped.fy == pytest.approx(0.8)
    assert cropped.cx == pytest.approx((16 - 1) / 30) and cropped.cy == pytest.approx(0.5)


def test_dataset_items(data_dir):
    clips = scan_clips(data_dir, need_poses=True, need_masks=True, min_frames=3)
    dataset = ClipDataset(clips, num_frames=3, height=16, width=24, stride=2)
    assert len(dataset) == 1  # frames 0, 2, 4
    item = dataset[0]
    assert item["frames"].shape == (3, 3, 16, 24) and item["frames"].abs().max() <= 1.0
    assert item["first"].shape == (16, 24, 3) and item["first"].dtype == torch.uint8
    assert item["plucker"].shape == (3, 6, 16, 24)
    assert set(item["masks"].unique().tolist()) == {-1.0, 1.0}
    with pytest.raises(InputError, match="no clip of at least 9 frames"):
        scan_clips(data_dir, need_poses=True, need_masks=False, min_frames=9)


def test_two_camera_steps_train_and_resume(svd_dir, data_dir, tmp_path):
    result = train(_config(svd_dir, data_dir, tmp_path))
    assert result["step"] == 2 and np.isfinite(result["loss"])
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2]
    trained = CameraAdapter.from_pretrained(tmp_path / CAMERA_SUBFOLDER)
    # The fusion layers start at zero; two optimiser steps must have moved them.
    assert all(fusion.weight.abs().sum() > 0 for fusion in trained.fusions)
    checkpoint = tmp_path / "checkpoints" / "step-00000002"
    assert (checkpoint / CAMERA_SUBFOLDER / "diffusion_pytorch_model.safetensors").is_file()
    assert not list(checkpoint.glob("model*.safetensors"))  # the frozen U-Net is not checkpointed

    resumed = train(_config(svd_dir, data_dir, tmp_path, steps=3, resume=True, gradient_checkpointing=True))
    assert resumed["step"] == 3
    again = CameraAdapter.from_pretrained(tmp_path / CAMERA_SUBFOLDER)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(trained.state_dict().values(), again.state_dict().values(), strict=True)
    )


def test_joint_training_from_separate_adapters(svd_dir, data_dir, tmp_path):
    first = train(_config(svd_dir, data_dir, tmp_path / "seg", adapter="segmentation", steps=1))
    assert first["step"] == 1
    start = SegmentationAdapter.from_pretrained(tmp_path / "seg" / SEGMENTATION_SUBFOLDER)
    _reset_accelerate()
    train(
        _config(
            svd_dir,
            data_dir,
            tmp_path / "joint",
            adapter="joint",
            steps=1,
            init_adapters=tmp_path / "seg",
            mixed_precision="bf16",
        )
    )
    camera = CameraAdapter.from_pretrained(tmp_path / "joint" / CAMERA_SUBFOLDER)
    joint = SegmentationAdapter.from_pretrained(tmp_path / "joint" / SEGMENTATION_SUBFOLDER)
    assert all(f.weight.abs().sum() > 0 for f in camera.fusions)
    changed = [
        not torch.equal(a, b)
        for a, b in zip(start.state_dict().values(), joint.state_dict().values(), strict=True)
    ]
    assert any(changed)


def test_train_command_line(svd_dir, data_dir, tmp_path):
    parser = argparse.ArgumentParser()
    add_train_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "train",
            "--adapter",
            "camera",
            "--data",
            str(data_dir),
            "--model",
            str(svd_dir),
            "-o",
            str(tmp_path),
            "--steps",
            "5",
            "--mixed-precision",
            "bf16",
        ]
    )
    config = config_from_args(args)
    assert config.steps == 5 and config.mixed_precision == "bf16" and args.handler.__name__ == "run_train"
    with pytest.raises(InputError, match="--resume: no checkpoint"):
        train(_config(svd_dir, data_dir, tmp_path, resume=True))
    with pytest.raises(InputError, match="--adapter"):
        _config(svd_dir, data_dir, tmp_path, adapter="both")


def test_controlnet_segmentation_adapter_trains(svd_dir, data_dir, tmp_path):
    from cpsgd.generators.diffusion.adapters import ControlNetAdapter
    from cpsgd.generators.diffusion.testing import save_tiny_controlnet

    controlnet = save_tiny_controlnet(tmp_path / "controlnet")
    config = _config(svd_dir, data_dir, tmp_path / "out", adapter="segmentation", steps=1, controlnet_dir=controlnet)
    assert train(config)["step"] == 1
    saved = json.loads((tmp_path / "out" / SEGMENTATION_SUBFOLDER / "config.json").read_text())
    assert saved["_class_name"] == "ControlNetAdapter"  # only the adapter blocks, not the ControlNet
    adapter = ControlNetAdapter.from_pretrained(tmp_path / "out" / SEGMENTATION_SUBFOLDER)
    assert all(block.out.weight.abs().sum() > 0 for block in adapter.blocks)  # the zero layers moved
    # A from-scratch segmentation adapter cannot seed a ControlNet one.
    _reset_accelerate()
    train(_config(svd_dir, data_dir, tmp_path / "plain", adapter="segmentation", steps=1))
    _reset_accelerate()
    with pytest.raises(InputError, match="another kind of segmentation adapter"):
        train(_config(svd_dir, data_dir, tmp_path / "x", adapter="joint", steps=1, controlnet_dir=controlnet,
                      init_adapters=tmp_path / "plain"))


def _write_video(path, count: int, fps: int) -> None:
    """Frame i is flat grey 10 * i, losslessly coded (FFV1), frame i shown at i / fps seconds."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv444p"
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 10 * i, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def test_train_prepare_samples_frames_at_the_camera_timestamps(tmp_path, capsys):
    from cpsgd.cli import main
    from cpsgd.poses.re10k import read_re10k

    (tmp_path / "videos").mkdir()
    (tmp_path / "cameras").mkdir()
    _write_video(tmp_path / "videos" / "QShWPZxTDoE.mkv", 20, 10)
    _write_video(tmp_path / "videos" / "clipb.mkv", 20, 10)
    c2w = np.tile(np.eye(4), (5, 1, 1))
    c2w[:, 0, 3] = np.arange(5)
    trajectory = Trajectory(Intrinsics(0.6, 0.9), np.linalg.inv(c2w))
    # Out of order, one between frames 2 and 3 (nearer 3), one past the end of the 2 s video.
    stamps = np.array([0, 500_000, 290_000, 1_900_000, 5_000_000])
    write_re10k(tmp_path / "cameras" / "clipa.txt", trajectory, header="https://www.youtube.com/watch?v=QShWPZxTDoE",
                timestamps_us=stamps)
    write_re10k(tmp_path / "cameras" / "clipb.txt", Trajectory(trajectory.intrinsics, trajectory.world_to_camera[:2]),
                header="https://www.youtube.com/watch?v=missing", timestamps_us=stamps[:2])
    write_re10k(tmp_path / "cameras" / "nothing.txt", trajectory, header="https://example.com")
    out = tmp_path / "data"
    args = ["train", "prepare", "--cameras", str(tmp_path / "cameras"), "--videos", str(tmp_path / "videos"),
            "-o", str(out), "--val-fraction", "0"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "nothing.txt: no video" in printed and "1 camera lines lay past the end" in printed
    clip = out / "train" / "clipa"
    greys = [int(cv2.imread(str(p))[0, 0, 0]) for p in sorted((clip / "frames").glob("*.png"))]
    assert greys == [0, 30, 50, 190]  # frames 0, 3, 5, 19: by time, in time order
    poses, kept = read_re10k(clip / "poses.txt")
    assert kept.tolist() == [0, 290_000, 500_000, 1_900_000]
    np.testing.assert_allclose(poses.world_to_camera, trajectory.world_to_camera[[0, 2, 1, 3]])
    assert len(scan_clips(out / "train", need_poses=True, need_masks=False, min_frames=2)) == 2
    assert main(args) == 2  # the output is not empty: nothing is overwritten without --force
    assert main([*args, "--force", "--val-fraction", "0.99", "--segmenter", "motion"]) == 0
    assert sorted(p.name for p in (out / "val").iterdir()) == ["clipa", "clipb"]
    assert len(list((out / "val" / "clipa" / "masks").glob("*.png"))) == 4


def test_validation_scores_held_out_clips_with_and_without_conditions(svd_dir, data_dir, tmp_path):
    train(_config(svd_dir, data_dir, tmp_path, steps=2, val_dir=data_dir, val_every=1, val_windows=2))
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    scored = [entry for entry in log if "val_loss" in entry]
    assert [entry["step"] for entry in scored] == [1, 2]
    assert all(np.isfinite(entry["val_loss"]) for entry in scored)
    # The same seeded noise each time: without conditions the frozen model scores the same.
    assert scored[0]["val_loss_without_conditions"] == scored[1]["val_loss_without_conditions"]
    # The trained camera adapter changes the prediction once its zero layers have moved.
    assert scored[1]["val_loss"] != scored[1]["val_loss_without_conditions"]
