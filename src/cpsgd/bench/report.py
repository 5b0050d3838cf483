"""Benchmark report: markdown summary, RD plots (PNG), cpsgd bit breakdown and an offline HTML page.

Quality at a target rate is read on each sequence's operational hull (``cpsgd.bench.hull``) and
then averaged over the sequences that reach that rate; a codec that reaches it on none is
'unreachable' there, one that reaches it on some is marked with the count.
"""

from __future__ import annotations

import html
import json
import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from cpsgd.bench.codecs import CPSGD_CODECS, Point
from cpsgd.bench.fvd import fvd_explanation, fvd_table
from cpsgd.bench.hull import quality_at, rd_hull
from cpsgd.bench.metrics import LOWER_IS_BETTER

METRIC_LABELS = {
    "psnr": "PSNR (dB)",
    "ms_ssim": "MS-SSIM",
    "vmaf": "VMAF",
    "niqe": "NIQE (lower is better)",
    "rot_err_deg": "pose rotation error (deg, lower is better)",
    "mask_j": "mask J",
    "lpips": "LPIPS (lower is better)",
    "clip_sim": "CLIP similarity",
    "aesthetic": "aesthetic score",
}
PART_ORDER = ("text", "intra", "camera_pose", "segmentation", "object_motion", "geometry", "container")


@dataclass
class Cell:
    mean: float | None
    reached: int
    total: int

    def text(self, digits: int = 3) -> str:
        if self.reached == 0 or self.mean is None:
            return "unreachable"
        value = f"{self.mean:.{digits}f}"
        return value if self.reached == self.total else f"{value} ({self.reached}/{self.total})"


def metric_names(rows: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for name, value in row["metrics"].items():
            if value is not None:
                seen.setdefault(name, None)
    return list(seen)


def codec_names(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["codec"] for r in rows))


def sequence_names(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["sequence"] for r in rows))


def hulls(rows: list[dict], metric: str) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(sequence, codec) -> that codec's hull on that sequence for ``metric``."""
    points: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        value = r["metrics"].get(metric)
        if value is not None:
            points[(r["sequence"], r["codec"])].append((r["bpp"], value))
    better_high = metric not in LOWER_IS_BETTER
    return {k: rd_hull(v, better_high) for k, v in points.items()}


def quality_table(rows: list[dict], metric: str, targets: tuple[float, ...]) -> dict[str, list[Cell]]:
    """codec -> one cell per target: mean hull quality over the sequences that reach the target."""
    h = hulls(rows, metric)
    table = {}
    for codec in codec_names(rows):
        cells = []
        seqs = [s for s in sequence_names(rows) if (s, codec) in h]
        for target in targets:
            values = [q for s in seqs if (q := quality_at(h[(s, codec)], target)) is not None]
            cells.append(Cell(float(np.mean(values)) if values else None, len(values), len(seqs)))
        table[codec] = cells
    return table


