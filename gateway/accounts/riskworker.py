"""The risk cadence: sample returns, reprice options for time, run risk in a thread.

Every ``risk.interval_ms`` on the event loop: feed the intraday model one
sample of risk-series levels, reprice every option for the time that passed
(and push the accounts that changed), and copy the arrays a run reads. The
run itself (exposures, VaR, volatilities and stress for every account) goes
to a worker thread, so the loop only pays for the sample, the option
repricing and the copies; the loop-lag monitor (``gateway.loopmonitor``)
measures what is left of the stall. Samples keep a fixed period whatever a
run takes; runs never overlap: a run starts at the first sample after the
previous one ended.

At each day roll (``roll_day``) the day's close-to-close return enters the
daily model, scaled to one trading day: ``trading_days`` counts the trading
days the market has run (the simulator's model time over 6.5 hours); without
it every roll spans one. See docs/risk.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import numpy as np

from gateway.channels.portfolio import PortfolioChannel
from gateway.clock import Clock
from gateway.metrics import Metrics
from gateway.settings import RiskSettings
from portfolio.risk import FactorModel
from portfolio.riskmodel import RiskModel
from portfolio.riskrun import (
    EngineCopy,
    RiskReport,
    RiskUniverse,
    capture,
    run_risk,
    take_snapshot,
)
from portfolio.stress import DEFAULT_SCENARIOS, StressScenario, parse_scenarios
from pricing.types import F64Array2D, I64Array1D

__all__ = ["RiskWorker"]

logger = logging.getLogger(__name__)


class RiskWorker:
    """Runs risk for every account on a cadence, and for one account on demand.

    ``history`` (shape (T + 1, M), daily closes of every instrument, oldest
    first) seeds the daily model; ``trading_days`` returns the trading days
    the market has run so far, so that a roll knows how many its return spans.
    """

    def __init__(
        self,
        channel: PortfolioChannel,
        universe: RiskUniverse,
        settings: RiskSettings,
        *,
        clock: Clock,
        metrics: Metrics,
        history: F64Array2D | None = None,
        trading_days: Callable[[], float] | None = None,
    ) -> None:
        self._channel = channel
        self._engine = channel.engine
        self._universe = universe
        self._settings = settings
        self._clock = clock
        self._metrics = metrics
        self.model = RiskModel(
            universe.group_of,
            lam=settings.ewma_lambda,
            window=settings.window,
            min_days=settings.min_days,
            intraday_half_life=settings.intraday_half_life_s * 1000 / settings.interval_ms,
        )
        fx = self._engine.fx
        if history is not None:
            self.model.seed(universe.close_levels(history, fx))
        # The next roll measures from the previous close, as day P&L does.
        self.model.start(universe.close_levels(self._engine.prices.prev_close, fx)[0])
        self._trading_days = trading_days
        self._days_at_roll = trading_days() if trading_days is not None else 0.0
        self.scenarios: tuple[StressScenario, ...] = (
            parse_scenarios(settings.scenarios) if settings.scenarios else DEFAULT_SCENARIOS
        )
        self._lock = asyncio.Lock()
        self.run_seconds = metrics.histogram(
            "risk_run_seconds",
            "Wall time of one periodic risk run over every account (mostly in the worker).",
            (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )

    async def run(self) -> None:
        """Sample, reprice options and start a risk run every interval, until cancelled.

        Samples are taken on a fixed period, whatever a run takes; a run starts
        at a sample when the previous one is done (runs never overlap). A
        sample the loop takes late has its returns scaled to one interval.
        """
        loop = asyncio.get_running_loop()
        interval_s = self._settings.interval_ms / 1000
        due = loop.time() + interval_s
        last_sample = None
        running: asyncio.Task[None] | None = None
        try:
            while True:
                await asyncio.sleep(max(0.0, due - loop.time()))
                now = loop.time()
                due += interval_s
                if due <= now:  # after a stall: the next sample a full interval on
                    due = now + interval_s
                intervals = 1.0 if last_sample is None else (now - last_sample) / interval_s
                self._channel.bring_current()
                self.model.sample(self._levels(), intervals=max(intervals, 1e-3))
                last_sample = now
                now_ns = self._clock.now_ns()
                self._channel.publish(self._engine.revalue_options(now_ns), now_ns)
                has_accounts = self._engine.book.size_n > 0
                if has_accounts and (running is None or running.done()):
                    running = asyncio.create_task(self._run_all(now_ns))
        finally:
            if running is not None:
                running.cancel()

    def roll_day(self) -> None:
        """Fold the day's close-to-close return into the daily model (after the day roll)."""
        if self._trading_days is None:
            days = 1.0
        else:
            now_days = self._trading_days()
            days, self._days_at_roll = now_days - self._days_at_roll, now_days
        if self.model.roll(self._levels(), days=days):
            logger.info(
                "risk: the day's return (%.2f trading days) entered the daily model, %d days",
                days,
                self.model.daily.samples,
                extra={"event": "risk.day_return_added"},
            )
        else:
            logger.info(
                "risk: no price moved since the last roll; the daily model is unchanged",
                extra={"event": "risk.day_unchanged"},
            )

    async def _run_all(self, now_ns: int) -> None:
        every = np.arange(self._engine.book.size_n, dtype=np.int64)
        started = time.perf_counter()
        try:
            report = await self.run_once(every, now_ns)
        except Exception:
            # The next sample starts a new run; the last report stays published.
            logger.exception("risk run failed", extra={"event": "risk.run_failed"})
            return
        self.run_seconds.observe(time.perf_counter() - started)
        self._channel.publish_risk(report)

    async def run_once(self, accounts: I64Array1D, now_ns: int) -> RiskReport:
        """Risk of ``accounts`` (sorted rows) now; only array copies happen on the loop."""
        async with self._lock:
            self._channel.bring_current()
            state = capture(self._engine, accounts, now_ns)
            # The daily model is replaced at a roll, never changed: no copy.
            daily, intraday = self.model.daily, self.model.intraday.copy()
            return await asyncio.to_thread(self._compute, state, daily, intraday)

    def _compute(self, state: EngineCopy, daily: FactorModel, intraday: FactorModel) -> RiskReport:
        # In the worker thread: touches only the copies and immutable terms.
        s = self._settings
        terms = self._engine.terms
        return run_risk(
            take_snapshot(state, terms, self._universe),
            daily,
            intraday,
            terms,
            self.scenarios,
            confidences=s.confidence_levels(),
            horizon_days=s.horizon_days,
            intraday_interval_s=s.interval_ms / 1000,
            universe=self._universe,
        )

    def _levels(self) -> np.ndarray:
        usd_per = self._engine.usd_per
        assert usd_per is not None  # set by the engine's first revaluation
        return self._universe.levels(self._engine.marks.mark, usd_per)
