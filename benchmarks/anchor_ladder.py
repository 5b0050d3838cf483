"""What a denser anchor ladder buys: each anchor's quality at the target rates read on the front of
all its encodes in a `cpsgd bench` run, against the same front without some of its settings.

    python benchmarks/anchor_ladder.py reports/viewer256b/results.jsonl --drop svtav1:crf59,svtav1:crf61

Mean over the run's sequences, for every metric the rows hold; 'reached on k/n' as in the report.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cpsgd.bench.report import quality_table
from cpsgd.bench.run import read_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--drop", required=True, help="comma-separated CODEC:RCVALUE settings to leave out, e.g. svtav1:crf59")
    parser.add_argument("--bpp", default="0.003,0.005,0.01", help="target rates (default 0.003,0.005,0.01)")
    args = parser.parse_args()
    targets = tuple(float(t) for t in args.bpp.split(","))
    dropped = [tuple(item.split(":")) for item in args.drop.split(",")]
    rows = [r for r in read_rows(args.results) if r["codec"] not in ("cpsgd", "hold", "intra")]
    fewer = [r for r in rows if not any(r["codec"] == c and r["point"].endswith(f"-{s}") for c, s in dropped)]
    codecs = sorted({c for c, _ in dropped})
    print(f"{args.results}: {len(rows)} anchor encodes, {len(rows) - len(fewer)} of them dropped ({args.drop})")
    metrics = sorted({m for r in rows for m, v in r["metrics"].items() if v is not None})
    for metric in metrics:
        full, reduced = quality_table(rows, metric, targets), quality_table(fewer, metric, targets)
        for codec in codecs:
            cells = " | ".join(f"{t:g}: {a.text(4)} against {b.text(4)}" for t, a, b in zip(targets, full[codec], reduced[codec],
                                                                                            strict=True))
            print(f"{metric:16s} {codec:7s} all settings against without: {cells}")


if __name__ == "__main__":
    main()
