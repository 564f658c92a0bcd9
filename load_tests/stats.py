"""Measurements of a worker process, and merging them across workers.

Each worker records latencies into HDR histograms (microseconds, 1 us to
10 min, 3 significant digits) and counts what its clients saw. Every
interval it sends a ``Sample``: the counts and the histograms of that
interval only, encoded (the HdrHistogram wire format, so merging across
processes is exact). The parent adds samples of the same interval into the
timeline, and every sample into the run's totals.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from load_tests.checker import StreamCounts
from load_tests.result import Latency

__all__ = ["LOWEST_US", "HIGHEST_US", "Histogram", "Sample", "Totals", "latency_of"]

LOWEST_US = 1
HIGHEST_US = 600_000_000
_DIGITS = 3


class Histogram:
    """An HDR histogram of latencies in microseconds."""

    def __init__(self) -> None:
        self.hdr = HdrHistogram(LOWEST_US, HIGHEST_US, _DIGITS)

    def record_ns(self, latency_ns: int) -> None:
        """Record one latency in ns (clamped into the trackable range)."""
        us = latency_ns // 1000
        self.hdr.record_value(min(max(us, LOWEST_US), HIGHEST_US))

    def encode(self) -> bytes:
        """The compressed wire form, for another process."""
        encoded: bytes = self.hdr.encode()
        return encoded

    def add_encoded(self, encoded: bytes) -> None:
        """Add a histogram that ``encode`` produced."""
        if encoded:
            self.hdr.decode_and_add(encoded)

    def add(self, other: Histogram) -> None:
        """Add another histogram into this one."""
        self.hdr.add(other.hdr)

    def reset(self) -> None:
        """Empty it."""
        self.hdr.reset()

    @property
    def count(self) -> int:
        """Values recorded."""
        total: int = self.hdr.get_total_count()
        return total


def latency_of(histogram: Histogram) -> Latency:
    """Percentiles in ms (None without values)."""
    hdr = histogram.hdr
    if histogram.count == 0:
        return Latency()

    def ms(percentile: float) -> float:
        return round(float(hdr.get_value_at_percentile(percentile)) / 1000, 3)

    return Latency(
        count=histogram.count,
        p50=ms(50.0),
        p99=ms(99.0),
        p999=ms(99.9),
        max=round(float(hdr.get_max_value()) / 1000, 3),
    )


@dataclass(slots=True)
class Sample:
    """One worker's measurements over one interval (picklable).

    ``connected`` is a level (clients connected at the end of the interval);
    everything else counts what happened during it. ``cpu_s`` is the
    worker's CPU time over the interval. ``first_connects`` counts clients
    whose first handshake completed in the interval, the last of them at
    ``last_first_connect_s`` (seconds from the start of the run); the
    worker's first connection attempt was at ``first_attempt_s`` (None
    before it), and its slowest client took ``max_connect_s`` from its first
    attempt to its first handshake (retries included).
    """

    worker: int
    index: int
    t_end: float
    connected: int
    counts: StreamCounts
    frames: int = 0
    payload_bytes: int = 0
    closes: Counter[str] = field(default_factory=Counter)
    slow_closes: Counter[str] = field(default_factory=Counter)
    connect_errors: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0
    connect_failures: int = 0
    cpu_s: float = 0.0
    quotes_latency: bytes = b""
    portfolio_latency: bytes = b""
    first_connects: int = 0
    last_first_connect_s: float = 0.0
    first_attempt_s: float | None = None
    max_connect_s: float = 0.0


@dataclass(slots=True)
class Totals:
    """The sum of samples (of one interval, or of the whole run)."""

    counts: StreamCounts = field(default_factory=StreamCounts)
    frames: int = 0
    payload_bytes: int = 0
    closes: Counter[str] = field(default_factory=Counter)
    slow_closes: Counter[str] = field(default_factory=Counter)
    connect_errors: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0
    connect_failures: int = 0
    quotes_latency: Histogram = field(default_factory=Histogram)
    portfolio_latency: Histogram = field(default_factory=Histogram)
    first_connects: int = 0
    last_first_connect_s: float = 0.0
    first_attempt_s: float | None = None
    max_connect_s: float = 0.0

    def add(self, sample: Sample) -> None:
        """Add one sample."""
        self.counts.add(sample.counts)
        self.frames += sample.frames
        self.payload_bytes += sample.payload_bytes
        self.closes.update(sample.closes)
        self.slow_closes.update(sample.slow_closes)
        self.connect_errors.update(sample.connect_errors)
        self.reconnects += sample.reconnects
        self.connect_failures += sample.connect_failures
        self.first_connects += sample.first_connects
        self.last_first_connect_s = max(self.last_first_connect_s, sample.last_first_connect_s)
        self.max_connect_s = max(self.max_connect_s, sample.max_connect_s)
        if sample.first_attempt_s is not None and (
            self.first_attempt_s is None or sample.first_attempt_s < self.first_attempt_s
        ):
            self.first_attempt_s = sample.first_attempt_s
        self.quotes_latency.add_encoded(sample.quotes_latency)
        self.portfolio_latency.add_encoded(sample.portfolio_latency)