def min_bpp(rows: list[dict]) -> dict[str, dict[str, float]]:
    """codec -> sequence -> the smallest rate it coded that sequence at."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for r in rows:
        seq = out[r["codec"]]
        seq[r["sequence"]] = min(seq.get(r["sequence"], math.inf), r["bpp"])
    return out


def bit_breakdown(rows: list[dict]) -> dict[str, dict[str, float]]:
    """cpsgd point -> part -> mean BPP over sequences (Table 1 of the paper). ``hold`` codes the
    same stream as ``cpsgd``, so it is listed only when cpsgd itself was not run."""
    skip = {"hold"} if any(r["codec"] == "cpsgd" for r in rows) else set()
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r.get("parts") and r["codec"] not in skip:
            groups[r["point"]].append(r)
    table = {}
    for key, group in sorted(groups.items(), key=lambda kv: np.mean([r["bpp"] for r in kv[1]])):
        parts: dict[str, float] = defaultdict(float)
        for r in group:
            pixels = r["frames"] * r["width"] * r["height"]
            for part, bits in r["parts"].items():
                parts[part] += bits / pixels / len(group)
        table[key] = dict(parts)
    return table


# --- markdown ----------------------------------------------------------------------------------


def _md_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def markdown_summary(rows: list[dict], targets: tuple[float, ...]) -> str:
    seqs = sequence_names(rows)
    mins = min_bpp(rows)
    out = [
        "# cpsgd benchmark",
        "",
        f"{len(seqs)} sequences ({', '.join(seqs)}), {rows[0]['frames']} frames at "
        f"{rows[0]['width']}x{rows[0]['height']}. BPP counts every bit of the coded stream "
        "(anchors: the raw elementary stream, no container) over all pixels of all frames.",
        "",
        "## Minimum rate per codec (BPP)",
        "",
        _md_table(
            ["codec", "mean", *seqs],
            [[c, f"{np.mean(list(mins[c].values())):.5f}", *(f"{mins[c].get(s, math.nan):.5f}" for s in seqs)]
             for c in codec_names(rows)],
        ),
    ]
    for metric in metric_names(rows):
        table = quality_table(rows, metric, targets)
        digits = 2 if metric in ("psnr", "vmaf", "niqe", "rot_err_deg") else 4
        out += [
            "",
            f"## {METRIC_LABELS.get(metric, metric)} at target rates",
            "",
            "Interpolated in log-BPP on each sequence's hull, mean over sequences; "
            "(k/n): reached on k of n sequences.",
            "",
            _md_table(["codec", *(f"{t:g} BPP" for t in targets)],
                      [[c, *(cell.text(digits) for cell in cells)] for c, cells in table.items()]),
        ]
    fvd = fvd_table(rows, targets)
    if fvd:
        out += ["", "## FVD at target rates (lower is better)", "", fvd_explanation(rows), "",
                _md_table(["codec", *(f"{t:g} BPP" for t in targets)],
                          [[c, *(cell.text() for cell in cells)] for c, cells in fvd.items()])]
    breakdown = bit_breakdown(rows)
    if breakdown:
        parts = [p for p in PART_ORDER if any(p in b for b in breakdown.values())]
        body = []
        for key, b in breakdown.items():
            total = sum(b.values())
            shares = (f"{b.get(p, 0):.2e} ({100 * b.get(p, 0) / total:.1f}%)" for p in parts)
            body.append([key, *shares, f"{total:.2e}"])
        out += ["", "## cpsgd bits per part (BPP, share)", "", _md_table(["point", *parts, "total"], body)]
    notes = sorted({n for r in rows for n in r.get("notes", [])})
    if notes:
        out += ["", "## Notes", "", *(f"- {n}" for n in notes)]
    versions = rows[-1].get("versions", {})
    out += ["", "## Software", "", ", ".join(f"{k} {v}" for k, v in versions.items())]
    return "\n".join(out) + "\n"


# --- plots -------------------------------------------------------------------------------------


def plot_rd(rows: list[dict], metric: str, path: Path) -> None:
    """One RD plot: every point (faint), each sequence's hull (thin) and the mean hull (bold)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = hulls(rows, metric)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    for i, codec in enumerate(codec_names(rows)):
        color = f"C{i}"
        pts = [(r["bpp"], r["metrics"][metric]) for r in rows
               if r["codec"] == codec and r["metrics"].get(metric) is not None]
        if not pts:
            continue
        ax.scatter(*zip(*pts, strict=True), s=6, color=color, alpha=0.2)
        seq_hulls = [h[(s, codec)] for s in sequence_names(rows) if (s, codec) in h and h[(s, codec)]]
        for hull in seq_hulls:
            ax.plot(*zip(*hull, strict=True), color=color, lw=0.6, alpha=0.4)
        lo = max(hull[0][0] for hull in seq_hulls)
        hi = min(hull[-1][0] for hull in seq_hulls)
        if hi > lo:
            grid = np.geomspace(lo, hi, 40)
            mean = [np.mean([quality_at(hull, b) for hull in seq_hulls]) for b in grid]
            ax.plot(grid, mean, color=color, lw=2, label=codec)
        else:
            ax.plot([], [], color=color, lw=2, label=codec)
    ax.set_xscale("log")
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --- videos ------------------------------------------------------------------------------------


@dataclass
class VideoChoice:
    sequence: str
    cpsgd: dict | None  # the cpsgd row shown
    anchor: dict | None  # the best anchor row at (or under) the cpsgd row's rate


def choose_videos(rows: list[dict], rate: float, metric: str) -> list[VideoChoice]:
    """Per sequence: the cpsgd point (else hold, else intra) nearest ``rate`` (log scale) and the
    anchor point that scores
    best on ``metric`` without spending more bits; the cheapest anchor point when none fits."""
    better_high = metric not in LOWER_IS_BETTER
    shown_codec = next((c for c in CPSGD_CODECS if any(r["codec"] == c for r in rows)), None)
    choices = []
    for seq in sequence_names(rows):
        mine = [r for r in rows if r["sequence"] == seq]
        cps = [r for r in mine if r["codec"] == shown_codec]
        shown = min(cps, key=lambda r: abs(math.log(r["bpp"] / rate))) if cps else None
        budget = shown["bpp"] if shown else rate
        anchors = [r for r in mine if r["codec"] not in CPSGD_CODECS and r["metrics"].get(metric) is not None]
        fitting = [r for r in anchors if r["bpp"] <= budget]
        if fitting:
            sign = 1 if better_high else -1
            anchor = max(fitting, key=lambda r: sign * r["metrics"][metric])
        else:
            anchor = min(anchors, key=lambda r: r["bpp"]) if anchors else None
        choices.append(VideoChoice(seq, shown, anchor))
    return choices


def write_side_by_side(path: Path, clips: list[np.ndarray], fps: float) -> None:
    from cpsgd.video import open_writer

    writer = open_writer(path, Fraction(fps).limit_denominator(1001), force=True)
    try:
        for frames in zip(*clips, strict=True):
            writer.write(np.concatenate(frames, axis=1))
    except BaseException:
        writer.abort()
        raise
    writer.close()


# --- HTML --------------------------------------------------------------------------------------


