"""Longer fuzz run of the decoder than the test suite's: prints how many mutants were tried.

    python benchmarks/fuzz_decoder.py [--count 20000] [--seed 0] [--generator warp]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cpsgd.bitstream.fuzz import fuzz_decoder  # noqa: E402
from test_fuzz import seed_streams  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--generator", default="warp")
    args = parser.parse_args()
    start = time.perf_counter()
    report = fuzz_decoder(
        seed_streams(), count=args.count, seed=args.seed, generator=args.generator, stop_at_failure=False
    )
    elapsed = time.perf_counter() - start
    for failure in report.failures[:10]:
        print(f"FAIL {failure}")
    print(f"mutants tried: {report.tried} in {elapsed:.0f} s (seed {args.seed}, generator {args.generator})")
    print(f"decoded: {report.outcomes['decoded']}, rejected with BitstreamError: {report.outcomes['rejected']}, "
          f"other exceptions: {report.outcomes['crashed']}, over the time limit: {report.outcomes['too slow']}, "
          f"slowest: {report.slowest_s:.2f} s")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
