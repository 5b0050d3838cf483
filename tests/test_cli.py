"""The command line: the main jobs, and the one-line error rule for bad input."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cpsgd.cli import main

from conftest import textured_clip


@pytest.fixture
def frames_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(textured_clip(7, 201, 333)):
        Image.fromarray(frame).save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture
def stream(tmp_path: Path, frames_dir: Path) -> Path:
    out = tmp_path / "clip.cpsgd"
    assert main(["encode", str(frames_dir), "-o", str(out), "--gop", "5", "--bpp", "0.01", "-q"]) == 0
    return out


def test_encode_info_decode(tmp_path: Path, stream: Path, capsys) -> None:
    assert main(["info", str(stream), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["total_bits"] == 8 * stream.stat().st_size == sum(info["bits"].values())
    assert info["num_frames"] == 7 and (info["width"], info["height"]) == (333, 201)
    assert main(["decode", str(stream), "-o", str(tmp_path / "out"), "-q"]) == 0
    assert len(list((tmp_path / "out").glob("frame_*.png"))) == 7
    assert main(["decode", str(stream), "-o", str(tmp_path / "out.mp4"), "-q"]) == 0
    assert (tmp_path / "out.mp4").stat().st_size > 0


def test_outputs_are_never_overwritten_without_force(tmp_path: Path, frames_dir: Path, stream: Path, capsys) -> None:
    before = stream.read_bytes()
    assert main(["encode", str(frames_dir), "-o", str(stream), "-q"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert stream.read_bytes() == before
    assert main(["encode", str(frames_dir), "-o", str(stream), "-q", "--force", "--bpp", "0.02"]) == 0
    assert stream.read_bytes() != before


def _damaged(stream: Path, kind: str) -> bytes:
    data = bytearray(stream.read_bytes())
    if kind == "truncated":
        return bytes(data[: len(data) * 2 // 3])
    if kind == "bit-flipped":
        data[len(data) // 2] ^= 0x10
    elif kind == "wrong-magic":
        data[0:4] = b"RIFF"
    elif kind == "wrong-version":
        data[4] = 77
    elif kind == "absurd-dimensions":
        import struct, zlib

        header = bytearray(data[5:27])
        header[0:4] = struct.pack("<HH", 60000, 60000)
        data[5:27] = header
        data[27:31] = struct.pack("<I", zlib.crc32(bytes(header)))
    return bytes(data)


@pytest.mark.parametrize("kind", ["truncated", "bit-flipped", "wrong-magic", "wrong-version", "absurd-dimensions"])
def test_damaged_streams_give_one_line_and_status_2(tmp_path: Path, stream: Path, kind: str, capsys) -> None:
    bad = tmp_path / f"{kind}.cpsgd"
    bad.write_bytes(_damaged(stream, kind))
    for command in (["decode", str(bad), "-o", str(tmp_path / f"{kind}-out"), "-q"], ["info", str(bad)]):
        assert main(command) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("cpsgd: error:"), lines
    assert not (tmp_path / f"{kind}-out").exists()
    assert not list(tmp_path.glob("*.partial"))


def test_a_real_process_prints_no_traceback(tmp_path: Path, stream: Path) -> None:
    bad = tmp_path / "bad.cpsgd"
    bad.write_bytes(_damaged(stream, "truncated"))
    result = subprocess.run(
        [sys.executable, "-m", "cpsgd.cli", "decode", str(bad), "-o", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("cpsgd: error:")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["encode", "missing.mp4", "-o", "x.cpsgd"],
        ["encode", "FRAMES", "-o", "x.cpsgd", "--bpp", "100"],
        ["encode", "FRAMES", "-o", "x.cpsgd", "--gop", "0"],
        ["encode", "FRAMES", "-o", "x.cpsgd", "--size", "3"],
        ["encode", "FRAMES", "-o", "x.cpsgd", "--drift-db", "-1"],
        ["decode", "missing.cpsgd", "-o", "out"],
        ["encode", "FRAMES", "-o", "x.cpsgd", "--no-such-option"],
        ["encode", "FRAMES", "-o", "x.cpsgd", "--intra-codec", "jpeg"],
        ["encode", "FRAMES", "-o", "x.cpsgd", "--raw-size", "12by7"],
        ["frobnicate"],
    ],
)
def test_bad_options_give_one_line(tmp_path: Path, frames_dir: Path, args: list[str], capsys) -> None:
    args = [str(frames_dir) if a == "FRAMES" else str(tmp_path / a) if a.endswith((".cpsgd", ".mp4", "out")) else a for a in args]
    assert _exit_status(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error" in err[0]


def _exit_status(args: list[str]) -> int:
    """main's status, whether argparse (usage errors) or the command (bad input) reported it."""
    try:
        return main(args)
    except SystemExit as exit:
        return exit.code


