"""Reading and writing frames: folders, .y4m, .mp4; lazy GoPs; the square protocol; bad inputs."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cpsgd.errors import InputError
from cpsgd.video import RawFormat, open_video, open_writer
from cpsgd.video.reader import square_resize

from conftest import textured_clip


def write_frames(folder: Path, frames: np.ndarray) -> Path:
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:04d}.png")
    return folder


@pytest.mark.parametrize("suffix", ["", ".y4m", ".mp4", ".mkv"])
def test_write_then_read_back(tmp_path: Path, suffix: str) -> None:
    frames = textured_clip(6, 41, 67)  # odd sizes on purpose
    target = tmp_path / f"clip{suffix}"
    writer = open_writer(target, Fraction(24))
    for frame in frames:
        writer.write(frame)
    writer.close()
    source = open_video(target)
    back = source.read_all()
    if suffix in (".mp4", ".mkv"):  # H.264 4:2:0: padded to even sizes by repeating the edge
        assert back.shape == (6, 42, 68, 3)
        assert np.abs(back[:, -1].astype(int) - back[:, -2]).mean() < 3
        back = back[:, :41, :67]
    assert back.shape == frames.shape
    tolerance = {"": 0, ".y4m": 3}.get(suffix, 12)
    assert np.abs(back.astype(int) - frames).mean() <= tolerance
    if suffix:
        assert source.fps == Fraction(24)
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


def test_png_folder_names(tmp_path: Path) -> None:
    writer = open_writer(tmp_path / "out", Fraction(25))
    for frame in textured_clip(3, 16, 16):
        writer.write(frame)
    writer.close()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"frame_0000{i}.png" for i in range(3)]


def test_gops_are_lazy_blocks(tmp_path: Path) -> None:
    source = open_video(write_frames(tmp_path / "f", textured_clip(7, 32, 48)))
    assert [len(g) for g in source.iter_gops(3)] == [3, 3, 1]
    assert open_video(tmp_path / "f", max_frames=4).read_all().shape[0] == 4


def test_square_protocol() -> None:
    frame = np.zeros((480, 854, 3), np.uint8)
    frame[:, 427 - 240 : 427 + 240] = 200  # the centre square
    out = square_resize(frame, 128)
    assert out.shape == (128, 128, 3) and out.min() == 200


def test_grey_16bit_and_alpha_frames_become_rgb8(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(folder / "0.png")
    Image.fromarray(np.full((8, 8, 4), 90, np.uint8), "RGBA").save(folder / "1.png")
    Image.fromarray(np.full((8, 8), 7, np.uint8), "L").save(folder / "2.png")
    frames = open_video(folder).read_all()
    assert frames.dtype == np.uint8 and frames.shape == (3, 8, 8, 3)
    assert frames[0, 0, 0, 0] == 40000 >> 8 and frames[1, 0, 0, 0] == 90 and frames[2, 0, 0, 0] == 7


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "mixed_sizes", "non_image", "empty_dir"])
def test_bad_inputs(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "input"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("not a video at all\n" * 100)
    elif kind == "mixed_sizes":
        write_frames(path, textured_clip(2, 16, 16))
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path / "9999.png")
    elif kind == "non_image":
        write_frames(path, textured_clip(2, 16, 16))
        (path / "notes.txt").write_text("hello")
    elif kind == "empty_dir":
        path.mkdir()
    with pytest.raises(InputError):
        open_video(path).read_all()


def test_writer_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "a.mp4").write_bytes(b"precious")
    with pytest.raises(InputError, match="already exists"):
        open_writer(tmp_path / "a.mp4", Fraction(25))
    assert (tmp_path / "a.mp4").read_bytes() == b"precious"


def test_truncated_video_file_reads_what_is_there_or_fails_cleanly(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    writer = open_writer(target, Fraction(25))
    for frame in textured_clip(20, 64, 64):
        writer.write(frame)
    writer.close()
    data = target.read_bytes()
    for keep in (len(data) // 2, 200, 40):
        cut = tmp_path / f"cut{keep}.mp4"
        cut.write_bytes(data[:keep])
        try:
            frames = open_video(cut).read_all()
        except InputError:
            continue
        assert frames.shape[1:] == (64, 64, 3) and len(frames) <= 20


def test_zero_frame_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="at least 1"):
        open_video(write_frames(tmp_path / "f", textured_clip(2, 16, 16)), max_frames=0)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_odd_sizes_are_written_as_playable_420(tmp_path: Path, suffix: str) -> None:
    import av

    writer = open_writer(tmp_path / f"odd{suffix}", Fraction(25))
    for frame in textured_clip(3, 197, 333):
        writer.write(frame)
    writer.close()
    with av.open(str(tmp_path / f"odd{suffix}")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.codec_context.width, stream.codec_context.height) == (334, 198)
        assert "4:4:4" not in (stream.codec_context.profile or "")


def _raw_planes(luma: np.ndarray, pix_fmt: str) -> bytes:
    """Grey frames (U = V = mid-grey) as a headerless planar file."""
    high_bit = pix_fmt.endswith("10le")
    dtype, mid = (np.dtype("<u2"), 512) if high_bit else (np.dtype(np.uint8), 128)
    h, w = luma.shape[1:]
    chroma = {"yuv420p": ((h + 1) // 2, (w + 1) // 2), "yuv444p": (h, w)}[pix_fmt.removesuffix("10le")]
    data = b""
    for y in luma:
        data += (y.astype(dtype) * (4 if high_bit else 1)).tobytes() + np.full(chroma, mid, dtype).tobytes() * 2
    return data


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le", "yuv444p"])
def test_raw_yuv_reads_with_its_size_and_pixel_format(tmp_path: Path, pix_fmt: str) -> None:
    luma = np.stack([np.tile(np.linspace(16, 235, 33).astype(np.uint8), (19, 1)) + i for i in range(4)])
    path = tmp_path / "clip.yuv"
    path.write_bytes(_raw_planes(luma, pix_fmt))
    source = open_video(path, raw=RawFormat(33, 19, pix_fmt), max_frames=3)
    assert (source.width, source.height, source.frame_count_hint) == (33, 19, 3)
    frames = source.read_all()
    assert frames.shape == (3, 19, 33, 3)
    expected = np.clip((luma[:3].astype(float) - 16) * 255 / 219, 0, 255)  # limited-range grey
    assert np.abs(frames[..., 1] - expected).max() <= 2
    assert np.abs(frames[..., 0].astype(int) - frames[..., 2]).max() <= 2


def test_raw_yuv_needs_a_size_that_fits_the_file(tmp_path: Path) -> None:
    path = tmp_path / "clip.yuv"
    path.write_bytes(bytes(33 * 19 * 3 // 2 * 2 + 1))
    with pytest.raises(InputError, match="--raw-size"):
        open_video(path)
    with pytest.raises(InputError, match="not a whole number of 33x19 yuv420p frames"):
        open_video(path, raw=RawFormat(33, 19))
    with pytest.raises(InputError, match="--pix-fmt 'nv12' is not supported"):
        open_video(path, raw=RawFormat(33, 19, "nv12"))


def test_frame_count_hint_honours_the_frame_limit(tmp_path: Path) -> None:
    folder = write_frames(tmp_path / "f", textured_clip(7, 32, 48))
    assert open_video(folder).frame_count_hint == 7
    assert open_video(folder, max_frames=3).frame_count_hint == 3


def test_dataset_folders_are_named_not_read_as_frames(tmp_path: Path) -> None:
    sequence = tmp_path / "DAVIS" / "JPEGImages" / "480p" / "bear"
    sequence.parent.mkdir(parents=True)
    write_frames(sequence, textured_clip(2, 16, 16))
    with pytest.raises(InputError, match=r"is a DAVIS dataset: give one sequence, e\.g\. .*480p/bear"):
        open_video(tmp_path / "DAVIS")
    with pytest.raises(InputError, match=r"holds folders \(bear\), not frames"):
        open_video(sequence.parent)
    assert open_video(sequence).read_all().shape == (2, 16, 16, 3)
