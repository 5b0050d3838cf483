"""Toy-scale proof that the diffusion generator's adapters learn to follow their conditions (CPU).

    nice -n 10 timeout 2700 python benchmarks/diffusion_toy.py --work /tmp/cpsgd-toy --budget-s 1400

1. `cpsgd synth` scenes (exact poses and masks; camera motion x3) at 64x64, 8 frames: 24 training
   and 4 held-out clips (other seeds), the trajectories pan, orbit, shake and dolly in turn.
2. A tiny SVD-architecture model trained from scratch here, standing in for pretrained SVD: the
   temporal VAE (reconstruction + a small KL term), then the U-Net on the training clips with
   SVD's EDM loss (``cpsgd train`` only fits adapters on a frozen model).
3. `cpsgd train --adapter camera`, then `--adapter joint` started from the camera adapter
   (camera + from-scratch segmentation encoder), as the paper trains them (separately, then jointly).
   Each of the four training stages gets a quarter of ``--budget-s`` (the adapters as many steps as
   the U-Net's measured speed fits), so the run is time-boxed on a shared machine.
4. Each held-out clip is coded with `cpsgd encode --generator diffusion`'s configuration and decoded
   four ways: the tiny model without adapters, with the camera adapter, with camera + segmentation,
   and with the warp generator on the same stream. Printed per decoder, averaged over the clips:
   rot_err_deg, the rotation error (degrees, relative to frame 0) of poses re-estimated with the
   `flow` estimator on the generated frames against the poses the stream sent; mask_j, the J of the
   `motion` segmenter's masks of the generated frames against the sent masks; PSNR against the
   source. The row "source" runs the same estimators on the source clip: their floor.

The model is tiny and briefly trained, on simple synthetic scenes: the figures say whether the
adapters move the output towards its conditions at this scale, not what SVD-XT would do.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

FPS = 25.0
TRAJECTORIES = ("pan", "orbit", "shake", "dolly")
MOTION = 3.0  # camera speed x3: a few degrees over 8 frames, well above the estimator's floor


def make_clips(root: Path, count: int, first_seed: int, frames: int, size: int) -> list:
    """Render and write ``count`` scenes (the trajectories in turn); returns their configs."""
    from cpsgd.synth.io import write_clip
    from cpsgd.synth.scene import SceneConfig, make_scene

    configs = []
    for i in range(count):
        config = SceneConfig(
            traj=TRAJECTORIES[i % len(TRAJECTORIES)], objects=1, num_frames=frames, width=size, height=size,
            seed=first_seed + i, noise=0.0, fps=FPS, motion=MOTION,
        )
        folder = root / f"clip{first_seed + i:05d}"
        if not (folder / "poses.txt").is_file():
            write_clip(make_scene(config), folder, force=True)
        configs.append(config)
    return configs


def _batches(loader):
    while True:
        yield from loader


def pretrain(
    model_dir: Path, train_dir: Path, frames: int, size: int, vae_s: float, unet_s: float, seed: int, device: str
) -> float:
    """The stand-in for pretrained SVD: a tiny VAE and U-Net trained from scratch on the clips,
    each for ``vae_s`` / ``unet_s`` seconds of wall time. Returns the U-Net's seconds per step."""
    import torch
    from torch.utils.data import DataLoader

    from cpsgd.generators.diffusion.control import ControlledUNet
    from cpsgd.generators.diffusion.testing import build_tiny_svd
    from cpsgd.training.config import TrainConfig
    from cpsgd.training.data import ClipDataset, scan_clips
    from cpsgd.training.trainer import SvdConditioner, edm_loss

    torch.manual_seed(seed)
    pipe = build_tiny_svd(num_frames=frames, seed=seed).to(device)
    pipe.set_progress_bar_config(disable=True)
    dataset = ClipDataset(scan_clips(train_dir, False, False, frames), frames, size, size)
    batches = _batches(DataLoader(dataset, batch_size=1, shuffle=True, generator=torch.Generator().manual_seed(seed)))

    vae = pipe.vae
    optimizer = torch.optim.AdamW(vae.parameters(), lr=1e-3)
    start, step = time.perf_counter(), 0
    while time.perf_counter() - start < vae_s:
        step += 1
        video = next(batches)["frames"][0].to(device)  # (F, 3, H, W) in [-1, 1]
        posterior = vae.encode(video).latent_dist
        reconstruction = vae.decode(posterior.sample(), num_frames=len(video)).sample
        loss = torch.nn.functional.mse_loss(reconstruction, video) + 1e-6 * posterior.kl().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"vae step {step} loss {loss.item():.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    vae.requires_grad_(False).eval()
    pipe.image_encoder.requires_grad_(False)

    config = TrainConfig(adapter="camera", data_dir=train_dir, model_dir=model_dir, output_dir=model_dir)
    conditioner = SvdConditioner(pipe, config, torch.float32)
    unet = ControlledUNet(pipe.unet)  # no adapters: the base model learns image-to-video
    optimizer = torch.optim.AdamW(pipe.unet.parameters(), lr=3e-4)
    start, step = time.perf_counter(), 0
    while time.perf_counter() - start < unet_s:
        step += 1
        batch = {key: value.to(device) for key, value in next(batches).items()}
        latents, condition, embeddings, time_ids = conditioner(batch)
        loss = edm_loss(unet, latents, condition, embeddings, time_ids, None, None, config.p_mean, config.p_std)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(pipe.unet.parameters(), 1.0)
        optimizer.step()
        print(f"unet step {step} loss {loss.item():.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    unet.remove()
    pipe.save_pretrained(model_dir, safe_serialization=True)
    return (time.perf_counter() - start) / step


def cpsgd_train(
    adapter: str, model_dir: Path, train_dir: Path, out: Path, frames: int, size: int, steps: int, *extra: str
) -> None:
    command = [
        sys.executable, "-m", "cpsgd.cli", "train", "--adapter", adapter, "--data", str(train_dir),
        "--model", str(model_dir), "-o", str(out), "--steps", str(steps), "--height", str(size),
        "--width", str(size), "--frames", str(frames), "--lr", "1e-3", "--log-every", "25",
        "--checkpoint-every", str(steps), *extra,
    ]
    print("$", " ".join(command[1:]), flush=True)
    source = str(Path(__file__).resolve().parents[1] / "src")
    subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": source})


def evaluate(scenes: list, decoders: dict, bpp: float, frames: int, size: int) -> dict[str, dict[str, float]]:
    from cpsgd.bitstream.container import BitstreamReader
    from cpsgd.masks.metrics import region_similarity
    from cpsgd.masks.motion import MotionSegmenter
    from cpsgd.pipeline import EncoderConfig, encode_frames
    from cpsgd.pipeline.decoder import decode_gops
    from cpsgd.poses.flow import FlowPoseEstimator
    from cpsgd.poses.metrics import rotation_errors_deg
    from cpsgd.quality import psnr
    from cpsgd.synth.scene import make_scene

    estimator, segmenter = FlowPoseEstimator(), MotionSegmenter()
    config = EncoderConfig(
        bpp=bpp, gop=frames, generator="diffusion", pose_estimator=None, segmenter=None, adaptive_gop=False
    )
    scores: dict[str, dict[str, list[float]]] = {}

    def score(name: str, video: np.ndarray, source: np.ndarray, sent_trajectory, sent_masks) -> None:
        row = scores.setdefault(name, {"rot_err_deg": [], "mask_j": [], "psnr": []})
        row["rot_err_deg"].append(float(np.mean(rotation_errors_deg(estimator.estimate(video), sent_trajectory))))
        row["mask_j"].append(float(np.mean(region_similarity(segmenter.segment(video), sent_masks))))
        row["psnr"].append(psnr(source, video))

    for scene in scenes:
        clip = make_scene(scene)
        data = encode_frames(clip.frames, FPS, config, clip.trajectory, (clip.masks > 0).astype(np.uint8))
        gop = next(decode_gops(BitstreamReader.from_bytes(data), decoders["warp"]))
        sent_trajectory, sent_masks = gop.conditions.trajectory, gop.conditions.masks
        score("source", clip.frames, clip.frames, sent_trajectory, sent_masks)
        for name, generator in decoders.items():
            video = gop.frames if name == "warp" else generator.generate(gop.conditions)
            score(name, video, clip.frames, sent_trajectory, sent_masks)
        print(f"{scene.traj} seed {scene.seed}: {len(data)} bytes ({8 * len(data) / (frames * size * size):.4f} BPP)",
              flush=True)
    return {name: {k: float(np.mean(v)) for k, v in row.items()} for name, row in scores.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="folder for clips, models and adapters")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64, help="square frame size (a multiple of 8)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--train-clips", type=int, default=24)
    parser.add_argument("--val-clips", type=int, default=4)
    parser.add_argument("--budget-s", type=float, default=1500,
                        help="wall time for the four training stages (VAE, U-Net, camera, joint: 1/4 each)")
    parser.add_argument("--adapter-steps", type=int, help="adapter steps (default: what fits the budget)")
    parser.add_argument("--decode-steps", type=int, default=8)
    parser.add_argument("--bpp", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from cpsgd.generators.diffusion import DiffusionConfig, DiffusionGenerator
    from cpsgd.generators.warp import WarpGenerator

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    started = time.perf_counter()
    train_dir, val_dir, model_dir = args.work / "train", args.work / "val", args.work / "model"
    make_clips(train_dir, args.train_clips, 0, args.frames, args.size)
    val = make_clips(val_dir, args.val_clips, 10_000, args.frames, args.size)
    stage_s = args.budget_s / 4
    seconds_per_step = pretrain(model_dir, train_dir, args.frames, args.size, stage_s, stage_s, args.seed, args.device)
    # An adapter step runs the frozen U-Net forward and backward, about a U-Net training step.
    adapter_steps = args.adapter_steps or max(5, int(stage_s / seconds_per_step))
    print(f"U-Net {seconds_per_step:.1f} s/step: {adapter_steps} steps per adapter stage", flush=True)
    camera, joint = args.work / "camera", args.work / "joint"
    device_flags = ["--cpu"] if args.device == "cpu" else []
    cpsgd_train("camera", model_dir, train_dir, camera, args.frames, args.size, adapter_steps, *device_flags)
    cpsgd_train("joint", model_dir, train_dir, joint, args.frames, args.size, adapter_steps, *device_flags,
                "--init-adapters", str(camera))

    decode = DiffusionConfig(num_inference_steps=args.decode_steps, device=args.device, dtype="fp32",
                             min_guidance_scale=1.0, max_guidance_scale=1.0)
    decoders = {
        "svd, no adapters": DiffusionGenerator(model_dir, None, decode),
        "svd + camera": DiffusionGenerator(model_dir, camera, decode),
        "svd + camera + segmentation": DiffusionGenerator(model_dir, joint, decode),
        "warp": WarpGenerator(),
    }
    table = evaluate(val, decoders, args.bpp, args.frames, args.size)
    print(f"\n{args.val_clips} held-out clips, {args.frames} frames at {args.size}x{args.size}; "
          f"{time.perf_counter() - started:.0f} s in all")
    print("| decoder | rot_err_deg | mask_j | PSNR |")
    print("|---|---|---|---|")
    for name, row in table.items():
        print(f"| {name} | {row['rot_err_deg']:.2f} | {row['mask_j']:.3f} | {row['psnr']:.2f} |")
    (args.work / "results.json").write_text(json.dumps(table, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
