"""Geometry section codecs: a scene geometry (and the mosaic layout, when a mosaic is sent) <-> bytes."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from cpsgd.bitstream.bytes import ByteReader, ByteWriter
from cpsgd.errors import BitstreamError
from cpsgd.geometry.model import MosaicLayout, SceneGeometry
from cpsgd.registry import Registry

MAX_GRID = 32
MAX_CANVAS = 16384


class GeometryCodec(ABC):
    name: str
    code: int

    @abstractmethod
    def compress(self, geometry: SceneGeometry) -> bytes: ...

    @abstractmethod
    def decompress(self, data: bytes) -> SceneGeometry: ...


GEOMETRY_CODECS: Registry[GeometryCodec] = Registry("geometry codec")


@GEOMETRY_CODECS.register("grid8", code=0)
class Grid8Codec(GeometryCodec):
    """Grid size, the value range as two float16, then one byte per cell (uniform quantiser);
    then a flag byte and the layout as varints. An 8x8 grid costs 71 bytes without a layout, the
    geometry at infinity 8; a layout adds 4-14 bytes."""

    def compress(self, geometry: SceneGeometry) -> bytes:
        grid = geometry.inverse_depth
        gh, gw = grid.shape
        if not (gh <= MAX_GRID and gw <= MAX_GRID):
            raise ValueError(f"geometry grid {gh}x{gw} exceeds {MAX_GRID}x{MAX_GRID}")
        lo = float(np.float16(grid.min()))
        hi = float(np.float16(grid.max()))
        # float16 rounding may move the ends inwards: widen so that every value is in range
        lo = float(np.nextafter(np.float16(lo), np.float16(-np.inf))) if lo > grid.min() else lo
        hi = float(np.nextafter(np.float16(hi), np.float16(np.inf))) if hi < grid.max() else hi
        w = ByteWriter()
        w.u8(gh)
        w.u8(gw)
        w.f16(lo)
        w.f16(hi)
        span = hi - lo
        q = np.zeros(grid.shape) if span <= 0 else np.round((grid - lo) / span * 255.0)
        w.raw(np.clip(q, 0, 255).astype(np.uint8).tobytes())
        layout = geometry.layout
        if layout is None:
            w.u8(0)
        else:
            w.u8(2 if layout.under else 1)
            for v in (layout.width, layout.height, layout.x0, layout.y0) + (layout.under or ()):
                w.varint(v)
        return w.getvalue()

    def decompress(self, data: bytes) -> SceneGeometry:
        r = ByteReader(data, "geometry section")
        gh, gw = r.u8(), r.u8()
        if not (1 <= gh <= MAX_GRID and 1 <= gw <= MAX_GRID):
            raise BitstreamError(f"geometry section: grid {gh}x{gw} out of range")
        lo, hi = r.f16(), r.f16()
        if hi < lo:
            raise BitstreamError("geometry section: value range is reversed")
        q = np.frombuffer(r.raw(gh * gw), dtype=np.uint8).reshape(gh, gw)
        grid = lo + (hi - lo) * q.astype(np.float64) / 255.0
        flag = r.u8()
        if flag > 2:
            raise BitstreamError(f"geometry section: unknown layout flag {flag}")
        layout = None
        if flag:
            values = [r.varint(MAX_CANVAS) for _ in range(4 if flag == 1 else 8)]
            width, height, x0, y0 = values[:4]
            under = tuple(values[4:]) if flag == 2 else None
            if width < 1 or height < 1:
                raise BitstreamError("geometry section: empty mosaic canvas")
            layout = MosaicLayout(width, height, x0, y0, under)  # type: ignore[arg-type]
        r.expect_end()
        return SceneGeometry(grid, layout)
