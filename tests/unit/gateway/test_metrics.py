"""The metrics registry: bulk histograms, labelled gauges, counters kept elsewhere, and the
tick-to-push histogram the pipeline feeds."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.marketdata.pipeline import MarketDataPipeline
from gateway.metrics import BulkHistogram, Metrics
from gateway.refdata import load_master
from gateway.settings import Settings
from pricing.pricebook import PriceBook, TickBatch
from tests.builders import ManualClock
from tests.harness import ScriptedSource

MS = 1_000_000


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_bulk_histogram_counts_each_value_in_its_bucket_le_inclusive():
    histogram = BulkHistogram("tickgate_x_seconds", "x", (0.001, 0.005))

    histogram.observe_many(np.array([0.0005, 0.001, 0.003, 10.0]))

    family = histogram.family()
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
    # By hand: <= 1 ms: 0.5 ms and 1 ms; <= 5 ms: also 3 ms; +Inf: also 10 s.
    assert buckets == {"0.001": 2.0, "0.005": 3.0, "+Inf": 4.0}
    total = next(s.value for s in family.samples if s.name == "tickgate_x_seconds_sum")
    assert total == pytest.approx(10.0045)
    assert histogram.count == 4


def test_bulk_histogram_refuses_buckets_that_do_not_increase():
    with pytest.raises(ValueError, match="buckets must increase"):
        BulkHistogram("tickgate_x_seconds", "x", (0.1, 0.1))


def test_labelled_gauges_and_counters_kept_elsewhere_are_exposed():
    metrics = Metrics()
    lag: dict[tuple[str, ...], float] = {("md.ticks", "0"): 5.0, ("md.ticks", "1"): 0.0}
    metrics.labelled_gauge("kafka_consumer_lag", "lag", ("topic", "partition"), lambda: lag)
    metrics.counter("things", "things done", lambda: 3)

    got = samples(metrics)

    assert got[("tickgate_kafka_consumer_lag", (("partition", "0"), ("topic", "md.ticks")))] == 5.0
    assert got[("tickgate_kafka_consumer_lag", (("partition", "1"), ("topic", "md.ticks")))] == 0.0
    assert got[("tickgate_things_total", ())] == 3.0


def test_the_registry_has_the_tick_to_push_histogram_before_any_tick():
    got = samples(Metrics())

    assert got[("tickgate_tick_to_push_seconds_count", ())] == 0.0


def test_pipeline_observes_tick_to_push_for_each_accepted_tick():
    master = load_master()
    clock = ManualClock()
    metrics = Metrics()
    book = PriceBook(master.ref_price, stale_after_ns=10_000 * MS)
    pipeline = MarketDataPipeline(
        ScriptedSource(), book, [], settings=Settings().feed, clock=clock, metrics=metrics
    )
    now = clock.now_ns()
    ix = [master.symbol_index[s] for s in ("AAPL", "MSFT", "SAP")]
    # Two good ticks received 3 ms and 30 ms ago, and one the book refuses (crossed).
    batch = TickBatch.from_columns(
        instrument_ix=ix,
        bid=[100.0, 100.5, 101.0],
        ask=[100.1, 100.6, 99.0],
        last=[np.nan] * 3,
        size=[np.nan] * 3,
        ts_event=[now - 40 * MS] * 3,
        ts_recv=[now - 30 * MS, now - 3 * MS, now - 3 * MS],
    )

    pipeline.apply(batch)

    got = samples(metrics)
    le = "tickgate_tick_to_push_seconds_bucket"
    assert got[("tickgate_tick_to_push_seconds_count", ())] == 2.0
    assert got[(le, (("le", "0.005"),))] == 1.0
    assert got[(le, (("le", "0.05"),))] == 2.0
    assert got[("tickgate_tick_to_push_seconds_sum", ())] == pytest.approx(0.033)
