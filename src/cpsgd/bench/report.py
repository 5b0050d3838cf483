"""Benchmark report: markdown summary, RD plots (PNG), cpsgd bit breakdown, side-by-side strips
(PNG) and videos, and an offline HTML page.

Quality at a target rate is read on each sequence's operational hull (``cpsgd.bench.hull``: the
front of the encodes a codec actually achieved, interpolated in log rate) and averaged over the
sequences. A mean is shown only where every sequence reaches the target, so that each number of
a row averages the same clips; elsewhere the cell says on how many it is reached.
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
from cpsgd.bench.viewer import DECODED_DIR, gop_pop, strip_frames

METRIC_LABELS = {
    "psnr": "PSNR (dB)",
    "ms_ssim": "MS-SSIM (luma)",
    "ms_ssim_rgb": "MS-SSIM (RGB)",
    "disocc_psnr": "disocclusion PSNR (dB)",
    "disocc_ms_ssim": "disocclusion MS-SSIM (RGB)",
    "warp_err_excess": "temporal warping error over the source's (lower is better)",
    "gop_pop_db": "GoP-start pop (dB, lower is better)",
    "vmaf": "VMAF",
    "niqe": "NIQE (lower is better)",
    "rot_err_deg": "pose rotation error (deg, lower is better)",
    "mask_j": "mask J",
    "lpips": "LPIPS (lower is better)",
    "clip_sim": "CLIP similarity",
    "aesthetic": "aesthetic score",
}
# What write_report writes besides results.jsonl; an existing one is overwritten only on request.
REPORT_FILES = ("index.html", "summary.md", "summary.json", "strips", "videos")
# Metrics preferred, in order, when choosing the anchor encode shown beside cpsgd.
SHOWCASE_METRICS = ("vmaf", "ms_ssim_rgb", "ms_ssim", "psnr")
VIEWER_NOTE = (
    "Viewer metrics (cpsgd.bench.viewer). Disocclusion: PSNR and RGB MS-SSIM inside the background "
    "the annotated object uncovers after frame 0 (masked in frame 0, not in frame i), where ghosts "
    "live; only on sequences with masks. Temporal: RMSE between each decoded frame and the previous "
    "decoded frame warped onto it with optical flow (OpenCV DIS) computed on the source, minus the "
    "same figure on the source; 0 = as steady as the source, above 0 = flicker, tearing or pops. "
    "GoP-start pop: mean absolute per-frame PSNR jump into each cpsgd GoP start after frame 0; "
    "anchors (one keyframe per clip) are measured at the same frame indices as the cpsgd point "
    "nearest in rate on that clip, since that is where a viewer compares them; only on clips "
    "cpsgd codes in several GoPs."
)
NIQE_NOTE = (
    "NIQE depends on resolution: its pristine model was fitted to full-size photographs with "
    "96-pixel patches, so a 256-pixel frame (4 patches) reads about 23-42 where the same frames at "
    "512 read about 15. Compare NIQE only within one report; the 'source' row is the source "
    "frames' own NIQE at this size."
)
PART_ORDER = ("text", "intra", "camera_pose", "segmentation", "object_motion", "geometry", "container")


@dataclass
class Cell:
    mean: float | None
    reached: int
    total: int

    def text(self, digits: int = 3) -> str:
        if self.reached == 0:
            return "unreachable"
        if self.mean is None or self.reached < self.total:
            return f"reached on {self.reached}/{self.total}"
        return f"{self.mean:.{digits}f}"


def existing_report(out_dir: Path) -> Path | None:
    """The first report file already in ``out_dir`` (plots included), or None."""
    for name in REPORT_FILES:
        if (out_dir / name).exists():
            return out_dir / name
    return next(iter(sorted(out_dir.glob("rd_*.png"))), None) if out_dir.is_dir() else None


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
    """codec -> one cell per target: mean hull quality over the codec's sequences, None unless
    every one of them reaches the target (a mean over fewer would mix subsets across rates)."""
    h = hulls(rows, metric)
    table = {}
    for codec in codec_names(rows):
        cells = []
        seqs = [s for s in sequence_names(rows) if (s, codec) in h]
        for target in targets:
            values = [q for s in seqs if (q := quality_at(h[(s, codec)], target)) is not None]
            mean = float(np.mean(values)) if values and len(values) == len(seqs) else None
            cells.append(Cell(mean, len(values), len(seqs)))
        if seqs:  # a codec the metric was not computed for is left out, not 'unreachable'
            table[codec] = cells
    if metric == "niqe":
        table["source"] = source_niqe_cells(rows, len(targets))
    return table


def source_niqe_cells(rows: list[dict], count: int) -> list[Cell]:
    """The source frames' own NIQE (mean over sequences), the same in every column."""
    values = {r["sequence"]: r["reference"]["niqe"] for r in rows if (r.get("reference") or {}).get("niqe") is not None}
    mean = float(np.mean(list(values.values()))) if values else None
    return [Cell(mean, len(values), len(values)) for _ in range(count)]


