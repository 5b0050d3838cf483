"""Structure-aware fuzzing of the decoder: valid-CRC streams whose declared values are absurd.

Random mutation (``cpsgd.bitstream.fuzz``) keeps a seed's header, so it never asks for a huge
frame, a long GoP or a mosaic far larger than the frame; the streams here do. Each is built from a
real seed stream: its header rewritten (sizes, GoP length, frame counts, frame rates), its GoPs
restructured (no sections, duplicated, reordered, unknown types or codecs, empty payloads), or one
section replaced by a crafted payload (a Brotli bomb, an intra picture larger than its stream,
masks with every layer and no coded words, extreme mosaic layouts, huge varints). The CRCs are
always right, so every check past the container is exercised.

``run_isolated`` decodes one of them in a forked child under a time limit and an address-space
cap, and reports its exit status, time and peak RSS: the decoder must give 0 or 2 (one line)
within seconds and bounded memory, whatever the stream says.
"""

from __future__ import annotations

import binascii
import os
import resource
import signal
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import brotli
import numpy as np

from cpsgd.bitstream.bytes import ByteReader, ByteWriter
from cpsgd.bitstream.container import HEADER_BYTES, HEADER_STRUCT, MAGIC, VERSION, BitstreamReader, Section, SectionType, pack_gop
from cpsgd.intra import INTRA_CODECS
from cpsgd.intra.budget import intra_payload

_HUGE_VARINT = b"\xff\xff\xff\xff\x0f"  # 2^32 - 1


@dataclass(frozen=True)
class CraftedStream:
    name: str  # what is absurd about it
    data: bytes
    pixels: int = 0  # frames x pixels its GoPs would decode to, were they valid: the work it may take


@dataclass(frozen=True)
class Outcome:
    exit_code: int | None  # None: killed at the time limit
    seconds: float
    peak_rss_bytes: int  # the child's peak resident set, minus what it shared with the parent at the start
    error_line: str  # the last line the child wrote to stderr


def stream_bytes(
    width: int, height: int, gop_size: int, gops: list[tuple[int, list[Section]]],
    fps: tuple[int, int] = (25, 1), num_frames: int | None = None, num_gops: int | None = None,
) -> bytes:
    """A stream with a correct header CRC whatever the (u16/u32-sized) values; counts default to
    what ``gops`` holds."""
    frames = sum(n for n, _ in gops) if num_frames is None else num_frames
    header = HEADER_STRUCT.pack(width, height, fps[0], fps[1], gop_size, frames, len(gops) if num_gops is None else num_gops, 0)
    body = b"".join(_pack_any_gop(n, sections) for n, sections in gops)
    return MAGIC + bytes([VERSION]) + header + struct.pack("<I", zlib.crc32(header)) + body


def _pack_any_gop(num_frames: int, sections: list[Section]) -> bytes:
    """``pack_gop`` without its limits (frame counts up to 2^14, any number of sections)."""
    if 1 <= num_frames <= 1024 and len(sections) <= 16:
        return pack_gop(num_frames, sections)
    varint = ByteWriter()
    varint.varint(num_frames)
    head = varint.getvalue() + bytes([len(sections) & 0xFF])
    out = [head, _crc16(head)]
    for section in sections:
        length = ByteWriter()
        length.varint(len(section.payload))
        body = bytes([section.type << 4 | section.backend]) + length.getvalue() + section.payload
        out += [body, _crc16(body)]
    return b"".join(out)


def _crc16(data: bytes) -> bytes:
    return struct.pack("<H", binascii.crc_hqx(data, 0xFFFF))


def _replace(sections: list[Section], kind: SectionType, payload: bytes, backend: int | None = None) -> list[Section]:
    out = [s for s in sections if s.type != kind]
    old = next((s for s in sections if s.type == kind), None)
    code = backend if backend is not None else (old.backend if old else 0)
    return out + [Section(kind, code, payload)]


def layout_payload(width: int, height: int, x0: int, y0: int, under: tuple[int, int, int, int] | None = None) -> bytes:
    """A geometry section (flat 1x1 grid) with this mosaic layout, whatever its values."""
    writer = ByteWriter()
    writer.u8(1)
    writer.u8(1)
    writer.f16(0.0)
    writer.f16(0.0)
    writer.u8(0)
    writer.u8(2 if under else 1)
    for value in (width, height, x0, y0) + (under or ()):
        writer.varint(value)
    return writer.getvalue()


def _mask_payload(factor: int, labels: int, words: bytes = b"") -> bytes:
    return bytes([factor, labels]) + bytes(range(1, labels + 1)) + words


