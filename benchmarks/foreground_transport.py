"""Foreground transport variants rendered from the same decoded cpsgd stream, on DAVIS clips.

Each clip is encoded once per rate with the real codec (``flow`` poses, ``motion`` masks, as in
`cpsgd bench`; the rate control renders its candidates with the default generator), decoded to the
generator's inputs, then rendered with every variant of ``ForegroundConfig``. The streams carry no
object motion section: the variants are how the decoder moves objects from their masks alone (sent
object motion replaces the affine fit and the spline).

- ``affine``: one affine map per object and frame (the generator before the spline);
- ``affine+snap``: the same, mask pixels that read outside the frame-0 object read inside it;
- ``tps``: affine, then a thin-plate spline between outline correspondences;
- ``tps+snap``: both (the default).

Scores: PSNR and MS-SSIM of whole frames; PSNR inside the DAVIS annotation (dilated by 4 pixels);
mask J of the ``motion`` segmenter run on the rendering against it run on the source (as
`cpsgd bench --metrics masks` does); generator time per GoP.

    python benchmarks/foreground_transport.py [--davis DIR] [--bpp 0.0015,0.003] [--frames 25]
        [--size 512] [--streams DIR]
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import cv2
import numpy as np

from cpsgd.bench.metrics import ms_ssim, psnr
from cpsgd.bench.semantic import SemanticReference
from cpsgd.bitstream.container import BitstreamReader
from cpsgd.generators.foreground import ForegroundConfig
from cpsgd.generators.warp import WarpConfig, WarpGenerator
from cpsgd.masks.davis import davis_sequences, load_davis_clip
from cpsgd.pipeline import EncoderConfig, encode_frames
from cpsgd.pipeline.decoder import decode_conditions

DEFAULT_DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016"
VARIANTS = {
    "affine": ForegroundConfig(method="affine", snap=False),
    "affine+snap": ForegroundConfig(method="affine", snap=True),
    "tps": ForegroundConfig(method="tps", snap=False),
    "tps+snap": ForegroundConfig(method="tps", snap=True),
}


def stream(frames: np.ndarray, bpp: float, cache: Path | None, name: str) -> bytes:
    path = cache / f"{name}-bpp{bpp:g}.cpsgd" if cache else None
    if path is not None and path.exists():
        return path.read_bytes()
    config = EncoderConfig(bpp=bpp, pose_estimator="flow", segmenter="motion", object_motion=False)
    data = encode_frames(frames, 24.0, config)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return data


def region_psnr(frames: np.ndarray, out: np.ndarray, region: np.ndarray) -> float:
    """Mean over frames of the PSNR inside each frame's region."""
    return float(np.mean([psnr(f[r][None], o[r][None]) for f, o, r in zip(frames, out, region, strict=True)]))


def render(data: bytes, config: ForegroundConfig) -> tuple[np.ndarray, float, bool]:
    """Decoded frames, generator seconds per GoP, and whether any GoP carried masks."""
    reader = BitstreamReader(io.BytesIO(data))
    generator = WarpGenerator(WarpConfig(foreground=config))
    parts, seconds, with_masks = [], [], False
    for gop in reader.gops():
        conditions = decode_conditions(gop, reader.header, None)
        with_masks |= conditions.masks is not None
        t0 = time.perf_counter()
        parts.append(generator.generate(conditions))
        seconds.append(time.perf_counter() - t0)
    return np.concatenate(parts), float(np.mean(seconds)), with_masks


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--davis", type=Path, default=DEFAULT_DAVIS)
    parser.add_argument("--bpp", default="0.0015,0.003")
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--streams", type=Path, help="keep the encoded streams here and reuse them")
    args = parser.parse_args()
    if not args.davis.is_dir():
        print(f"DAVIS clips not found at {args.davis}: nothing to measure")
        return
    rates = [float(b) for b in args.bpp.split(",")]
    totals: dict[tuple[float, str], list[np.ndarray]] = {}
    print(f"{args.frames} frames of {args.size}x{args.size}; fg PSNR inside the annotation dilated by 4 px")
    for seq in davis_sequences(args.davis):
        frames, annotation = load_davis_clip(args.davis, seq, args.frames, args.size)
        reference = SemanticReference.of(frames, annotation, poses=False, masks=True)
        inside = np.stack([cv2.dilate(m, np.ones((9, 9), np.uint8)) > 0 for m in annotation])
        for bpp in rates:
            data = stream(frames, bpp, args.streams, seq)
            for name, config in VARIANTS.items():
                out, seconds, with_masks = render(data, config)
                scores = np.array(
                    [
                        psnr(frames, out),
                        ms_ssim(frames, out),
                        region_psnr(frames, out, inside),
                        reference.scores(out)["mask_j"],
                    ]
                )
                totals.setdefault((bpp, name), []).append(scores)
                print(
                    f"{seq:15s} {bpp:<7g} {name:12s} PSNR {scores[0]:6.2f}  MS-SSIM {scores[1]:.4f}  "
                    f"fg PSNR {scores[2]:6.2f}  mask J {scores[3]:.3f}  generate {seconds:.2f} s/GoP"
                    f"{'' if with_masks else '  (no masks in the stream)'}"
                )
    print("mean over clips")
    for (bpp, name), rows in totals.items():
        m = np.mean(rows, axis=0)
        print(
            f"{'':15s} {bpp:<7g} {name:12s} PSNR {m[0]:6.2f}  MS-SSIM {m[1]:.4f}  "
            f"fg PSNR {m[2]:6.2f}  mask J {m[3]:.3f}"
        )


if __name__ == "__main__":
    main()