def with_pops(rows: list[dict]) -> list[dict]:
    """Rows with ``gop_pop_db`` added where it is defined: cpsgd-family rows at their own GoP
    starts, anchor rows at those of the cpsgd point nearest in rate on the same sequence."""
    coded = [r for r in rows if r.get("gop_starts") and r.get("frame_psnr")]
    out = []
    for row in rows:
        starts = row.get("gop_starts")
        if not starts:
            mine = [r for r in coded if r["sequence"] == row["sequence"] and r["codec"] == "cpsgd"] or \
                   [r for r in coded if r["sequence"] == row["sequence"]]
            nearest = min(mine, key=lambda r: abs(math.log(r["bpp"] / row["bpp"])), default=None)
            starts = nearest["gop_starts"] if nearest else None
        pop = gop_pop(row["frame_psnr"], starts) if starts and row.get("frame_psnr") and row["metrics"] else None
        out.append({**row, "metrics": {**row["metrics"], "gop_pop_db": pop}})
    return out


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


def _metric_note(metric: str) -> str | None:
    if metric == "niqe":
        return NIQE_NOTE
    if metric in ("disocc_psnr", "disocc_ms_ssim", "warp_err_excess", "gop_pop_db"):
        return VIEWER_NOTE
    return None


def markdown_summary(rows: list[dict], targets: tuple[float, ...], strips: list[Strip] = ()) -> str:
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
    explained: set[str] = set()
    for metric in metric_names(rows):
        table = quality_table(rows, metric, targets)
        digits = 2 if metric in ("psnr", "vmaf", "niqe", "rot_err_deg", "disocc_psnr", "warp_err_excess",
                                 "gop_pop_db") else 4
        note = _metric_note(metric)
        out += [
            "",
            f"## {METRIC_LABELS.get(metric, metric)} at target rates",
            "",
            "Read on each sequence's front of achieved encodes (log-BPP interpolation), mean over "
            "all sequences; 'reached on k/n': only k of n sequences reach that rate, so no mean is given.",
            *(["", note] if note and note not in explained else []),
            "",
            _md_table(["codec", *(f"{t:g} BPP" for t in targets)],
                      [[c, *(cell.text(digits) for cell in cells)] for c, cells in table.items()]),
        ]
        explained.add(note)
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
    if strips:
        out += ["", "## Side-by-side strips (source | cpsgd | best anchor)", "", SHOWCASE_NOTE, ""]
        out += [f"- [{st.choice.sequence} at {st.target:g} BPP]({st.path}): {st.caption()}" for st in strips]
    notes = sorted({n for r in rows for n in r.get("notes", [])})
    if notes:
        out += ["", "## Notes", "", *(f"- {n}" for n in notes)]
    versions = rows[-1].get("versions", {})
    out += ["", "## Software", "", ", ".join(f"{k} {v}" for k, v in versions.items())]
    return "\n".join(out) + "\n"


