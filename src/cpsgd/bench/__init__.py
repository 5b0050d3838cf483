"""Rate-distortion benchmark of cpsgd against tuned standard codecs (``cpsgd bench``)."""

from cpsgd.bench.cli import add_bench_command, bench
from cpsgd.bench.run import BenchConfig

__all__ = ["BenchConfig", "add_bench_command", "bench"]
