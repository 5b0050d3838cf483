"""Add the metrics of one `cpsgd bench` run to the rows of another, point by point.

    python benchmarks/merge_results.py BASE.jsonl EXTRA.jsonl -o OUT.jsonl [--codecs x264,x265,svtav1]

Rows are matched on (sequence, codec, point); a metric already in a BASE row is kept. Only rows of
``--codecs`` are written (default: all). Use it to score an expensive metric on a subset of points
(e.g. the anchors' pose error at some scales) without re-scoring every other metric; then run
`cpsgd bench` on the folder of OUT.jsonl, which reuses its rows and computes the missing points.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("extra", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--codecs", help="comma-separated codecs to keep (default: all)")
    args = parser.parse_args()
    if args.output.exists():
        raise SystemExit(f"error: {args.output} exists")
    keep = set(args.codecs.split(",")) if args.codecs else None
    key = lambda row: (row["sequence"], row["codec"], row["point"])  # noqa: E731
    extra = {key(row): row["metrics"] for row in map(json.loads, args.extra.read_text().splitlines())}
    rows, merged = [], 0
    for row in map(json.loads, args.base.read_text().splitlines()):
        if keep is not None and row["codec"] not in keep:
            continue
        added = {name: value for name, value in extra.get(key(row), {}).items() if name not in row["metrics"]}
        merged += bool(added)
        row["metrics"].update(added)
        rows.append(row)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("".join(json.dumps(row) + "\n" for row in rows))
    print(f"wrote {len(rows)} rows to {args.output}, {merged} with metrics from {args.extra}")


if __name__ == "__main__":
    main()
