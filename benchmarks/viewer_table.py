"""Per clip and target: cpsgd's viewer metrics beside those of the anchor its strip shows, from a
`cpsgd bench` run's results (the report's tables average clips; this shows each one).

    python benchmarks/viewer_table.py reports/viewer256b/results.jsonl

The anchor is the report's 'best anchor' (best on the first of VMAF, RGB MS-SSIM, luma MS-SSIM,
PSNR among the encodes at or under cpsgd's own rate; '-' when none is that small).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cpsgd.bench.report import best_anchor, sequence_names, showcase_metric, with_pops
from cpsgd.bench.run import read_rows

COLUMNS = ("ms_ssim", "ms_ssim_rgb", "disocc_psnr", "disocc_ms_ssim", "warp_err_excess", "gop_pop_db")


def _cells(row: dict | None) -> list[str]:
    if row is None:
        return ["-"] * (len(COLUMNS) + 2)
    values = [row["metrics"].get(name) for name in COLUMNS]
    return [row["point"], f"{row['bpp']:.4f}", *("-" if v is None else f"{v:.3f}" for v in values)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    args = parser.parse_args()
    rows = with_pops(read_rows(args.results))
    metric = showcase_metric(rows)
    header = ["point", "BPP", *COLUMNS]
    print(f"| clip | {' | '.join(f'cpsgd {h}' for h in header)} | {' | '.join(f'anchor {h}' for h in header)} |")
    print("|" + "---|" * (1 + 2 * len(header)))
    for seq in sequence_names(rows):
        mine = sorted((r for r in rows if r["sequence"] == seq and r["codec"] == "cpsgd"), key=lambda r: r["bpp"])
        for row in mine:
            anchor = best_anchor(rows, seq, row["bpp"], metric)
            shown = anchor if anchor is not None and anchor["bpp"] <= row["bpp"] else None
            print(f"| {seq} | {' | '.join(_cells(row))} | {' | '.join(_cells(shown))} |")
    sources = {r["sequence"]: r["reference"]["warp_err"] for r in rows if r.get("reference")}
    print("source warping error (RMSE, subtracted above): "
          + ", ".join(f"{s} {v:.2f}" for s, v in sources.items() if v is not None))


if __name__ == "__main__":
    main()
