"""What a batch works on: a folder of videos (or of .cpsgd files), or a CSV/JSONL manifest.

A manifest row names one input (``path``) and optionally its output ``name`` and, for encoding,
per-clip ``poses`` and ``masks`` to send instead of estimating them. Relative paths are taken
from the manifest's folder.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from cpsgd.errors import InputError
from cpsgd.video.reader import IMAGE_SUFFIXES

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".y4m"}
STREAM_SUFFIX = ".cpsgd"
MANIFEST_SUFFIXES = {".csv", ".jsonl"}


@dataclass(frozen=True)
class Item:
    name: str  # output name: OUTDIR/<name>.cpsgd, OUTDIR/<name>/, ...
    path: Path
    poses: Path | None = None
    masks: Path | None = None


def _is_frame_folder(path: Path) -> bool:
    return path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir())


def _scan_folder(folder: Path, streams: bool) -> list[Item]:
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    if streams:
        found = [p for p in entries if p.is_file() and p.suffix.lower() == STREAM_SUFFIX]
    else:
        found = [p for p in entries if (p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES) or _is_frame_folder(p)]
    if not found:
        kind = "no .cpsgd files" if streams else "no videos or folders of frames"
        raise InputError(f"{folder} holds {kind}")
    return [Item(p.stem if p.is_file() else p.name, p.resolve()) for p in found]


def _read_rows(manifest: Path) -> list[dict]:
    text = manifest.read_text()
    if manifest.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{manifest} line {number}: not JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise InputError(f"{manifest} line {number}: expected an object")
                rows.append(row)
    if not rows:
        raise InputError(f"{manifest} lists no inputs")
    return rows


def _read_manifest(manifest: Path) -> list[Item]:
    items = []
    for number, row in enumerate(_read_rows(manifest), 1):
        if not row.get("path"):
            raise InputError(f"{manifest} entry {number} has no 'path'")
        path, poses, masks = (
            (manifest.parent / str(row[key])).resolve() if row.get(key) else None for key in ("path", "poses", "masks")
        )
        if not path.exists():
            raise InputError(f"{manifest} entry {number}: {path} does not exist")
        name = str(row.get("name") or (path.stem if path.is_file() else path.name))
        items.append(Item(name, path, poses, masks))
    return items


def find_items(source: str | Path, streams: bool = False) -> list[Item]:
    """The inputs of a batch, in a fixed order. ``streams`` looks for .cpsgd files (decode)."""
    source = Path(source)
    if not source.exists():
        raise InputError(f"{source} does not exist")
    if source.is_file() and source.suffix.lower() in MANIFEST_SUFFIXES:
        items = _read_manifest(source)
    elif source.is_dir():
        items = _scan_folder(source, streams)
    else:
        raise InputError(f"{source}: give a folder or a .csv/.jsonl manifest")
    names = [item.name for item in items]
    for name in names:
        if not name or name.startswith(".") or "/" in name or "\\" in name:
            raise InputError(f"{name!r} cannot be an output name")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"several inputs would be written as {duplicates[0]!r}: give them names in a manifest")
    return items
