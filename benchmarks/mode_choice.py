"""The warp mode against the inter mode on the same GoP: the rate control's mode score (PSNR +
25 x RGB MS-SSIM on its 5 frames), and RGB MS-SSIM and VMAF on all 25 frames, for each clip and
target. The warp split is the full search's winner; the inter split is what the rate control
would weigh against it.

    python benchmarks/mode_choice.py blackswan,breakdance,car-roundabout,dog,bedroom,lady-running,tennis 0.003,0.005
"""

import sys
from pathlib import Path

import numpy as np

from cpsgd.bench.metrics import ms_ssim_rgb, vmaf
from cpsgd.masks.davis import load_davis_clip
from cpsgd.pipeline import EncoderConfig
from cpsgd.pipeline.encoder import Encoder
from cpsgd.pipeline.ratecontrol import SplitSearch
from cpsgd.video import open_video

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def load(name: str) -> np.ndarray:
    if (DATA / "more" / name / "frames").is_dir():
        return open_video(DATA / "more" / name / "frames", 512, 25).read_all()
    return load_davis_clip(DATA / "davis2016", name, 25, 512)[0]


def main() -> None:
    names, targets = sys.argv[1].split(","), [float(v) for v in sys.argv[2].split(",")]
    for name in names:
        frames = load(name)
        for bpp in targets:
            encoder = Encoder(EncoderConfig(bpp=bpp))
            masks = encoder.segmenter.segment(frames)
            trajectory = encoder.pose_estimator.estimate(frames, masks)
            payload = encoder.pose_codec.compress(trajectory.relative_to_first())
            decoded = encoder.pose_codec.decompress(payload, len(frames))
            budget = encoder.gop_budget(len(frames), 512, 512, 0) - len(payload) - 5
            search = SplitSearch(frames, decoded, budget)
            options, pictures = encoder._mask_options(frames, masks, False), encoder._pictures(frames, decoded, masks)
            warp, video = search.choose(options, pictures), search.inter(options, "svtav1")
            every = np.arange(len(frames))
            rendered, warp_score = warp.render(every), warp.mode_score()
            line = (f"{name} {bpp} warp score {warp_score:.2f} rgb {ms_ssim_rgb(frames, rendered):.4f} "
                    f"vmaf {vmaf(frames, rendered):.2f}")
            if video is not None:
                coded = video.render(every)
                line += (f" | inter score {video.score:.2f} rgb {ms_ssim_rgb(frames, coded):.4f} "
                         f"vmaf {vmaf(frames, coded):.2f} gap {video.score - warp_score:.2f}")
            print(line, flush=True)


if __name__ == "__main__":
    main()