# --- plots -------------------------------------------------------------------------------------

_SEQUENCE_MARKERS = "os^vD<>pP*Xh"
_RATE_TICKS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0)


def mean_curve(seq_hulls: list[list[tuple[float, float]]]) -> tuple[np.ndarray, np.ndarray]:
    """The mean over sequences of hull quality, from the lowest rate every sequence reaches to the
    highest rate any encode has (past its own last point a sequence holds its best value)."""
    lo = max(hull[0][0] for hull in seq_hulls)
    hi = max(hull[-1][0] for hull in seq_hulls)
    grid = np.geomspace(lo, hi, 40) if hi > lo else np.array([lo])
    return grid, np.array([np.mean([quality_at(hull, b) for hull in seq_hulls]) for b in grid])


def plot_rd(rows: list[dict], metric: str, path: Path) -> None:
    """One RD plot: every point (faint dots), each sequence's hull (thin, that sequence's marker)
    and each codec's mean over sequences (thick), with a key for both."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    h = hulls(rows, metric)
    seqs = sequence_names(rows)
    marker = {s: _SEQUENCE_MARKERS[i % len(_SEQUENCE_MARKERS)] for i, s in enumerate(seqs)}
    fig, ax = plt.subplots(figsize=(7.6, 4.8), dpi=110)
    codec_keys = []
    for i, codec in enumerate(codec_names(rows)):
        color = f"C{i}"
        pts = [(r["bpp"], r["metrics"][metric]) for r in rows
               if r["codec"] == codec and r["metrics"].get(metric) is not None]
        if not pts:
            continue
        ax.scatter(*zip(*pts, strict=True), s=5, color=color, alpha=0.15)
        seq_hulls = []
        for seq in seqs:
            hull = h.get((seq, codec))
            if hull:
                seq_hulls.append(hull)
                ax.plot(*zip(*hull, strict=True), color=color, lw=0.6, alpha=0.5, marker=marker[seq], ms=3)
        grid, mean = mean_curve(seq_hulls)
        ax.plot(grid, mean, color=color, lw=2.2, marker="o" if len(grid) == 1 else None)
        codec_keys.append(Line2D([], [], color=color, lw=2.2, label=codec))
    style_keys = [Line2D([], [], color="k", lw=2.2, label="thick: mean over sequences"),
                  Line2D([], [], color="k", lw=0.6, label="thin: one sequence's hull")]
    shown = {s for s, _ in h}
    seq_keys = [Line2D([], [], color="k", lw=0.6, marker=marker[s], ms=4, label=s) for s in seqs if s in shown]
    ax.set_xscale("log")
    # Plain rate labels (0.002, 0.005, ...): the log axis's own minor labels overlap at these rates.
    lo, hi = ax.get_xlim()
    ax.set_xticks([t for t in _RATE_TICKS if lo <= t <= hi])
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(handles=codec_keys + style_keys + seq_keys, fontsize=6.5, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --- side by side: the anchor shown beside cpsgd, strips and videos -------------------------------

SHOWCASE_NOTE = (
    "Best anchor: among every anchor encode of that clip at or under the cpsgd clip's own rate, the "
    "one with the best score on the first of VMAF, RGB MS-SSIM, luma MS-SSIM, PSNR that was computed. "
    "When no anchor encode is that small, the cheapest one is shown and its caption says how many "
    "more bits it spends."
)


@dataclass
class VideoChoice:
    sequence: str
    cpsgd: dict | None  # the cpsgd row shown
    anchor: dict | None  # the anchor row shown beside it

    def caption(self) -> str:
        parts = ["source"]
        parts += [f"{row['point']} ({row['bpp']:.4f} BPP)" for row in (self.cpsgd, self.anchor) if row]
        text = " | ".join(parts)
        if self.cpsgd and self.anchor and self.anchor["bpp"] > self.cpsgd["bpp"]:
            more = 100 * (self.anchor["bpp"] / self.cpsgd["bpp"] - 1)
            text += f"; no anchor encode is as small: the cheapest shown spends {more:.0f}% more bits"
        return text


def showcase_metric(rows: list[dict]) -> str:
    names = metric_names(rows)
    return next((m for m in SHOWCASE_METRICS if m in names), names[0] if names else "psnr")


def best_anchor(rows: list[dict], sequence: str, budget: float, metric: str) -> dict | None:
    """The anchor row of ``sequence`` that scores best on ``metric`` at or under ``budget`` BPP;
    the cheapest anchor row when none fits."""
    anchors = [r for r in rows if r["sequence"] == sequence and r["codec"] not in CPSGD_CODECS
               and r["metrics"].get(metric) is not None]
    fitting = [r for r in anchors if r["bpp"] <= budget]
    if fitting:
        sign = -1 if metric in LOWER_IS_BETTER else 1
        return max(fitting, key=lambda r: sign * r["metrics"][metric])
    return min(anchors, key=lambda r: r["bpp"], default=None)


def choose_videos(rows: list[dict], rate: float, metric: str) -> list[VideoChoice]:
    """Per sequence: the cpsgd point (else hold, else intra) nearest ``rate`` (log scale) and the
    best anchor at its rate (``best_anchor``)."""
    shown_codec = next((c for c in CPSGD_CODECS if any(r["codec"] == c for r in rows)), None)
    choices = []
    for seq in sequence_names(rows):
        cps = [r for r in rows if r["sequence"] == seq and r["codec"] == shown_codec]
        shown = min(cps, key=lambda r: abs(math.log(r["bpp"] / rate))) if cps else None
        choices.append(VideoChoice(seq, shown, best_anchor(rows, seq, shown["bpp"] if shown else rate, metric)))
    return choices


@dataclass
class Strip:
    target: float
    choice: VideoChoice
    path: str  # relative to the report folder
    frames: tuple[int, ...]

    def caption(self) -> str:
        return f"frames {', '.join(map(str, self.frames))}: {self.choice.caption()}"


def strip_image(clips: list[np.ndarray], labels: list[str]) -> np.ndarray:
    """One row per frame, one column per clip (each (F, H, W, 3)), a labelled band on top; RGB uint8."""
    import cv2

    h, w = clips[0].shape[1:3]
    band = np.full((22, w * len(clips), 3), 255, np.uint8)
    for i, label in enumerate(labels):
        cv2.putText(band, label[: max(8, w // 7)], (i * w + 4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                    cv2.LINE_AA)
    grid = [np.concatenate([clip[f] for clip in clips], axis=1) for f in range(len(clips[0]))]
    return np.concatenate([band, *grid], axis=0)


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
                videos: list[tuple[VideoChoice, str]], strips: list[Strip] = ()) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>cpsgd benchmark</title><style>",
        "body{font-family:sans-serif;margin:2em;max-width:1600px}table{border-collapse:collapse;margin:1em 0}",
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}img.rd{max-width:48%;margin:4px}",
        "img.strip{max-width:100%}video{max-width:100%}figure{margin:1em 0}</style></head><body>",
        "<h1>cpsgd benchmark</h1>",
        f"<p>{len(sequence_names(rows))} sequences, {rows[0]['frames']} frames at {rows[0]['width']}x"
        f"{rows[0]['height']}; rates in bits per pixel over all frames.</p>",
        "<h2>Rate-distortion</h2>",
        "<p>Thick lines: each codec's mean over sequences; thin lines: one sequence's front of achieved "
        "encodes (its marker in the key); faint dots: every encode.</p>",
        *(f"<img class='rd' src='{html.escape(src)}' alt='RD plot: {html.escape(m)}'>" for m, src in plots.items()),
    ]
    mins = min_bpp(rows)
    parts += ["<h2>Minimum rate per codec</h2>",
              _html_table(["codec", "mean BPP"], [[c, f"{np.mean(list(v.values())):.5f}"] for c, v in mins.items()])]
    explained: set[str] = set()
    for name in metric_names(rows):
        table = quality_table(rows, name, targets)
        note = _metric_note(name)
        parts += [f"<h2>{html.escape(METRIC_LABELS.get(name, name))} at target rates</h2>",
                  *([f"<p>{html.escape(note)}</p>"] if note and note not in explained else []),
                  _html_table(["codec", *(f"{t:g} BPP" for t in targets)],
                              [[c, *(cell.text() for cell in cells)] for c, cells in table.items()])]
        explained.add(note)
    fvd = fvd_table(rows, targets)
    if fvd:
        parts += ["<h2>FVD at target rates (lower is better)</h2>", f"<p>{html.escape(fvd_explanation(rows))}</p>",
                  _html_table(["codec", *(f"{t:g} BPP" for t in targets)],
                              [[c, *(cell.text() for cell in cells)] for c, cells in fvd.items()])]
    if strips:
        parts += ["<h2>Side-by-side strips: source | cpsgd | best anchor</h2>", f"<p>{html.escape(SHOWCASE_NOTE)}</p>"]
        for target in dict.fromkeys(st.target for st in strips):
            parts.append(f"<h3>{target:g} BPP</h3>")
            parts += [f"<figure><img class='strip' src='{html.escape(st.path)}' alt='{html.escape(st.caption())}'>"
                      f"<figcaption>{html.escape(st.choice.sequence)}, {html.escape(st.caption())}</figcaption></figure>"
                      for st in strips if st.target == target]
    if videos:
        parts += ["<h2>Side-by-side videos: source | cpsgd | best anchor</h2>", f"<p>{html.escape(SHOWCASE_NOTE)}</p>"]
    for choice, src in videos:
        parts.append(
            f"<figure><video src='{html.escape(src)}' controls muted loop playsinline preload='auto'></video>"
            f"<figcaption>{html.escape(choice.sequence)}: {html.escape(choice.caption())}</figcaption></figure>"
        )
    notes = sorted({n for r in rows for n in r.get("notes", [])})
    if notes:
        parts += ["<h2>Notes</h2><ul>", *(f"<li>{html.escape(n)}</li>" for n in notes), "</ul>"]
    parts.append("<p>Every row with all its settings: <a href='results.jsonl'>results.jsonl</a>; "
                 "summary: <a href='summary.md'>summary.md</a>.</p></body></html>")
    return "\n".join(parts)


class DecodedClips:
    """Decoded frames of the points shown: a cpsgd point's strip frames as the run saved them
    (``DECODED_DIR``), anything else coded again on demand (same input, same bytes) and kept for
    one sequence at a time, so that a strip and a video of the same point code it once."""

    def __init__(self, points: list[Point], load_frames, out_dir: Path) -> None:
        self.by_key = {(p.codec, p.key): p for p in points}
        self.load_frames = load_frames
        self.saved = out_dir / DECODED_DIR
        self.sequence: str | None = None
        self.cache: dict[tuple[str, str], np.ndarray] = {}

    def source(self, sequence: str) -> tuple[np.ndarray, float]:
        if sequence != self.sequence:
            self.sequence, self.cache = sequence, {}
            self.frames, self.fps = self.load_frames(sequence)
        return self.frames, self.fps

    def decoded(self, row: dict | None) -> np.ndarray | None:
        point = self.by_key.get((row["codec"], row["point"])) if row else None
        if point is None:
            return None
        frames, fps = self.source(row["sequence"])
        key = (row["codec"], row["point"])
        if key not in self.cache:
            self.cache[key] = point.run(frames, fps).frames
        return self.cache[key]

    def frames_at(self, row: dict | None, indices: tuple[int, ...]) -> np.ndarray | None:
        if row is not None:
            saved = self.saved / f"{row['sequence']}__{row['point']}.npz"
            if saved.exists():
                with np.load(saved) as data:
                    if tuple(data["indices"]) == indices:
                        return data["frames"]
        decoded = self.decoded(row)
        return None if decoded is None else decoded[list(indices)]

    def clips(self, choice: VideoChoice, indices: tuple[int, ...] | None = None) -> tuple[list[np.ndarray], list[str]]:
        """Source, cpsgd and anchor frames (all, or those at ``indices``) and their labels."""
        source = self.source(choice.sequence)[0]
        clips, labels = [source if indices is None else source[list(indices)]], ["source"]
        for row in (choice.cpsgd, choice.anchor):
            decoded = self.decoded(row) if indices is None else self.frames_at(row, indices)
            if decoded is not None:
                clips.append(decoded)
                labels.append(f"{row['point']} {row['bpp']:.4f}")
        return clips, labels


def write_strips(rows: list[dict], out_dir: Path, targets: tuple[float, ...], decoded: DecodedClips,
                 metric: str) -> list[Strip]:
    """strips/<sequence>_bpp<target>.png for every sequence at each target that cpsgd was coded at."""
    from PIL import Image

    (out_dir / "strips").mkdir(exist_ok=True)
    shown_codec = next((c for c in CPSGD_CODECS if any(r["codec"] == c for r in rows)), None)
    strips = []
    for seq in sequence_names(rows):
        for target in targets:
            row = next((r for r in rows if r["sequence"] == seq and r["codec"] == shown_codec
                        and r["settings"].get("target_bpp") == target), None)
            if row is None:
                continue
            choice = VideoChoice(seq, row, best_anchor(rows, seq, row["bpp"], metric))
            frames = strip_frames(row["frames"])
            clips, labels = decoded.clips(choice, frames)
            src = f"strips/{seq}_bpp{target:g}.png"
            Image.fromarray(strip_image(clips, labels)).save(out_dir / src)
            strips.append(Strip(target, choice, src, frames))
    return strips


def write_report(
    rows: list[dict],
    out_dir: Path,
    targets: tuple[float, ...],
    points: list[Point] | None = None,
    load_frames=None,
    video_bpp: float | None = 0.003,
) -> Path:
    """Write summary.md, summary.json, rd_<metric>.png and index.html, with strips (and videos at
    ``video_bpp`` unless it is None) when ``points`` and ``load_frames(sequence) -> (frames, fps)``
    are given; return the HTML path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = with_pops(rows)
    plots = {}
    for metric in metric_names(rows):
        name = f"rd_{metric}.png"
        plot_rd(rows, metric, out_dir / name)
        plots[metric] = name
    videos, strips = [], []
    metric = showcase_metric(rows)
    if points is not None and load_frames is not None:
        decoded = DecodedClips(points, load_frames, out_dir)
        strips = write_strips(rows, out_dir, targets, decoded, metric)
        if video_bpp is not None:
            (out_dir / "videos").mkdir(exist_ok=True)
            for choice in choose_videos(rows, video_bpp, metric):
                src = f"videos/{choice.sequence}.mp4"
                write_side_by_side(out_dir / src, decoded.clips(choice)[0], decoded.source(choice.sequence)[1])
                videos.append((choice, src))
    (out_dir / "summary.md").write_text(markdown_summary(rows, targets, strips))
    page = out_dir / "index.html"
    page.write_text(html_report(rows, targets, plots, videos, strips))
    summary = {m: {c: [cell.mean for cell in cells] for c, cells in quality_table(rows, m, targets).items()}
               for m in metric_names(rows)} | {"targets": list(targets), "min_bpp": min_bpp(rows)}
    fvd = fvd_table(rows, targets)
    if fvd:
        # Each cell: the distance, the clips pooled, the sequences available and their mean rate.
        summary["fvd"] = {c: [asdict(cell) for cell in cells] for c, cells in fvd.items()}
        summary["fvd_method"] = fvd_explanation(rows)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return page
