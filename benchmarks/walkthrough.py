"""The README's *Use* section, end to end, as a newcomer runs it: every command through a real
process, its exit status and its outputs checked, on a synthetic clip and on that clip laid out as
DAVIS is distributed (JPEGImages/480p/<seq>, Annotations/480p/<seq>).

    python benchmarks/walkthrough.py [--cpsgd cpsgd] [--workdir DIR] [--no-bench]

``--cpsgd`` is the command to test (default: this Python's ``-m cpsgd.cli``; give a fresh virtual
environment's ``cpsgd`` to test that install). Prints one line per command (status, seconds, what
was checked) and ``walkthrough: OK`` or the failures. `benchmarks/startup.py` times the quick commands.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image


class Walk:
    def __init__(self, cpsgd: list[str]) -> None:
        self.cpsgd = cpsgd
        self.failures: list[str] = []
        self.count = 0

    def run(self, args: list[str], status: int = 0, expect: str = "") -> tuple[str, float]:
        """Run one cpsgd command; it must exit with ``status`` and print ``expect`` (stdout or stderr)."""
        start = time.perf_counter()
        result = subprocess.run([*self.cpsgd, *args], capture_output=True, text=True, timeout=1800)
        seconds = time.perf_counter() - start
        output = result.stdout + result.stderr
        ok = result.returncode == status and expect in output and "Traceback" not in output
        self.count += 1
        line = f"{'ok  ' if ok else 'FAIL'} {result.returncode} {seconds:6.2f} s  cpsgd {shlex.join(args)}"
        print(line + (f"  [{expect}]" if expect else ""), flush=True)
        if not ok:
            self.failures.append(line)
            print("    " + "\n    ".join(output.strip().splitlines()[-5:]), flush=True)
        return output, seconds

    def check(self, condition: bool, what: str) -> None:
        print(f"{'ok  ' if condition else 'FAIL'} check: {what}", flush=True)
        if not condition:
            self.failures.append(what)


def davis_layout(synth: Path, root: Path, sequence: str) -> Path:
    """The synthetic clip as DAVIS ships it: JPEG frames and grey PNG annotations under 480p/."""
    images, annotations = root / "JPEGImages" / "480p" / sequence, root / "Annotations" / "480p" / sequence
    images.mkdir(parents=True)
    annotations.mkdir(parents=True)
    for i, path in enumerate(sorted((synth / "frames").glob("*.png"))):
        Image.open(path).convert("RGB").save(images / f"{i:05d}.jpg", quality=90)
    for i, path in enumerate(sorted((synth / "masks").glob("*.png"))):
        Image.open(path).save(annotations / f"{i:05d}.png")
    return root


def raw_yuv420p(frames: Path, out: Path) -> tuple[int, int]:
    """The clip as a headerless 8-bit 4:2:0 file, like MCL-JCV's sources."""
    with out.open("wb") as file:
        for path in sorted(frames.glob("*.png")):
            frame = av.VideoFrame.from_ndarray(np.asarray(Image.open(path).convert("RGB")), format="rgb24")
            yuv = frame.reformat(format="yuv420p")
            for plane, (w, h) in zip(yuv.planes, [(yuv.width, yuv.height)] + [(yuv.width // 2, yuv.height // 2)] * 2):
                file.write(np.frombuffer(plane, np.uint8).reshape(h, plane.line_size)[:, :w].tobytes())
    return frame.width, frame.height


def odd_frames(frames: Path, out: Path, width: int, height: int) -> Path:
    out.mkdir()
    for path in sorted(frames.glob("*.png")):
        Image.open(path).crop((0, 0, width, height)).save(out / path.name)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpsgd", default=f"{shlex.quote(sys.executable)} -m cpsgd.cli",
                        help="the cpsgd command to test (default: this Python's -m cpsgd.cli)")
    parser.add_argument("--workdir", type=Path, help="keep the files here (default: a temporary folder)")
    parser.add_argument("--no-bench", action="store_true", help="leave out the small `cpsgd bench` run")
    args = parser.parse_args()
    walk = Walk(shlex.split(args.cpsgd))
    with tempfile.TemporaryDirectory() as scratch:
        work = args.workdir or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        w = lambda name: str(work / name)  # noqa: E731

        walk.run(["synth", w("synth"), "--traj", "pan", "--objects", "1", "--frames", "12"])
        frames = work / "synth" / "frames"
        # The Use section's commands.
        walk.run(["encode", str(frames), "-o", w("clip.cpsgd"), "--bpp", "0.003"], expect="12 frames 256x256 in 1 GoP")
        walk.run(["encode", str(frames), "-o", w("clip.cpsgd"), "--preset", "low"], status=2, expect="already exists")
        walk.run(["encode", str(frames), "-o", w("clip.cpsgd"), "--preset", "low", "--force", "-q"])
        walk.run(["info", w("clip.cpsgd")], expect="camera_pose")
        walk.run(["decode", w("clip.cpsgd"), "-o", w("out")], expect="12 frames")
        walk.check(len(list((work / "out").glob("frame_*.png"))) == 12, "decode wrote 12 PNG frames")
        for video in ("out.mp4", "out.mkv", "out.y4m"):
            walk.run(["decode", w("clip.cpsgd"), "-o", w(video), "-q"])
            walk.check((work / video).stat().st_size > 0 if (work / video).exists() else False, f"{video} written")
        walk.run(["encode", str(frames), "-o", w("clip.mp4")], status=2, expect="OUT must be a .cpsgd file")
        walk.run(["encode", w("missing.mp4"), "-o", w("x.cpsgd")], status=2, expect="does not exist")

        # Odd sizes: the decoded .mp4 is 4:2:0 H.264, padded by one pixel.
        walk.run(["encode", str(odd_frames(frames, work / "odd", 201, 133)), "-o", w("odd.cpsgd"), "-q"])
        walk.run(["decode", w("odd.cpsgd"), "-o", w("odd.mp4"), "-q"])
        with av.open(w("odd.mp4")) as container:
            context = container.streams.video[0].codec_context
            walk.check((context.pix_fmt, context.width, context.height) == ("yuv420p", 202, 134),
                       f"201x133 decodes to a 4:2:0 .mp4 of 202x134 ({context.pix_fmt}, {context.width}x{context.height})")

        # Raw .yuv (MCL-JCV's format).
        width, height = raw_yuv420p(frames, work / "clip.yuv")
        walk.run(["encode", w("clip.yuv"), "-o", w("raw.cpsgd")], status=2, expect="--raw-size")
        walk.run(["encode", w("clip.yuv"), "-o", w("raw.cpsgd"), "--raw-size", f"{width}x{height}", "--fps", "25"],
                 expect="12 frames 256x256")
        walk.run(["encode", w("clip.yuv"), "-o", w("raw2.cpsgd"), "--raw-size", "250x250"], status=2,
                 expect="not a whole number")

        # DAVIS as distributed.
        davis = davis_layout(work / "synth", work / "DAVIS", "synth-pan")
        sequence = davis / "JPEGImages" / "480p" / "synth-pan"
        walk.run(["encode", str(davis), "-o", w("davis.cpsgd")], status=2, expect="is a DAVIS dataset")
        walk.run(["encode", str(sequence.parent), "-o", w("davis.cpsgd")], status=2, expect="not frames")
        walk.run(["encode", str(sequence), "-o", w("davis.cpsgd"), "--size", "128",
                  "--masks", str(davis / "Annotations" / "480p" / "synth-pan")], expect="12 frames 128x128")
        if not args.no_bench:
            walk.run(["bench", str(davis), "-o", w("report"), "--codecs", "cpsgd,hold", "--bpp", "0.003",
                      "--frames", "12", "--size", "128", "--metrics", "psnr,ms_ssim,masks", "--no-videos"])
            results = work / "report" / "results.jsonl"
            walk.check(results.exists() and '"sequence": "synth-pan"' in results.read_text()
                       and (work / "report" / "summary.md").exists(),
                       "bench found the sequence below 480p/ and wrote results.jsonl and summary.md")

        walk.run(["demo", "-o", w("demo")])
        walk.check((work / "demo" / "side_by_side.mp4").exists(), "demo wrote side_by_side.mp4")

    print(f"walkthrough: {'OK' if not walk.failures else 'FAILED'} ({walk.count} commands, {len(walk.failures)} failures)")
    return 1 if walk.failures else 0


if __name__ == "__main__":
    sys.exit(main())