def test_keep_going_writes_the_undamaged_gops(tmp_path: Path, stream: Path, capsys) -> None:
    from cpsgd.bitstream.container import BitstreamReader

    gops = list(BitstreamReader.from_bytes(stream.read_bytes()).gops())
    assert len(gops) == 2
    data = bytearray(stream.read_bytes())
    data[31 + 10] ^= 0xFF  # inside the first GoP's first section payload: its CRC fails, framing holds
    bad = tmp_path / "bad.cpsgd"
    bad.write_bytes(bytes(data))
    assert main(["decode", str(bad), "-o", str(tmp_path / "strict"), "-q"]) == 2
    assert "GoP 0" in capsys.readouterr().err
    assert not (tmp_path / "strict").exists()
    assert main(["decode", str(bad), "-o", str(tmp_path / "rest"), "-q", "--keep-going"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "skipped 1 damaged GoP" in err[0] and "GoP 0" in err[0]
    assert len(list((tmp_path / "rest").glob("frame_*.png"))) == gops[1].num_frames


def test_encode_refuses_a_video_name_for_its_stream(tmp_path: Path, frames_dir: Path, capsys) -> None:
    assert main(["encode", str(frames_dir), "-o", str(tmp_path / "clip.mp4"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "OUT must be a .cpsgd file" in err[0]
    assert list(tmp_path.iterdir()) == [frames_dir]


def test_one_frame_one_gop_in_the_singular(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "one"
    folder.mkdir()
    Image.fromarray(textured_clip(1, 64, 96)[0]).save(folder / "0.png")
    out = tmp_path / "one.cpsgd"
    assert main(["encode", str(folder), "-o", str(out), "--bpp", "0.05"]) == 0
    assert " 1 frame 96x64 in 1 GoP," in capsys.readouterr().out
    assert main(["info", str(out)]) == 0
    assert "96x64, 1 frame at 25 fps, 1 GoP (max" in capsys.readouterr().out


def _sub_parser(argv: list[str]) -> argparse.ArgumentParser:
    from cpsgd.cli import build_parser

    parser = build_parser(argv)
    for name in argv:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    return parser


@pytest.mark.parametrize("argv", [["encode"], ["decode"], ["info"], ["poses", "compress"], ["poses", "decompress"],
                                  ["masks", "estimate"], ["masks", "compress"]])
def test_every_option_says_what_it_does(argv: list[str]) -> None:
    parser = _sub_parser(argv)
    silent = [a.dest for a in parser._actions if not a.help and not isinstance(a, argparse._HelpAction)]
    assert silent == []


def test_help_shows_defaults_and_the_presets_rates() -> None:
    text = " ".join(_sub_parser(["encode"]).format_help().split())
    assert "maximum frames per group of pictures (default 25)" in text
    assert "tiny 0.0005, low 0.0015, medium 0.003, high 0.005" in text
    assert "(av1, avif, webp; default av1)" in text


def test_the_command_line_loads_no_stage_until_a_command_runs() -> None:
    heavy = ("torch", "matplotlib", "cv2", "scipy", "skimage", "av", "diffusers")
    probe = (
        "import sys\n"
        "from cpsgd.cli import build_parser\n"
        "loaded = lambda: sorted(m for m in {heavy!r} if m in sys.modules)\n"
        "build_parser([]); build_parser(['info'])\n"
        "print(loaded())\n"
        "build_parser(['encode']); build_parser(['decode'])\n"
        "print(loaded())\n"
    ).format(heavy=heavy)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    top_level, encode_decode = result.stdout.splitlines()
    assert top_level == "[]"
    # Parsing encode/decode options may load OpenCV and PyAV (option helpers live beside their
    # stages), never torch, SciPy or matplotlib.
    assert not {"torch", "matplotlib", "scipy", "skimage", "diffusers"} & set(eval(encode_decode))


def test_built_in_backends_load_when_first_asked_for() -> None:
    from cpsgd.generators import GENERATORS
    from cpsgd.poses import POSE_CODECS, POSE_ESTIMATORS

    for registry in (GENERATORS, POSE_CODECS, POSE_ESTIMATORS):
        for name in registry.names():
            assert registry.get(name).name == name
    assert POSE_CODECS.by_code(1).name == "compact"
