"""Hostile streams and careless inputs: each gives exit 0 or 2 (one line), in bounded time and
memory, and nothing the user had is lost. Memory is checked with tracemalloc (NumPy and Python
allocations), so a test fails where the old code allocated first and checked afterwards."""

from __future__ import annotations

import struct
import subprocess
import sys
import tracemalloc
import zlib
from fractions import Fraction
from pathlib import Path

import brotli
import numpy as np
import pytest
from PIL import Image

from cpsgd import cli
from cpsgd.bitstream.bytes import ByteWriter
from cpsgd.bitstream.container import BitstreamReader, BitstreamWriter, Section, SectionType, StreamHeader
from cpsgd.errors import BitstreamError, InputError
from cpsgd.generators.base import GopConditions
from cpsgd.generators.hold import HoldGenerator
from cpsgd.intra import INTRA_CODECS
from cpsgd.intra.budget import intra_payload
from cpsgd.masks.codec import ContextMaskCodec
from cpsgd.masks.io import MAGIC as MASK_MAGIC
from cpsgd.masks.io import decompress_mask_file
from cpsgd.pipeline import EncoderConfig, decode_bytes, encode_frames
from cpsgd.pipeline.crafted import layout_payload, stream_bytes
from cpsgd.pipeline.decoder import decode_gops
from cpsgd.poses.cli import MAGIC as POSE_MAGIC
from cpsgd.poses.cli import decompress_file
from cpsgd.synth import SceneConfig, make_scene
from cpsgd.text import decode_caption
from cpsgd.video import open_video
from cpsgd.video.reader import frame_order
from cpsgd.video.writer import frame_file_name


def peak_traced_mb(action) -> float:
    tracemalloc.start()
    try:
        action()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2**20


@pytest.fixture(scope="module")
def stream() -> bytes:
    """64x48, two GoPs of 3 frames, every section type (mosaic included)."""
    clip = make_scene(SceneConfig(traj="pan", objects=1, num_frames=6, width=64, height=48, seed=3))
    config = EncoderConfig(gop=3, bpp=0.05, caption="a cat", rate_control=False)
    return encode_frames(clip.frames, clip.fps, config, clip.trajectory, clip.masks)


def first_gop(data: bytes) -> tuple[int, list[Section]]:
    gop = next(BitstreamReader.from_bytes(data).gops())
    return gop.num_frames, list(gop.sections)


def replaced(sections: list[Section], kind: SectionType, payload: bytes, backend: int | None = None) -> list[Section]:
    old = next(s for s in sections if s.type == kind)
    return [Section(kind, old.backend if backend is None else backend, payload) if s is old else s for s in sections]


@pytest.fixture
def frames_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(folder / f"{i:05d}.png")
    return folder


# --- --force and the outputs -----------------------------------------------------------------


