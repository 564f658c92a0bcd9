"""The market-data pipeline: source -> decode/validate -> batch -> apply -> fan-out.

Sources decode and batch (each in the way its transport allows); the
pipeline applies each batch to the PriceBook and hands the changed
instruments to its listeners (the quotes fan-out, and anything else that
reacts to prices) in the same loop step. Listeners are synchronous: the
fan-out never awaits a client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from gateway.clock import Clock
from gateway.marketdata.source import MarketDataSource, Rejection
from gateway.metrics import Metrics
from gateway.settings import FeedSettings
from pricing.pricebook import ApplyResult, PriceBook, RejectReason, TickBatch
from pricing.types import I64Array1D

__all__ = ["BookListener", "MarketDataPipeline"]

logger = logging.getLogger(__name__)


class BookListener(Protocol):
    """Something that reacts to price changes, synchronously."""

    def on_book_changed(self, changed_ix: I64Array1D, now_ns: int) -> None:
        """React to the instruments in ``changed_ix`` (sorted, unique) having changed."""
        ...


class MarketDataPipeline:
    """Drive a source into the PriceBook and its listeners."""

    def __init__(
        self,
        source: MarketDataSource,
        book: PriceBook,
        listeners: Sequence[BookListener],
        *,
        settings: FeedSettings,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self.source = source
        self.book = book
        self._listeners = listeners
        self._settings = settings
        self._clock = clock
        self._metrics = metrics
        metrics.gauge(
            "instruments_stale", "Instruments flagged stale.", lambda: float(book.is_stale.sum())
        )
        metrics.gauge("feed_up", "1 when the market-data source is up.", lambda: source.is_up)

    def add_listener(self, listener: BookListener) -> None:
        """Notify ``listener`` of changes too; call before ``run`` starts."""
        self._listeners = [*self._listeners, listener]

    async def run(self) -> None:
        """Apply batches until cancelled."""
        async for batch in self.source.batches():
            result = self.apply(batch.ticks)
            rejected = [
                Rejection(int(row), RejectReason(int(reason)))
                for row, reason in zip(result.rejected_rows, result.reasons, strict=True)
            ]
            await self.source.acknowledge(batch, rejected)
            # A source that is behind has its next batch ready at once; yield
            # so reads, handshakes and timers run between batches.
            await asyncio.sleep(0)

    def apply(self, ticks: TickBatch) -> ApplyResult:
        """Apply one batch and notify the listeners; returns the book's result."""
        started = time.perf_counter()
        result = self.book.apply(ticks)
        counters = self._metrics.counters
        counters.tick_batches += 1
        counters.ticks_received += len(ticks)
        counters.ticks_accepted += len(ticks) - len(result.rejected_rows)
        for reason in result.reasons.tolist():
            counters.ticks_rejected[RejectReason(reason).label] += 1
        self._notify(result.changed_ix)
        self._observe_tick_to_push(ticks, result)
        self._metrics.batch_seconds.observe(time.perf_counter() - started)
        return result

    def _observe_tick_to_push(self, ticks: TickBatch, result: ApplyResult) -> None:
        # Each accepted tick, from its ts_recv until its quote went to the
        # subscribers' sockets (the listeners write during _notify). A clock
        # stepped backwards would give negative ages: they count as 0.
        ts_recv = ticks.ts_recv
        if result.rejected_rows.size:
            ts_recv = np.delete(ts_recv, result.rejected_rows)
        ages_s = (self._clock.now_ns() - ts_recv) / 1e9
        self._metrics.tick_to_push_seconds.observe_many(np.maximum(ages_s, 0.0))

    async def run_staleness(self) -> None:
        """Every ``staleness_check_ms``, publish instruments whose staleness flipped."""
        interval_s = self._settings.staleness_check_ms / 1000
        while True:
            await asyncio.sleep(interval_s)
            now_ns = self._clock.now_ns()
            flipped = self.book.refresh_staleness(now_ns, is_feed_up=self.source.is_up)
            self._notify(flipped)

    def _notify(self, changed_ix: I64Array1D) -> None:
        if changed_ix.size == 0:
            return
        now_ns = self._clock.now_ns()
        for listener in self._listeners:
            try:
                listener.on_book_changed(changed_ix, now_ns)
            except Exception:
                logger.exception(
                    "listener %r failed on a tick batch",
                    listener,
                    extra={"event": "feed.listener_failed"},
                )
