"""Intra codecs at extreme byte budgets: quality (PSNR and MS-SSIM of the upsampled
reconstruction), chosen downscale and search time, per codec and budget, on a photograph and on
DAVIS first frames. ``av1-default`` is the ``av1`` codec with libavif's default tuning instead of
its ``tune=ssim``.

    python benchmarks/intra_codecs.py [--budgets 600,1000,2000,4000] [--davis ../shared/data/davis2016]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data

from cpsgd.bench.metrics import ms_ssim
from cpsgd.intra import INTRA_CODECS, IntraResult
from cpsgd.intra.av1_codec import Av1Codec
from cpsgd.intra.budget import DEFAULT_SCALES, IntraSearch
from cpsgd.video import open_video

CODECS = ("av1", "av1-default", "avif", "webp")


def code(image: np.ndarray, codec: str, budget: int) -> IntraResult:
    instance = Av1Codec(tune=None) if codec == "av1-default" else INTRA_CODECS.get(codec)()
    return IntraSearch(image, scales=DEFAULT_SCALES, codec=instance).within(budget)


def images(davis: Path | None) -> dict[str, np.ndarray]:
    out = {"astronaut": cv2.resize(skimage.data.astronaut(), (512, 512), interpolation=cv2.INTER_AREA)}
    if davis is not None and davis.is_dir():
        for sequence in sorted((davis / "JPEGImages").iterdir()):
            out[sequence.name] = open_video(sequence, size=512, max_frames=1).read_all()[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="600,1000,2000,4000")
    parser.add_argument("--davis", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016")
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    pictures = images(args.davis)
    print(f"512x512 pictures: {', '.join(pictures)}; mean over pictures")
    print(f"{'codec':<12}{'budget B':>9}{'bytes':>8}{'PSNR dB':>9}{'MS-SSIM':>9}{'scale':>7}{'search s':>10}")
    for codec in CODECS:
        for budget in budgets:
            results, seconds, structure = [], [], []
            for image in pictures.values():
                start = time.perf_counter()
                results.append(code(image, codec, budget))
                seconds.append(time.perf_counter() - start)
                structure.append(ms_ssim(image[None], results[-1].decoded[None]))
            print(
                f"{codec:<12}{budget:>9}{np.mean([len(r.payload) for r in results]):>8.0f}"
                f"{np.mean([r.psnr for r in results]):>9.2f}{np.mean(structure):>9.4f}"
                f"{np.mean([r.scale for r in results]):>7.2f}{np.mean(seconds):>10.2f}"
            )


if __name__ == "__main__":
    main()