def test_force_never_deletes_a_folder_cpsgd_did_not_write(frames_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    tree = tmp_path / "a" / "b"
    tree.mkdir(parents=True)
    (tmp_path / "a" / "keep.txt").write_text("precious")
    monkeypatch.chdir(tree)
    assert cli.main(["encode", str(frames_dir), "-o", "..", "--force", "-q"]) == 2
    assert (tmp_path / "a" / "keep.txt").read_text() == "precious" and tree.is_dir()
    for target in (".", "/"):
        assert cli.main(["encode", str(frames_dir), "-o", target, "--force", "-q"]) == 2
    assert cli.main(["decode", str(frames_dir / "00000.png"), "-o", str(tmp_path / "a"), "--force"]) == 2
    assert (tmp_path / "a" / "keep.txt").exists()
    assert "Traceback" not in capsys.readouterr().err


def test_force_never_overwrites_the_input(frames_dir: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in frames_dir.iterdir())
    assert cli.main(["encode", str(frames_dir), "-o", str(frames_dir), "--force", "-q"]) == 2
    assert sorted(p.name for p in frames_dir.iterdir()) == before
    video = tmp_path / "clip.y4m"
    video.write_bytes(b"not really a video")
    assert cli.main(["encode", str(video), "-o", str(video), "--force", "-q"]) == 2
    assert video.read_bytes() == b"not really a video"


def test_force_replaces_what_cpsgd_wrote_and_nothing_else(stream: bytes, tmp_path: Path) -> None:
    source = tmp_path / "in.cpsgd"
    source.write_bytes(stream)
    out = tmp_path / "out"
    assert cli.main(["decode", str(source), "-o", str(out), "-q", "--generator", "hold"]) == 0
    assert cli.main(["decode", str(source), "-o", str(out), "-q", "--generator", "hold"]) == 2  # no --force
    assert cli.main(["decode", str(source), "-o", str(out), "-q", "--generator", "hold", "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [frame_file_name(i) for i in range(6)]
    (out / "notes.txt").write_text("mine")
    assert cli.main(["decode", str(source), "-o", str(out), "-q", "--generator", "hold", "--force"]) == 2
    assert (out / "notes.txt").exists()


def test_a_planted_partial_link_is_not_written_through(stream: bytes, frames_dir: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    source = tmp_path / "in.cpsgd"
    source.write_bytes(stream)
    (tmp_path / ".out.y4m.partial").symlink_to(victim)
    assert cli.main(["decode", str(source), "-o", str(tmp_path / "out.y4m"), "-q", "--generator", "hold"]) == 0
    (tmp_path / ".out.cpsgd.partial").symlink_to(victim)
    assert cli.main(["encode", str(frames_dir), "-o", str(tmp_path / "out.cpsgd"), "-q"]) == 0
    assert victim.read_text() == "keep me"
    assert (tmp_path / "out.y4m").stat().st_size > 0 and BitstreamReader.from_bytes((tmp_path / "out.cpsgd").read_bytes())


def test_unwritable_output_is_one_line(frames_dir: Path, stream: bytes, tmp_path: Path, capsys) -> None:
    source = tmp_path / "in.cpsgd"
    source.write_bytes(stream)
    assert cli.main(["encode", str(frames_dir), "-o", "/proc/out.cpsgd", "-q"]) == 2
    assert cli.main(["decode", str(source), "-o", "/proc/out.y4m", "-q"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_frame_names_keep_their_order_past_99999(tmp_path: Path) -> None:
    assert frame_file_name(7) == "frame_00007.png" and frame_file_name(100000) == "frame_100000.png"
    assert frame_file_name(7, 200_000) == "frame_000007.png"
    names = [frame_file_name(i) for i in (99_998, 99_999, 100_000, 100_001)]
    assert sorted((Path(n) for n in reversed(names)), key=frame_order) == [Path(n) for n in names]
    for i in (9, 10, 100):
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(tmp_path / f"f{i}.png")
    assert [int(f[0, 0, 0]) for f in open_video(tmp_path).iter_frames()] == [9, 10, 100]


# --- decode bombs ----------------------------------------------------------------------------


def test_brotli_caption_bomb_stops_at_the_limit() -> None:
    bomb = brotli.compress(b"a" * (64 << 20), quality=5)
    assert len(bomb) < 4096

    def decode() -> None:
        with pytest.raises(BitstreamError, match="length limit"):
            decode_caption(1, bomb)

    assert peak_traced_mb(decode) < 1


def test_intra_larger_than_the_stream_is_refused_before_decoding(stream: bytes) -> None:
    n, sections = first_gop(stream)
    big = INTRA_CODECS.get("av1")().encode(np.full((1024, 1024, 3), 90, np.uint8), 10)
    declared_small = replaced(sections, SectionType.INTRA, intra_payload(64, 48, big), 2)
    declared_big = replaced(sections, SectionType.INTRA, intra_payload(16384, 16384, big), 2)
    for gop in (declared_small, declared_big):
        data = stream_bytes(64, 48, 3, [(n, gop)])

        def decode() -> None:
            with pytest.raises(BitstreamError, match="exceeds"):
                decode_bytes(data, "hold")

        assert peak_traced_mb(decode) < 4


def test_mosaic_far_larger_than_the_frame_is_refused(stream: bytes) -> None:
    n, sections = first_gop(stream)
    gop = replaced(sections, SectionType.GEOMETRY, layout_payload(16384, 16384, 0, 0), 0)
    data = stream_bytes(64, 48, 3, [(n, gop)])

    def decode() -> None:
        with pytest.raises(BitstreamError, match="mosaic"):
            decode_bytes(data, "hold")

    assert peak_traced_mb(decode) < 4


def test_mask_section_cannot_ask_for_unbounded_work() -> None:
    """32 layers at full resolution and no coded words: the range decoder would read zeros for
    minutes; the work bound refuses it at once. A real payload still decodes (the codec tests)."""
    payload = bytes([1, 32]) + bytes(range(1, 33))
    with pytest.raises(BitstreamError, match="work limit"):
        ContextMaskCodec().decompress(payload, 25, 256, 256)


def test_standalone_files_cannot_ask_for_huge_allocations() -> None:
    body = b""
    head = MASK_MAGIC + bytes([1, 0]) + struct.pack("<IHHHI", 1024, 8192, 8192, 1024, zlib.crc32(body))
    with pytest.raises(BitstreamError, match="exceed"):
        next(decompress_mask_file(head + body))
    poses = ByteWriter()
    poses.raw(POSE_MAGIC)
    poses.u8(1)
    poses.u8(1)
    poses.varint(10**7)
    poses.varint(4096)
    with pytest.raises(BitstreamError, match="exceeds limit"):
        decompress_file(poses.getvalue())


def test_header_limits_are_checked_before_any_work(stream: bytes, tmp_path: Path) -> None:
    n, sections = first_gop(stream)
    path = tmp_path / "x.cpsgd"
    for width, height, gop, fps, message in [
        (8192, 8192, 1024, (25, 1), "pixels a GoP"),
        (64, 48, 3, (2**31, 1), "frame rate"),
        (64, 48, 3, (1, 2**32 - 1), "frame rate"),
    ]:
        data = stream_bytes(width, height, gop, [(n, sections)], fps)
        with pytest.raises(BitstreamError, match=message):
            BitstreamReader.from_bytes(data)
        path.write_bytes(data)
        assert cli.main(["decode", str(path), "-o", str(tmp_path / "o.y4m"), "-q"]) == 2
    with open(tmp_path / "w.cpsgd", "wb") as out, pytest.raises(InputError, match="pixels a GoP"):
        BitstreamWriter(out, StreamHeader(8192, 8192, Fraction(25), 1024))


def test_a_stream_without_gops_is_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "empty.cpsgd"
    path.write_bytes(stream_bytes(64, 48, 6, []))
    assert cli.main(["info", str(path)]) == 2
    assert cli.main(["decode", str(path), "-o", str(tmp_path / "out.mp4"), "-q"]) == 2
    assert not (tmp_path / "out.mp4").exists() and "holds no frames" in capsys.readouterr().err


def test_lazy_decode_holds_one_frame_not_the_gop(stream: bytes) -> None:
    n, sections = first_gop(stream)
    plain = [s for s in sections if s.type in (SectionType.INTRA, SectionType.POSES)]
    data = stream_bytes(320, 240, 200, [(200, plain)])
    whole = np.concatenate([g.frames for g in decode_gops(BitstreamReader.from_bytes(data), HoldGenerator())])

    def lazily() -> None:
        for gop in decode_gops(BitstreamReader.from_bytes(data), HoldGenerator(), lazy=True):
            for i, frame in enumerate(gop.frames):
                assert np.array_equal(frame, whole[i])

    assert peak_traced_mb(lazily) < whole.nbytes / 2**20 / 4  # the GoP is 44 MB


# --- --keep-going ----------------------------------------------------------------------------


class RaisingGenerator(HoldGenerator):
    """Fails inside generation on GoP 1 (as a generator does on a layout it cannot use)."""

    name = "raising"

    def generate(self, conditions: GopConditions) -> np.ndarray:
        if conditions.caption == "fail":
            raise BitstreamError("the generator cannot use this GoP")
        return super().generate(conditions)

    def frames(self, conditions: GopConditions):
        if conditions.caption == "fail":
            raise BitstreamError("the generator cannot use this GoP")
        yield from super().frames(conditions)


def test_keep_going_skips_errors_raised_by_the_generator(stream: bytes) -> None:
    reader = BitstreamReader.from_bytes(stream)
    gops = [(g.num_frames, list(g.sections)) for g in reader.gops()]
    text = Section(SectionType.TEXT, 0, b"fail")
    gops[1] = (gops[1][0], [s for s in gops[1][1] if s.type != SectionType.TEXT] + [text])
    data = stream_bytes(64, 48, 3, gops)
    for lazy in (False, True):
        results = list(decode_gops(BitstreamReader.from_bytes(data), RaisingGenerator(), keep_going=True, lazy=lazy))
        assert results[0].frames is not None and results[1].frames is None
        assert "cannot use this GoP" in results[1].damage


def test_keep_going_with_every_gop_damaged_writes_nothing(stream: bytes, tmp_path: Path, capsys) -> None:
    reader = BitstreamReader.from_bytes(stream)
    gops = [(g.num_frames, [s for s in g.sections if s.type != SectionType.INTRA]) for g in reader.gops()]
    path = tmp_path / "broken.cpsgd"
    path.write_bytes(stream_bytes(64, 48, 3, gops))
    for output in (tmp_path / "out.mp4", tmp_path / "out"):
        assert cli.main(["decode", str(path), "-o", str(output), "--keep-going", "-q"]) == 2
        assert not output.exists()
    err = capsys.readouterr().err
    assert err.count("no GoP could be decoded") == 2 and "Traceback" not in err


# --- careless inputs to the encoder ----------------------------------------------------------


def test_very_wide_and_tiny_frames_encode_and_decode() -> None:
    """64x7 used to crash OpenCV's DIS flow in the motion segmenter (a segfault, so this runs in a
    child process); frames under 8 px failed in the intra codec."""
    code = (
        "import numpy as np\n"
        "from cpsgd.pipeline import EncoderConfig, decode_bytes, encode_frames\n"
        "rng = np.random.default_rng(0)\n"
        "for h, w in [(7, 64), (64, 7), (3, 5), (1, 1)]:\n"
        "    frames = rng.integers(0, 255, (4, h, w, 3), dtype=np.uint8)\n"
        "    assert decode_bytes(encode_frames(frames, 25, EncoderConfig(pose_estimator=None))).shape == frames.shape\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]


def test_oversized_images_are_refused_before_reading(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "wide"
    folder.mkdir()
    Image.new("RGB", (70000, 1)).save(folder / "0.png")  # past the header's 16 bits
    assert cli.main(["encode", str(folder), "-o", str(tmp_path / "x.cpsgd"), "-q"]) == 2
    assert "16384" in capsys.readouterr().err
