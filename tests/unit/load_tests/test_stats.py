"""Latency histograms merged across worker processes, and the fleet's backoff."""

from __future__ import annotations

import random

import numpy as np
import pytest

from load_tests.fleet import backoff_delay_s
from load_tests.stats import Histogram, latency_of


def record_all(values_us: np.ndarray) -> Histogram:
    histogram = Histogram()
    for value in values_us.tolist():
        histogram.record_ns(value * 1000)
    return histogram


def test_merging_encoded_worker_histograms_equals_one_histogram_of_everything() -> None:
    rng = np.random.default_rng(3)
    parts = [rng.integers(50, 200_000, size) for size in (1_000, 5_000, 300)]
    merged = Histogram()

    for part in parts:
        merged.add_encoded(record_all(part).encode())  # as a worker would send it

    whole = record_all(np.concatenate(parts))
    assert latency_of(merged) == latency_of(whole)
    assert merged.count == 6_300


def test_percentiles_are_within_the_histograms_precision() -> None:
    values = np.arange(1, 100_001)  # 1 us .. 100 ms, uniform
    latency = latency_of(record_all(values))

    # Three significant digits: each percentile within 0.1% of the exact one.
    assert latency.p50 == pytest.approx(50.0, rel=1e-3)
    assert latency.p99 == pytest.approx(99.0, rel=1e-3)
    assert latency.p999 == pytest.approx(99.9, rel=1e-3)
    assert latency.count == 100_000


def test_an_empty_histogram_has_no_percentiles() -> None:
    latency = latency_of(Histogram())

    assert (latency.count, latency.p50, latency.p99) == (0, None, None)


def test_adding_an_empty_encoding_changes_nothing() -> None:
    histogram = record_all(np.array([10, 20]))

    histogram.add_encoded(Histogram().encode())
    histogram.add_encoded(b"")

    assert histogram.count == 2


def test_latencies_outside_the_range_are_clamped_not_lost() -> None:
    histogram = Histogram()

    histogram.record_ns(-5)  # a clock skew between hosts
    histogram.record_ns(10**15)

    assert histogram.count == 2


@pytest.mark.parametrize("attempt", [0, 1, 2, 5, 40])
def test_backoff_is_jittered_below_an_exponential_ceiling(attempt: int) -> None:
    rng = random.Random(1)

    delays = [backoff_delay_s(attempt, 0.25, 10.0, rng) for _ in range(500)]

    ceiling = min(10.0, 0.25 * 2**attempt)
    assert max(delays) <= ceiling
    assert min(delays) >= 0.0
    assert len(set(delays)) > 400  # full jitter: spread, not one value
