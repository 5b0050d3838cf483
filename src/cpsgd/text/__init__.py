"""Text stage: the optional caption, coded with whichever of plain UTF-8 and Brotli is shorter.

Brotli's built-in dictionary holds common English words, so a short caption shrinks by a third
or more; very short strings can still come out smaller as plain UTF-8.
"""

from __future__ import annotations

import brotli

from cpsgd.errors import BitstreamError

MAX_CAPTION_BYTES = 4096
# Brotli never grows incompressible data by more than a few bytes per 16 KiB block
MAX_PAYLOAD_BYTES = MAX_CAPTION_BYTES + 64
PLAIN, BROTLI = 0, 1  # backend codes in the text section


def encode_caption(caption: str) -> tuple[int, bytes]:
    """Return (backend code, payload)."""
    plain = caption.encode("utf-8")
    if len(plain) > MAX_CAPTION_BYTES:
        raise ValueError(f"caption longer than {MAX_CAPTION_BYTES} bytes")
    packed = brotli.compress(plain, mode=brotli.MODE_TEXT, quality=11)
    return (BROTLI, packed) if len(packed) < len(plain) else (PLAIN, plain)


def decode_caption(backend: int, payload: bytes) -> str:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise BitstreamError(f"text section of {len(payload)} bytes exceeds the limit of {MAX_PAYLOAD_BYTES}")
    if backend == BROTLI:
        try:
            decompressor = brotli.Decompressor()
            # stops once one byte past the limit is out: a small payload may expand to gigabytes
            plain = decompressor.process(payload, output_buffer_limit=MAX_CAPTION_BYTES + 1)
        except brotli.error as exc:
            raise BitstreamError(f"text section is corrupt: {exc}") from None
        if len(plain) <= MAX_CAPTION_BYTES and not decompressor.is_finished():
            raise BitstreamError("text section is truncated")
    elif backend == PLAIN:
        plain = payload
    else:
        raise BitstreamError(f"unknown text codec {backend}")
    if len(plain) > MAX_CAPTION_BYTES:
        raise BitstreamError("caption exceeds the length limit")
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise BitstreamError("caption is not valid UTF-8") from None
