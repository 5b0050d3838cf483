"""Throughput of `cpsgd batch encode` with 1 and 2 workers, and what travels to and from workers.

    python benchmarks/batch_throughput.py [--clips 8] [--frames 25] [--size 128] [--engines local,ray]

A corpus of synthetic clips (PNG folders, cpsgd.synth) is encoded with the default encoder
settings, first in one process without any engine (the baseline), then by each engine with 1
and 2 workers. For each run: wall time, clips/s, frames/s, the mean wall and CPU time inside a task, and the
speed-up over the baseline. Engine start-up (spawning processes, starting Ray) is included in
the wall time, because a user pays it; it is also printed on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import tempfile
import time
from pathlib import Path

from PIL import Image

from cpsgd.batch import Settings, find_items, make_engine, make_tasks, run_batch, run_task
from cpsgd.pipeline import EncoderConfig
from cpsgd.synth import SceneConfig, make_scene

TRAJECTORIES = ("pan", "dolly", "orbit", "shake")


def write_corpus(root: Path, clips: int, frames: int, size: int) -> None:
    for index in range(clips):
        config = SceneConfig(traj=TRAJECTORIES[index % len(TRAJECTORIES)], objects=1, num_frames=frames,
                             width=size, height=size, seed=index)
        folder = root / f"clip{index:03d}"
        folder.mkdir(parents=True)
        for i, frame in enumerate(make_scene(config).frames):
            Image.fromarray(frame).save(folder / f"frame_{i:05d}.png")


def report(label: str, seconds: float, rows: list[dict], baseline: float | None) -> None:
    frames = sum(r["frames"] for r in rows)
    task_mean = sum(r["seconds"] for r in rows) / len(rows)
    cpu_mean = sum(r["cpu_seconds"] for r in rows) / len(rows)
    speedup = f"{baseline / seconds:5.2f}x" if baseline else "  1.00x"
    print(f"{label:<22} {seconds:7.2f} s  {len(rows) / seconds:6.3f} clips/s  {frames / seconds:6.2f} frames/s  "
          f"task mean {task_mean:5.2f} s wall, {cpu_mean:5.2f} s CPU  speed-up {speedup}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--engines", default="local,ray", help="comma-separated: local, ray")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_corpus(root / "corpus", args.clips, args.frames, args.size)
        settings = Settings("encode", encoder=EncoderConfig())
        items = find_items(root / "corpus")
        print(f"corpus: {args.clips} clips x {args.frames} frames {args.size}x{args.size}, default encoder settings; "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} before")

        tasks = make_tasks(items, settings, root / "baseline")
        (root / "baseline").mkdir()
        start = time.perf_counter()
        rows = [run_task(task) for task in tasks]
        baseline = time.perf_counter() - start
        report("in-process (no engine)", baseline, rows, None)
        print(f"shipped per task: {len(pickle.dumps(tasks[0]))} bytes out (paths + settings), "
              f"{len(json.dumps(rows[0]))} bytes back (its manifest row); input {args.frames} PNG frames "
              f"read by the worker, output {rows[0]['bits'] // 8} bytes written by the worker")

        for engine_name in args.engines.split(","):
            for workers in (1, 2):
                out = root / f"{engine_name}-{workers}"
                start = time.perf_counter()
                with make_engine(engine_name, workers) as engine:
                    started = time.perf_counter() - start
                    summary = run_batch(make_tasks(items, settings, out), engine, out, progress=False)
                seconds = time.perf_counter() - start
                assert not summary.failed, summary.failed
                report(f"{engine_name}, {workers} worker(s)", seconds, summary.done, baseline)
                print(f"{'':<22} load average {os.getloadavg()[0]:.1f} (other users share these cores)")
                if engine_name == "ray":
                    print(f"{'':<22} of which starting the private Ray instance: {started:5.2f} s")


if __name__ == "__main__":
    main()
