"""Mutation fuzzing of the decoder, used by the test suite (bounded) and benchmarks/fuzz_decoder.py.

Two kinds of mutants: raw byte damage (caught mostly by lengths and CRCs), and payload damage
with the CRCs recomputed, which gets past the container and exercises every section parser.
"""

from __future__ import annotations

import io
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from cpsgd.bitstream.container import HEADER_BYTES, BitstreamReader, Section, pack_gop
from cpsgd.errors import BitstreamError
from cpsgd.pipeline.decoder import decode_gops, make_generator


def _damage(payload: bytes, rng: np.random.Generator) -> bytes:
    data = bytearray(payload)
    kind = rng.integers(6)
    if kind == 0 and data:  # flip bits
        for _ in range(rng.integers(1, 4)):
            data[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
    elif kind == 1 and data:  # overwrite a byte with an extreme value
        data[rng.integers(len(data))] = int(rng.choice([0, 0x7F, 0x80, 0xFF]))
    elif kind == 2:  # truncate
        del data[rng.integers(len(data) + 1) :]
    elif kind == 3:  # insert random bytes
        at = rng.integers(len(data) + 1)
        data[at:at] = rng.integers(0, 256, rng.integers(1, 9), dtype=np.uint8).tobytes()
    elif kind == 4 and data:  # delete a run
        at = rng.integers(len(data))
        del data[at : at + rng.integers(1, 9)]
    else:  # NaN / infinity patterns for float fields
        at = rng.integers(len(data) + 1)
        data[at:at] = bytes.fromhex(str(rng.choice(["007e", "007c", "0000c07f", "0000807f"])))
    return bytes(data)


def mutate(stream: bytes, rng: np.random.Generator) -> bytes:
    """One mutant of a valid stream: half raw damage, half payload damage behind valid CRCs."""
    if rng.random() < 0.5:
        return _damage(stream, rng)
    reader = BitstreamReader.from_bytes(stream)
    gops = list(reader.gops())
    target = gops[rng.integers(len(gops))]
    index = rng.integers(len(target.sections))
    out = [stream[:HEADER_BYTES]]
    for gop in gops:
        sections = list(gop.sections)
        if gop is target:
            victim = sections[index]
            sections[index] = Section(victim.type, victim.backend, _damage(victim.payload, rng))
        out.append(pack_gop(gop.num_frames, sections))
    return b"".join(out)


@dataclass
class FuzzReport:
    tried: int = 0
    outcomes: Counter = field(default_factory=Counter)  # decoded, rejected, crashed, too slow
    slowest_s: float = 0.0
    failures: list[str] = field(default_factory=list)  # the first few, with their mutants

    @property
    def failed(self) -> int:
        return self.outcomes["crashed"] + self.outcomes["too slow"]


def fuzz_decoder(
    seeds: list[bytes], count: int, seed: int = 0, generator: str = "hold", time_limit_s: float = 10.0,
    stop_at_failure: bool = True,
) -> FuzzReport:
    """Decode ``count`` mutants. Each must decode or raise BitstreamError within the time limit;
    anything else is a failure: raised at once (as AssertionError, with the mutant), or with
    ``stop_at_failure`` off counted in the report."""
    rng = np.random.default_rng(seed)
    backend = make_generator(generator)
    report = FuzzReport()
    for _ in range(count):
        mutant = mutate(seeds[rng.integers(len(seeds))], rng)
        start = time.perf_counter()
        try:
            for _gop in decode_gops(BitstreamReader(io.BytesIO(mutant)), backend):
                pass
            report.outcomes["decoded"] += 1
        except BitstreamError:
            report.outcomes["rejected"] += 1
        except Exception as exc:
            failure = f"decoder crashed on a mutant ({mutant.hex()[:200]}...): {exc!r}"
            if stop_at_failure:
                raise AssertionError(failure) from exc
            report.outcomes["crashed"] += 1
            report.failures.append(failure)
        elapsed = time.perf_counter() - start
        report.slowest_s = max(report.slowest_s, elapsed)
        if elapsed > time_limit_s:
            failure = f"decoder took {elapsed:.1f} s on a mutant ({mutant.hex()[:200]}...)"
            if stop_at_failure:
                raise AssertionError(failure)
            report.outcomes["too slow"] += 1
            report.failures.append(failure)
        report.tried += 1
    return report
