"""Damage to every section type of a full stream: each is caught and reported with its GoP."""

from __future__ import annotations

import binascii
import io
import struct

import numpy as np
import pytest

from cpsgd.bitstream.container import HEADER_BYTES, BitstreamReader, Section, SectionType, pack_gop
from cpsgd.errors import BitstreamError
from cpsgd.pipeline import EncoderConfig, decode_bytes, encode_frames
from cpsgd.pipeline.decoder import decode_gops, make_generator
from cpsgd.poses.base import POSE_CODECS
from cpsgd.synth import SceneConfig, make_scene


@pytest.fixture(scope="module")
def full_stream() -> bytes:
    """Two GoPs with text, masks, object motion, poses, geometry and intra sections (user poses and
    masks, so no estimation time)."""
    clip = make_scene(SceneConfig(traj="pan", objects=1, num_frames=8, width=96, height=96, seed=3))
    # fixed choices (no rate control) so that the mosaic and its geometry section are always sent
    config = EncoderConfig(gop=4, bpp=0.05, caption="a cat crosses a room while the camera pans", rate_control=False)
    return encode_frames(clip.frames, clip.fps, config, clip.trajectory, clip.masks)


def gops_of(data: bytes):
    return list(BitstreamReader.from_bytes(data).gops())


def rebuild(data: bytes, gop_index: int, change) -> bytes:
    """Re-pack the stream with one GoP's sections changed (CRCs recomputed)."""
    out = [data[:HEADER_BYTES]]
    for gop in gops_of(data):
        sections = list(gop.sections)
        if gop.index == gop_index:
            sections = change(sections)
        out.append(pack_gop(gop.num_frames, sections))
    return b"".join(out)


def boundaries(data: bytes) -> list[int]:
    """File offsets where a GoP or a section starts or ends."""
    points, position = [HEADER_BYTES], HEADER_BYTES
    for gop in gops_of(data):
        head = len(pack_gop(gop.num_frames, []))
        position += head
        points.append(position)
        for section in gop.sections:
            position += len(pack_gop(gop.num_frames, [section])) - head
            points.append(position)
    return points


def test_the_stream_has_every_section_type(full_stream: bytes) -> None:
    # an inter section replaces the intra one (its damage is tested in test_inter.py)
    assert {s.type for s in gops_of(full_stream)[0].sections} == set(SectionType) - {SectionType.INTER}
    assert decode_bytes(full_stream).shape == (8, 96, 96, 3)


def test_truncation_at_and_inside_every_section(full_stream: bytes) -> None:
    cuts = boundaries(full_stream)
    cuts += [(a + b) // 2 for a, b in zip(cuts, cuts[1:])]
    for cut in sorted(set(cuts) - {len(full_stream)}):
        with pytest.raises(BitstreamError):
            decode_bytes(full_stream[:cut], "hold")


@pytest.mark.parametrize("section_type", list(SectionType))
def test_each_sections_crc_names_its_gop(full_stream: bytes, section_type: SectionType) -> None:
    data = bytearray(full_stream)
    start = boundaries(full_stream)
    gop1 = gops_of(full_stream)[1]
    order = [s.type for s in gop1.sections]
    if section_type not in order:
        pytest.skip(f"{section_type.part} is sent in the first GoP only")
    # GoP 1's sections start after GoP 0's sections and GoP 1's header
    first_of_gop1 = 1 + len(gops_of(full_stream)[0].sections) + 1
    section_start = start[first_of_gop1 + order.index(section_type)]
    data[section_start + 3] ^= 0x01  # inside the payload (tag, 1-2 length bytes before it)
    with pytest.raises(BitstreamError, match="GoP 1"):
        decode_bytes(bytes(data), "hold")


def test_unknown_section_type(full_stream: bytes) -> None:
    data = bytearray(full_stream)
    tag_at = HEADER_BYTES + len(pack_gop(4, []))  # GoP 0's first section tag
    data[tag_at] = (0xE << 4) | (data[tag_at] & 0x0F)
    # recompute that section's CRC so that only the type is wrong
    first = gops_of(full_stream)[0].sections[0]
    body_len = len(pack_gop(4, [first])) - len(pack_gop(4, []))
    body = bytes(data[tag_at : tag_at + body_len - 2])
    data[tag_at + body_len - 2 : tag_at + body_len] = struct.pack("<H", binascii.crc_hqx(body, 0xFFFF))
    with pytest.raises(BitstreamError, match="unknown section type"):
        decode_bytes(bytes(data), "hold")


@pytest.mark.parametrize(
    "section_type", [SectionType.INTRA, SectionType.POSES, SectionType.MASKS, SectionType.GEOMETRY, SectionType.OBJECTS]
)
def test_zero_length_payloads(full_stream: bytes, section_type: SectionType) -> None:
    def empty(sections):
        return [Section(s.type, s.backend, b"") if s.type == section_type else s for s in sections]

    with pytest.raises(BitstreamError, match="GoP 0"):
        decode_bytes(rebuild(full_stream, 0, empty), "hold")


def test_object_motion_needs_the_masks(full_stream: bytes) -> None:
    def without_masks(sections):
        return [s for s in sections if s.type != SectionType.MASKS]

    with pytest.raises(BitstreamError, match="object motion section without a mask section"):
        decode_bytes(rebuild(full_stream, 0, without_masks), "hold")


def test_wrong_backend_code_is_rejected(full_stream: bytes) -> None:
    def unknown_backend(sections):
        return [Section(s.type, 15, s.payload) if s.type == SectionType.POSES else s for s in sections]

    with pytest.raises(BitstreamError, match="unknown pose codec"):
        decode_bytes(rebuild(full_stream, 0, unknown_backend), "hold")


@pytest.mark.parametrize("codec_name", ["paper", "compact"])
def test_nan_and_infinity_in_pose_data(full_stream: bytes, codec_name: str) -> None:
    """Write NaN/inf float16 and float32 patterns at every offset of a pose payload: each either
    raises BitstreamError or decodes to finite poses that render."""
    clip = make_scene(SceneConfig(traj="orbit", objects=0, num_frames=5, width=32, height=32))
    codec = POSE_CODECS.get(codec_name)()
    payload = codec.compress(clip.trajectory.relative_to_first())
    generator = make_generator("warp")
    patterns = [b"\x00\x7e", b"\x00\x7c", b"\x00\x00\xc0\x7f", b"\x00\x00\x80\xff"]
    decoded = rejected = 0
    for pattern in patterns:
        for at in range(len(payload)):
            damaged = payload[:at] + pattern + payload[at + len(pattern) :]
            try:
                trajectory = codec.decompress(damaged, 5)
            except BitstreamError:
                rejected += 1
                continue
            assert np.all(np.isfinite(trajectory.world_to_camera))
            decoded += 1
    assert rejected > 0


def test_damage_reports_the_gop_through_the_stream_api(full_stream: bytes) -> None:
    def corrupt_intra(sections):
        return [Section(s.type, s.backend, s.payload[:6]) if s.type == SectionType.INTRA else s for s in sections]

    data = rebuild(full_stream, 1, corrupt_intra)
    reader = BitstreamReader(io.BytesIO(data))
    results = list(decode_gops(reader, make_generator("hold"), keep_going=True))
    assert results[0].frames is not None and results[1].frames is None
    assert results[1].damage.startswith("GoP 1")
