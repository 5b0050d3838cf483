"""Is VMAF monotone in its own features at these rates? Compare the warp and hold generators on
the same cpsgd bitstreams, frame by frame, with VMAF's elementary features (ADM, the four VIF
scales; the motion feature comes from the source alone, so it is the same for both).

    python benchmarks/vmaf_regime.py [--bpp 0.0015] [--data ../shared/data]

A frame is "inverted" when warp has the higher ADM and the higher VIF at every scale, yet the lower
VMAF score: the score's regression model then ranks the frame with less preserved detail and
information higher.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from cpsgd.bench.datasets import load_dataset
from cpsgd.bench.metrics import luma
from cpsgd.pipeline import EncoderConfig, decode_bytes, encode_frames
from cpsgd.quality import frame_psnr

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def features(model, reference: np.ndarray, decoded: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: ADM (N,), VIF (N, 4) and the VMAF score (N,), clipped to 0-100."""
    ref = torch.from_numpy(luma(reference))[:, None]
    dec = torch.from_numpy(luma(decoded))[:, None]
    with torch.no_grad():
        _, adm, vif, score = model.compute_vmaf_features_and_score(ref, dec)
    n = len(reference)
    return adm.numpy().reshape(n), vif.numpy().reshape(n, -1), np.clip(score.numpy().reshape(n), 0, 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bpp", type=float, default=0.0015)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    from vmaf_torch import VMAF

    model = VMAF(temporal_pooling=False, enable_motion=True, clip_score=False).eval()
    print(f"cpsgd at {args.bpp} BPP, 25 frames at 512x512; means over frames 1-24 (frame 0 is the same intra)")
    print(f"{'clip':16s} {'gen':5s} {'VMAF':>6s} {'ADM':>6s} {'VIF0':>6s} {'VIF3':>6s} {'PSNR':>6s}  inverted frames")
    for sequence in load_dataset(args.data / "davis2016"):
        data = encode_frames(sequence.frames, sequence.fps, EncoderConfig(bpp=args.bpp))
        scores = {}
        for generator in ("warp", "hold"):
            decoded = decode_bytes(data, generator=generator)
            adm, vif, score = features(model, sequence.frames, decoded)
            psnr = frame_psnr(sequence.frames, decoded)
            scores[generator] = (adm[1:], vif[1:], score[1:])
            line = f"{sequence.name:16s} {generator:5s} {score[1:].mean():6.2f} {adm[1:].mean():6.3f} "
            line += f"{vif[1:, 0].mean():6.3f} {vif[1:, -1].mean():6.3f} {psnr[1:].mean():6.2f}"
            if generator == "hold":
                (wa, wv, ws), (ha, hv, hs) = scores["warp"], scores["hold"]
                inverted = (wa > ha) & (wv > hv).all(axis=1) & (ws < hs)
                line += f"  {int(inverted.sum())} of {len(ws)}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
