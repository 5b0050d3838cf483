"""Start-up time of the quick commands (`--help`, `info`, error exits): best of N runs, wall clock
and CPU (user + system) of the process, which loaded machines inflate less than wall clock.

    python benchmarks/startup.py [--runs 5] [--cpsgd "python -m cpsgd.cli"]
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure(command: list[str], runs: int) -> tuple[float, float, int]:
    best_wall = best_cpu = float("inf")
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        status = subprocess.run(command, capture_output=True).returncode
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
    return best_wall, best_cpu, status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cpsgd", default=f"{shlex.quote(sys.executable)} -m cpsgd.cli", help="the command to time")
    args = parser.parse_args()
    cpsgd = shlex.split(args.cpsgd)
    with tempfile.TemporaryDirectory() as scratch:
        missing = str(Path(scratch) / "missing")
        commands = [
            ["--help"], ["frobnicate"], ["info", missing + ".cpsgd"],
            ["encode", missing + ".mp4", "-o", missing + ".cpsgd"], ["decode", missing + ".cpsgd", "-o", missing],
        ]
        print(f"load average {os.getloadavg()[0]:.1f}; best of {args.runs}")
        for command in commands:
            wall, cpu, status = measure([*cpsgd, *command], args.runs)
            print(f"wall {wall:.2f} s, CPU {cpu:.2f} s, exit {status}: cpsgd {shlex.join(command)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