def crafted_streams(seed: bytes, random_count: int = 64, seed_value: int = 0) -> Iterator[CraftedStream]:
    """The crafted streams for one valid ``seed`` stream (every section type in its first GoP);
    then ``random_count`` streams with one absurd value written at a random place
    of a random section (CRCs recomputed); last a GoP at the pixel limit (129 frames of 1080p), whose
decode legitimately takes a while. Deterministic for a given seed and ``seed_value``."""
    reader = BitstreamReader.from_bytes(seed)
    h = reader.header
    gops = [(g.num_frames, list(g.sections)) for g in reader.gops()]
    frames_sent = h.num_frames
    n0, first = gops[0]
    w, ht = h.width, h.height
    fps = (h.fps.numerator, h.fps.denominator)

    def one(name: str, sections: list[Section], frames: int = n0, **header: int) -> CraftedStream:
        width, height, gop = header.get("width", w), header.get("height", ht), header.get("gop", max(h.gop_size, frames))
        return CraftedStream(name, stream_bytes(width, height, gop, [(frames, sections)], fps), frames * width * height)

    # --- the header --------------------------------------------------------------------------
    for width, height, gop in [
        (1, 1, h.gop_size), (1, 16384, h.gop_size), (16384, 1, h.gop_size), (16384, 16384, 1024),
        (16384, 16384, 1), (65535, 65535, 1), (8192, 8192, 1024), (1920, 1080, 1024), (0, 48, 6),
    ]:
        data = stream_bytes(width, height, gop, gops, fps)
        yield CraftedStream(f"header {width}x{height} GoP {gop}", data, frames_sent * width * height)
    for rate in [(2**32 - 1, 1), (1, 2**32 - 1), (2**31, 1), (0, 1)]:
        yield CraftedStream(f"frame rate {rate[0]}/{rate[1]}", stream_bytes(w, ht, h.gop_size, gops, rate), frames_sent * w * ht)
    yield CraftedStream("no GoPs", stream_bytes(w, ht, h.gop_size, [], fps))
    yield CraftedStream("10^7 frames declared", stream_bytes(w, ht, h.gop_size, gops, fps, num_frames=10**7))
    yield CraftedStream("more GoPs declared than sent", stream_bytes(w, ht, h.gop_size, gops, fps, num_gops=len(gops) + 5))
    yield CraftedStream("truncated after the header", stream_bytes(w, ht, h.gop_size, gops, fps)[:HEADER_BYTES])
    # --- the GoP structure -------------------------------------------------------------------
    yield one("GoP without sections", [])
    yield one("GoP of 1024 frames", first, frames=1024, gop=1024)
    yield one("GoP of 4000 frames", first, frames=4000, gop=1024)
    yield one("every section twice", first + first)
    yield one("sections reversed", first[::-1])
    yield one("16 sections", (first * 16)[:16])
    yield one("200 sections", (first * 200)[:200])
    for section in first:
        yield one(f"{section.type.part} section empty", _replace(first, section.type, b""))
        yield one(f"{section.type.part} section only", [section])
        yield one(f"{section.type.part} section, backend 15", _replace(first, section.type, section.payload, 15))
    yield one("unknown section type 14", first + [Section(14, 0, b"x")])  # type: ignore[arg-type]
    # --- the text section --------------------------------------------------------------------
    yield one("Brotli bomb (1 GiB of text)", _replace(first, SectionType.TEXT, brotli.compress(b"a" * (1 << 30), quality=5), 1))
    yield one("caption of 4096 bytes", _replace(first, SectionType.TEXT, b"a" * 4096, 0))
    yield one("caption of 65536 bytes", _replace(first, SectionType.TEXT, b"a" * 65536, 0))
    yield one("caption not UTF-8", _replace(first, SectionType.TEXT, b"\xff\xfe\xfd", 0))
    # --- the intra section -------------------------------------------------------------------
    intra = next(s for s in first if s.type == SectionType.INTRA)
    intra_reader = ByteReader(intra.payload, "intra section")
    intra_reader.varint(), intra_reader.varint()
    coded = intra_reader.rest()
    for width, height in [(16384, 16384), (1, 1), (w * 4, ht * 4), (0, 0)]:
        yield one(f"intra declares {width}x{height}", _replace(first, SectionType.INTRA, intra_payload(width, height, coded)))
    big = np.full((1024, 1024, 3), 90, np.uint8)
    for codec_name in ("av1", "webp"):
        codec = INTRA_CODECS.get(codec_name)()
        picture = codec.encode(big, 10)
        yield one(f"{codec_name} picture of 1024x1024 declared {w}x{ht}",
                  _replace(first, SectionType.INTRA, intra_payload(w, ht, picture), codec.code))
        yield one(f"{codec_name} picture of 1024x1024 declared so",
                  _replace(first, SectionType.INTRA, intra_payload(1024, 1024, picture), codec.code))
    # --- the geometry section (mosaic layout) ------------------------------------------------
    for width, height, x0, y0, under in [
        (16384, 16384, 0, 0, None), (3 * w, 3 * ht, w, ht, None), (3 * w + 1, ht, 0, 0, None),
        (w, ht, 16384, 16384, None), (w, ht, 0, 0, (0, 0, w, ht)), (w, ht, 0, 0, (0, 0, 16384, 16384)),
        (2 * w, 2 * ht, 0, 0, (w - 1, ht - 1, 1, 1)),
    ]:
        sections = _replace(first, SectionType.GEOMETRY, layout_payload(width, height, x0, y0, under), 0)
        yield one(f"mosaic {width}x{height} at ({x0}, {y0}), under {under}", sections)
    # --- the mask section --------------------------------------------------------------------
    for factor, labels, words, frames, size in [
        (1, 32, b"", n0, (w, ht)), (1, 32, b"", 256, (256, 256)), (64, 32, b"", n0, (w, ht)),
        (1, 32, bytes(range(256)) * 4, 129, (1920, 1080)), (1, 1, b"\xff" * 4, 1024, (w, ht)),
        (0, 1, b"", n0, (w, ht)), (1, 33, b"", n0, (w, ht)),
    ]:
        sections = _replace(first, SectionType.MASKS, _mask_payload(factor, labels, words), 0)
        sections = [s for s in sections if s.type != SectionType.OBJECTS]
        yield one(f"masks: factor {factor}, {labels} layers, {len(words)} bytes, {frames} frames of {size[0]}x{size[1]}",
                  sections, frames=frames, width=size[0], height=size[1])
    # --- poses and object motion: extreme varints and filler ---------------------------------
    for kind in (SectionType.POSES, SectionType.OBJECTS):
        for filler in (b"\xff" * 64, b"\x00" * 64, _HUGE_VARINT * 8, b"\x7f" * 4096):
            yield one(f"{kind.part}: {len(filler)} bytes of {filler[:1].hex()}", _replace(first, kind, filler))
    # --- one absurd value at a random place (structure kept, CRCs right) ---------------------
    rng = np.random.default_rng(seed_value)
    patterns = [_HUGE_VARINT, b"\xff\xff", b"\x00\x00", b"\x00\x7c", b"\x00\x00\xc0\x7f", b"\x80\x80\x80\x80\x80\x01"]
    for index in range(random_count):
        victim = first[rng.integers(len(first))]
        pattern = patterns[rng.integers(len(patterns))]
        at = int(rng.integers(len(victim.payload) + 1))
        payload = victim.payload[:at] + pattern + victim.payload[at + len(pattern) :]
        yield one(f"random {index}: {victim.type.part} + {pattern.hex()} at {at}", _replace(first, victim.type, payload))
    # last, the slowest: a 157-byte stream asking for 800 MB of frames, which the decoder writes
    # one frame at a time
    no_mosaic = [s for s in first if s.type in (SectionType.INTRA, SectionType.POSES, SectionType.TEXT)]
    yield one("GoP of 129 frames of 1920x1080 (the pixel limit)", no_mosaic, frames=129, width=1920, height=1080, gop=129)



