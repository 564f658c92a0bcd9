"""Metrics: plain counters on the hot path, exposed in Prometheus format.

The hot path increments plain ``int`` attributes (no locks, no label lookups);
a custom collector turns them into Prometheus families when ``/metrics`` is
scraped. Gauges, and counters that another package keeps, are read from
callbacks at scrape time. A ``BulkHistogram`` takes a whole array of
observations in one numpy pass (one per tick batch, not one call per tick).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import CollectorRegistry, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from pricing.types import F64Array1D

__all__ = ["BulkHistogram", "Counters", "Metrics"]


@dataclass(slots=True)
class Counters:
    """Monotonic counts since start; each field becomes ``tickgate_<name>_total``."""

    ticks_received: int = 0
    ticks_accepted: int = 0
    tick_batches: int = 0
    ticks_rejected: Counter[str] = field(default_factory=Counter)
    records_refused: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    feed_connects: int = 0
    feed_gaps: int = 0
    simulator_skipped_steps: int = 0
    ws_connections: int = 0
    ws_frames_sent: int = 0
    ws_bytes_sent: int = 0
    ws_updates_conflated: int = 0
    ws_errors: Counter[str] = field(default_factory=Counter)
    ws_closes: Counter[str] = field(default_factory=Counter)
    ws_peer_closes: Counter[str] = field(default_factory=Counter)
    slow_consumer_closes: int = 0
    ledger_events: int = 0
    ledger_events_duplicate: int = 0
    orders_requests: Counter[str] = field(default_factory=Counter)
    orders_idempotent_replays: Counter[str] = field(default_factory=Counter)
    orders_idempotency_conflicts: Counter[str] = field(default_factory=Counter)
    orders_reconciliations: Counter[str] = field(default_factory=Counter)
    orders_submit_failures: int = 0
    order_updates: Counter[str] = field(default_factory=Counter)
    ledger_batches: int = 0
    ledger_transactions: int = 0
    ledger_postings: int = 0
    connections_closed: Counter[str] = field(default_factory=Counter)


_HELP = {
    "ticks_received": "Ticks read from the market-data source.",
    "ticks_accepted": "Ticks applied to the PriceBook.",
    "tick_batches": "Tick batches applied.",
    "ticks_rejected": "Ticks refused by the PriceBook, by reason.",
    "records_refused": "Source records that could not be decoded, by reason.",
    "dead_letters": "Records produced to the Kafka dead-letter topic, by reason.",
    "feed_connects": "Times the market-data source connected, the first time included.",
    "feed_gaps": "Sequence gaps seen on the upstream feed.",
    "simulator_skipped_steps": "Simulator steps skipped because the loop fell behind.",
    "ws_connections": "WebSocket connections accepted.",
    "ws_frames_sent": "WebSocket data frames sent.",
    "ws_bytes_sent": "Payload bytes of WebSocket data frames sent.",
    "ws_updates_conflated": "Updates replaced by a newer one before they were sent.",
    "ws_errors": "Protocol error messages sent, by code.",
    "ws_closes": "Connections closed by the server, by close code.",
    "ws_peer_closes": "Connections closed by the client, by close code (1006: no close frame).",
    "slow_consumer_closes": "Connections closed as slow consumers.",
    "ledger_events": "Ledger events applied to the accounts and the orders channel.",
    "ledger_events_duplicate": "Ledger events dropped as already seen.",
    "orders_requests": "Order API answers, by HTTP status.",
    "orders_idempotent_replays": "Order API requests answered from an idempotency record.",
    "orders_idempotency_conflicts": "Idempotency keys refused as reused or in progress, by code.",
    "orders_reconciliations": "Expired idempotency leases reconciled with the ledger, by outcome.",
    "orders_submit_failures": "Commands the command bus could not make durable (503 answers).",
    "order_updates": "Order events from the ledger, by the status the order reached.",
    "ledger_batches": "Ledger batches committed by the embedded ledger service.",
    "ledger_transactions": "Balanced ledger transactions posted by the embedded ledger service.",
    "ledger_postings": "Ledger postings (journal entries) written by the embedded ledger service.",
    "connections_closed": "Connections the listener closed before serving them, by reason.",
}
_LABEL = {
    "ticks_rejected": "reason",
    "records_refused": "reason",
    "dead_letters": "reason",
    "ws_errors": "code",
    "ws_closes": "code",
    "ws_peer_closes": "code",
    "orders_requests": "status",
    "orders_idempotent_replays": "operation",
    "orders_idempotency_conflicts": "code",
    "orders_reconciliations": "outcome",
    "order_updates": "status",
    "connections_closed": "reason",
}


class Metrics:
    """The process's counters, gauges and histograms, and their exposition."""

    def __init__(self) -> None:
        self.counters = Counters()
        self.registry = CollectorRegistry(auto_describe=False)
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self._labelled_gauges: dict[str, _LabelledGauge] = {}
        self._read_counters: dict[str, tuple[str, Callable[[], float]]] = {}
        self._bulk_histograms: list[BulkHistogram] = []
        self.registry.register(_CountersCollector(self))
        # The standard process_* series (resident memory, CPU, open files),
        # which load tests and dashboards read under their usual names.
        ProcessCollector(registry=self.registry)
        self.batch_seconds = Histogram(
            "tickgate_tick_batch_seconds",
            "Time to apply one tick batch and queue its fan-out.",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
            registry=self.registry,
        )
        self.tick_to_push_seconds = self.bulk_histogram(
            "tick_to_push_seconds",
            "Time from receiving a tick to writing its quote to the subscribers' sockets.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )

    def bulk_histogram(self, name: str, help_text: str, buckets: Sequence[float]) -> BulkHistogram:
        """A histogram ``tickgate_<name>`` observed an array at a time."""
        histogram = BulkHistogram(f"tickgate_{name}", help_text, buckets)
        self._bulk_histograms.append(histogram)
        return histogram

    def labelled_gauge(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str],
        read: Callable[[], Mapping[tuple[str, ...], float]],
    ) -> None:
        """Expose ``tickgate_<name>`` with one series per key of ``read()``'s mapping."""
        self._labelled_gauges[name] = _LabelledGauge(help_text, tuple(labels), read)

    def counter(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """Expose ``tickgate_<name>_total`` read from ``read()`` (a count kept elsewhere)."""
        self._read_counters[name] = (help_text, read)

    def histogram(self, name: str, help_text: str, buckets: tuple[float, ...]) -> Histogram:
        """A histogram ``tickgate_<name>`` with the given bucket bounds."""
        return Histogram(f"tickgate_{name}", help_text, buckets=buckets, registry=self.registry)

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """Expose ``tickgate_<name>`` read from ``read()`` at scrape time."""
        self._gauges[name] = (help_text, read)

    def exposition(self) -> bytes:
        """Render every metric in the Prometheus text format."""
        return generate_latest(self.registry)


class _CountersCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        counters = self._metrics.counters
        for name, help_text in _HELP.items():
            value = getattr(counters, name)
            label = _LABEL.get(name)
            if label is None:
                yield CounterMetricFamily(f"tickgate_{name}", help_text, value=value)
                continue
            family = CounterMetricFamily(f"tickgate_{name}", help_text, labels=[label])
            for label_value, count in sorted(value.items()):
                family.add_metric([str(label_value)], count)
            yield family
        for name, (help_text, read) in self._metrics._read_counters.items():
            yield CounterMetricFamily(f"tickgate_{name}", help_text, value=read())
        for name, (help_text, read) in self._metrics._gauges.items():
            yield GaugeMetricFamily(f"tickgate_{name}", help_text, value=read())
        for name, gauge in self._metrics._labelled_gauges.items():
            series = GaugeMetricFamily(f"tickgate_{name}", gauge.help_text, labels=gauge.labels)
            for label_values, value in sorted(gauge.read().items()):
                series.add_metric(list(label_values), value)
            yield series
        for histogram in self._metrics._bulk_histograms:
            yield histogram.family()


@dataclass(frozen=True, slots=True)
class _LabelledGauge:
    help_text: str
    labels: tuple[str, ...]
    read: Callable[[], Mapping[tuple[str, ...], float]]


class BulkHistogram:
    """A Prometheus histogram fed a whole array of observations at once.

    ``observe_many`` costs one ``searchsorted`` and one ``bincount`` per
    call, whatever the number of values, so a tick batch is observed tick by
    tick without a Python loop. Buckets count values ``<= le``, as
    Prometheus defines them.
    """

    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.help_text = help_text
        self._bounds = np.asarray(buckets, dtype=np.float64)
        if self._bounds.ndim != 1 or np.any(np.diff(self._bounds) <= 0):
            raise ValueError(f"buckets must increase, were {list(buckets)}")
        # counts[i] holds values in (bounds[i-1], bounds[i]]; the last, those above every bound.
        self._counts = np.zeros(self._bounds.size + 1, dtype=np.int64)
        self._sum = 0.0

    @property
    def count(self) -> int:
        """Observations so far."""
        return int(self._counts.sum())

    def observe_many(self, values: F64Array1D) -> None:
        """Count each of ``values`` (shape (N,), float64, seconds; NaN not allowed)."""
        if values.size == 0:
            return
        ix = np.searchsorted(self._bounds, values, side="left")
        self._counts += np.bincount(ix, minlength=self._counts.size)
        self._sum += float(values.sum())

    def family(self) -> HistogramMetricFamily:
        """The histogram as the Prometheus collector exposes it."""
        cumulative = np.cumsum(self._counts).tolist()
        # repr of a float is the le label prometheus_client writes ("0.005", "1.0").
        bounds = self._bounds.tolist()
        buckets = [(repr(b), float(c)) for b, c in zip(bounds, cumulative, strict=False)]
        buckets.append(("+Inf", float(cumulative[-1])))
        return HistogramMetricFamily(
            self.name, self.help_text, buckets=buckets, sum_value=self._sum
        )
