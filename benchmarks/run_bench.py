"""Rate-distortion benchmark (`cpsgd bench`) that prints its summary: minimum BPP per codec and
quality at each target rate, per metric.

    python benchmarks/run_bench.py ../shared/data/davis2016 --codecs x264,x265,svtav1 -o reports/davis
    python benchmarks/run_bench.py DATASET [any `cpsgd bench` option]

Finished points in REPORT_DIR/results.jsonl are reused, so a second run only rebuilds the report.
"""

from __future__ import annotations

import argparse
import sys

from cpsgd.bench.cli import add_bench_command
from cpsgd.errors import CpsgdError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers()
    add_bench_command(commands)
    args = parser.parse_args(["bench", *sys.argv[1:]])
    try:
        status = args.handler(args)
    except CpsgdError as exc:
        print(f"run_bench: error: {exc}", file=sys.stderr)
        return 2
    print(f"command: python benchmarks/run_bench.py {' '.join(sys.argv[1:])}")
    print((args.output / "summary.md").read_text())
    return status


if __name__ == "__main__":
    sys.exit(main())
