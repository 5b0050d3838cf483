"""Same input, same settings: the same bytes across processes and thread counts."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from cpsgd.synth import SceneConfig, make_scene, write_clip

ENCODE = """
import sys, cv2
cv2.setNumThreads(int(sys.argv[1]))
from cpsgd.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_encode_is_identical_across_processes_and_thread_counts(tmp_path: Path) -> None:
    clip = make_scene(SceneConfig(traj="orbit", objects=1, num_frames=10, width=128, height=96, seed=2))
    write_clip(clip, tmp_path / "clip")
    digests = []
    for threads, name in ((1, "a"), (2, "b"), (0, "c")):  # 0: OpenCV's default pool
        out = tmp_path / f"{name}.cpsgd"
        env_threads = {"OMP_NUM_THREADS": str(max(threads, 1))}
        subprocess.run(
            [sys.executable, "-c", ENCODE, str(threads), "encode", str(tmp_path / "clip" / "frames"),
             "-o", str(out), "--gop", "5", "-q"],
            check=True, timeout=300, env={**os.environ, **env_threads},
        )
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
    assert len(set(digests)) == 1, digests