def run_isolated(task: Callable[[], int], time_limit_s: float, memory_limit_bytes: int) -> Outcome:
    """Run ``task`` (returning an exit status) in a forked child whose address space may grow by
    ``memory_limit_bytes`` at most; kill it past ``time_limit_s``. Fork only from a process whose
    thread pools (OpenCV's, OpenMP's) have not started: a forked child cannot use them."""
    err_read, err_write = os.pipe()
    rss_read, rss_write = os.pipe()
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.close(err_read)
            os.close(rss_read)
            os.dup2(err_write, 2)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            base = _status_kib("VmRSS")  # the parent's pages the child maps from the start
            limit = _status_kib("VmSize") * 1024 + memory_limit_bytes
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            try:
                code = task()
            finally:  # the high-water mark of the child's own memory (reset by fork)
                os.write(rss_write, str((_status_kib("VmHWM") - base) * 1024).encode())
        except BaseException as exc:  # noqa: BLE001  (any escape is a failure the parent reports)
            os.write(2, f"\n{type(exc).__name__}: {exc}\n".encode(errors="replace"))
        finally:
            os._exit(code if isinstance(code, int) else 1)
    os.close(err_write)
    os.close(rss_write)
    os.set_blocking(err_read, False)
    errors = bytearray()
    while True:
        finished, status, usage = os.wait4(pid, os.WNOHANG)
        errors += _drain(err_read)
        if finished:
            code: int | None = os.waitstatus_to_exitcode(status)
            break
        if time.perf_counter() - start > time_limit_s:
            os.kill(pid, signal.SIGKILL)
            os.wait4(pid, 0)
            code = None
            break
        time.sleep(0.01)
    seconds = time.perf_counter() - start
    errors = (errors + _drain(err_read))[-4096:]
    reported = os.read(rss_read, 64)
    os.close(err_read)
    os.close(rss_read)
    # killed before it could report: the parent's measure, an upper bound (it counts shared pages)
    peak = int(reported) if reported else usage.ru_maxrss * 1024 if code is not None else -1
    lines = errors.decode(errors="replace").strip().splitlines()
    return Outcome(code, seconds, max(peak, 0), lines[-1] if lines else "")


def _drain(fd: int) -> bytes:
    out = bytearray()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return bytes(out)
        if not chunk:
            return bytes(out)
        out = (out + chunk)[-4096:]  # the end of what the child says: a traceback's last line


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")