def _html_table(header: list[str], body: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def html_report(rows: list[dict], targets: tuple[float, ...], plots: dict[str, str],
                videos: list[tuple[VideoChoice, str]], metric: str = "vmaf") -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>cpsgd benchmark</title><style>",
        "body{font-family:sans-serif;margin:2em;max-width:1600px}table{border-collapse:collapse;margin:1em 0}",
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}img{max-width:48%;margin:4px}",
        "video{max-width:100%}figure{margin:1em 0}</style></head><body>",
        "<h1>cpsgd benchmark</h1>",
        f"<p>{len(sequence_names(rows))} sequences, {rows[0]['frames']} frames at {rows[0]['width']}x"
        f"{rows[0]['height']}; rates in bits per pixel over all frames.</p>",
        "<h2>Rate-distortion</h2>",
        *(f"<img src='{html.escape(src)}' alt='RD plot: {html.escape(m)}'>" for m, src in plots.items()),
    ]
    mins = min_bpp(rows)
    parts += ["<h2>Minimum rate per codec</h2>",
              _html_table(["codec", "mean BPP"], [[c, f"{np.mean(list(v.values())):.5f}"] for c, v in mins.items()])]
    for name in metric_names(rows):
        table = quality_table(rows, name, targets)
        parts += [f"<h2>{html.escape(METRIC_LABELS.get(name, name))} at target rates</h2>",
                  _html_table(["codec", *(f"{t:g} BPP" for t in targets)],
                              [[c, *(cell.text() for cell in cells)] for c, cells in table.items()])]
    fvd = fvd_table(rows, targets)
    if fvd:
        parts += ["<h2>FVD at target rates (lower is better)</h2>", f"<p>{html.escape(fvd_explanation(rows))}</p>",
                  _html_table(["codec", *(f"{t:g} BPP" for t in targets)],
                              [[c, *(cell.text() for cell in cells)] for c, cells in fvd.items()])]
    if videos:
        shown = next((v.cpsgd["codec"] for v, _ in videos if v.cpsgd), None)
        columns = " | ".join(["source", *([shown] if shown else []), "best anchor"])
        parts.append(f"<h2>Side by side: {html.escape(columns)}</h2>"
                     f"<p>Best anchor: best {html.escape(METRIC_LABELS.get(metric, metric))} "
                     "without spending more bits than the clip beside it (or the target rate).</p>")
    for choice, src in videos:
        label = ["source"]
        for row in (choice.cpsgd, choice.anchor):
            if row is not None:
                label.append(f"{row['point']} ({row['bpp']:.4f} BPP)")
        parts.append(
            f"<figure><video src='{html.escape(src)}' controls muted loop playsinline preload='auto'></video>"
            f"<figcaption>{html.escape(choice.sequence)}: {html.escape(' | '.join(label))}</figcaption></figure>"
        )
    notes = sorted({n for r in rows for n in r.get("notes", [])})
    if notes:
        parts += ["<h2>Notes</h2><ul>", *(f"<li>{html.escape(n)}</li>" for n in notes), "</ul>"]
    parts.append("<p>Every row with all its settings: <a href='results.jsonl'>results.jsonl</a>; "
                 "summary: <a href='summary.md'>summary.md</a>.</p></body></html>")
    return "\n".join(parts)


def write_report(
    rows: list[dict],
    out_dir: Path,
    targets: tuple[float, ...],
    points: list[Point] | None = None,
    load_frames=None,
    video_bpp: float = 0.003,
) -> Path:
    """Write summary.md, rd_<metric>.png and index.html (with videos when ``points`` and
    ``load_frames(sequence) -> (frames, fps)`` are given); return the HTML path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.md").write_text(markdown_summary(rows, targets))
    plots = {}
    for metric in metric_names(rows):
        name = f"rd_{metric}.png"
        plot_rd(rows, metric, out_dir / name)
        plots[metric] = name
    videos = []
    metric = "vmaf" if "vmaf" in plots else next(iter(plots), "psnr")
    if points is not None and load_frames is not None:
        by_key = {(p.codec, p.key): p for p in points}
        (out_dir / "videos").mkdir(exist_ok=True)
        for choice in choose_videos(rows, video_bpp, metric):
            frames, fps = load_frames(choice.sequence)
            clips = [frames]
            for row in (choice.cpsgd, choice.anchor):
                point = by_key.get((row["codec"], row["point"])) if row else None
                if point is not None:
                    clips.append(point.run(frames, fps).frames)
            src = f"videos/{choice.sequence}.mp4"
            write_side_by_side(out_dir / src, clips, fps)
            videos.append((choice, src))
    page = out_dir / "index.html"
    page.write_text(html_report(rows, targets, plots, videos, metric))
    summary = {m: {c: [cell.mean for cell in cells] for c, cells in quality_table(rows, m, targets).items()}
               for m in metric_names(rows)} | {"targets": list(targets), "min_bpp": min_bpp(rows)}
    fvd = fvd_table(rows, targets)
    if fvd:
        # Each cell: the distance, the clips pooled, the sequences available and their mean rate.
        summary["fvd"] = {c: [asdict(cell) for cell in cells] for c, cells in fvd.items()}
        summary["fvd_method"] = fvd_explanation(rows)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return page
