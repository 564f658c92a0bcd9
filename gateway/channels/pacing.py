"""Revaluing the portfolio on ticks, paced to a share of the event loop.

Tick batches (and staleness flips) only mark the instruments they changed;
the engine revalues every marked instrument in a later loop step, and the
portfolio channel pushes the accounts whose values changed. Revaluation
takes at most ``TICKGATE_PORTFOLIO_MAX_LOOP_SHARE`` of the loop; the rule
and how to tune it are in docs/operations.md, "Revaluation and the event
loop". Values are absolute, so revaluing the batches of the meantime
together loses nothing: under a tick storm the portfolio refresh rate drops
instead of the quote latency growing.

While no account is watched (and when there are no accounts), ticks only
mark instruments: the pacer revalues them when something reads the values
(``catch_up``, through ``PortfolioChannel.bring_current``): a subscribe,
the account endpoint, a fill or a payment, each risk sample.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from gateway.channels.portfolio import PortfolioChannel
from gateway.clock import Clock
from gateway.metrics import Metrics
from portfolio.engine import PortfolioEngine
from pricing.types import I64Array1D

__all__ = ["RevaluationPacer"]

logger = logging.getLogger(__name__)


class RevaluationPacer:
    """The portfolio's ``BookListener``: marks changed instruments and revalues them later."""

    def __init__(
        self,
        engine: PortfolioEngine,
        channel: PortfolioChannel,
        *,
        max_loop_share: float,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self.engine = engine
        self._channel = channel
        self._clock = clock
        self._pause_factor = (1.0 - max_loop_share) / max_loop_share
        self._pending = np.zeros(engine.terms.multiplier.shape[0], dtype=np.bool_)
        self._scheduled: asyncio.TimerHandle | None = None
        self._not_before = 0.0
        self._is_behind = False  # marked while nobody watched, not yet revalued
        channel.set_bring_current(self.catch_up)
        self.revaluation_seconds = metrics.histogram(
            "portfolio_revaluation_seconds",
            "Time of one revaluation on ticks (the batches since the last one).",
            (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
        )

    def on_book_changed(self, changed_ix: I64Array1D, now_ns: int) -> None:
        """Mark what the batch touched; it is revalued in a later loop step, if watched."""
        self._pending[changed_ix] = True
        if not self._channel.is_watched:
            self._is_behind = True
            return
        if self._scheduled is None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, self._not_before - loop.time())
            self._scheduled = loop.call_later(delay, self.revalue_pending)

    def catch_up(self) -> None:
        """Revalue now what was marked while nobody watched; a no-op otherwise."""
        if self._is_behind:
            self._is_behind = False
            if self._scheduled is not None:
                self._scheduled.cancel()
            self.revalue_pending()

    def revalue_pending(self) -> None:
        """Revalue every instrument marked since the last time and push the accounts."""
        self._scheduled = None
        changed = np.flatnonzero(self._pending).astype(np.int64)
        if changed.size == 0:
            return
        self._pending[changed] = False
        started = time.perf_counter()
        now_ns = self._clock.now_ns()
        try:
            self._channel.publish(self.engine.on_prices_changed(changed, now_ns), now_ns)
        except Exception:
            # A loop callback: nothing above would log it. The next
            # revaluation (or the day roll's) recomputes these instruments.
            logger.exception(
                "portfolio revaluation of %d instruments failed",
                changed.size,
                extra={"event": "portfolio.revaluation_failed"},
            )
        took = time.perf_counter() - started
        self.revaluation_seconds.observe(took)
        self._not_before = asyncio.get_running_loop().time() + took * self._pause_factor

    def close(self) -> None:
        """Drop a scheduled revaluation (at shutdown)."""
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
