"""Metrics: plain counters on the hot path, exposed in Prometheus format.

The hot path increments plain ``int`` attributes (no locks, no label lookups);
a custom collector turns them into Prometheus families when ``/metrics`` is
scraped. Gauges are read from callbacks at scrape time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["Counters", "Metrics"]


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
    slow_consumer_closes: int = 0
    ledger_events: int = 0
    ledger_events_duplicate: int = 0
    orders_requests: Counter[str] = field(default_factory=Counter)
    orders_idempotent_replays: Counter[str] = field(default_factory=Counter)
    orders_idempotency_conflicts: Counter[str] = field(default_factory=Counter)
    orders_reconciliations: Counter[str] = field(default_factory=Counter)
    orders_submit_failures: int = 0
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
    "slow_consumer_closes": "Connections closed as slow consumers.",
    "ledger_events": "Ledger events applied to the accounts and the orders channel.",
    "ledger_events_duplicate": "Ledger events dropped as already seen.",
    "orders_requests": "Order API answers, by HTTP status.",
    "orders_idempotent_replays": "Order API requests answered from an idempotency record.",
    "orders_idempotency_conflicts": "Idempotency keys refused as reused or in progress, by code.",
    "orders_reconciliations": "Expired idempotency leases reconciled with the ledger, by outcome.",
    "orders_submit_failures": "Commands the command bus could not make durable (503 answers).",
    "connections_closed": "Connections the listener closed before serving them, by reason.",
}
_LABEL = {
    "ticks_rejected": "reason",
    "records_refused": "reason",
    "dead_letters": "reason",
    "ws_errors": "code",
    "ws_closes": "code",
    "orders_requests": "status",
    "orders_idempotent_replays": "operation",
    "orders_idempotency_conflicts": "code",
    "orders_reconciliations": "outcome",
    "connections_closed": "reason",
}


class Metrics:
    """The process's counters, gauges and histograms, and their exposition."""

    def __init__(self) -> None:
        self.counters = Counters()
        self.registry = CollectorRegistry(auto_describe=False)
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}
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
        for name, (help_text, read) in self._metrics._gauges.items():
            yield GaugeMetricFamily(f"tickgate_{name}", help_text, value=read())
