"""The risk cadence: sample returns, reprice options for time, run risk in a thread.

Every ``risk.interval_ms`` on the event loop: feed the EWMA model one sample
of risk-series levels, reprice every option for the time that passed (and
push the accounts that changed), and copy the arrays a run reads. The run
itself (exposures, VaR and stress for every account) goes to a worker
thread, so the loop only pays for the sample, the option repricing and the
copies; the loop-lag monitor (``gateway.loopmonitor``) measures what is
left of the stall. Samples keep a fixed period whatever a run takes; runs
never overlap: a run starts at the first sample after the previous one
ended.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from gateway.channels.portfolio import PortfolioChannel
from gateway.clock import Clock
from gateway.metrics import Metrics
from gateway.settings import RiskSettings
from portfolio.risk import TRADING_SECONDS_PER_DAY, FactorModel
from portfolio.riskrun import (
    EngineCopy,
    RiskReport,
    RiskUniverse,
    capture,
    run_risk,
    take_snapshot,
)
from portfolio.stress import DEFAULT_SCENARIOS, StressScenario, parse_scenarios
from pricing.types import I64Array1D

__all__ = ["RiskWorker"]

logger = logging.getLogger(__name__)


class RiskWorker:
    """Runs risk for every account on a cadence, and for one account on demand."""

    def __init__(
        self,
        channel: PortfolioChannel,
        universe: RiskUniverse,
        settings: RiskSettings,
        *,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._channel = channel
        self._engine = channel.engine
        self._universe = universe
        self._settings = settings
        self._clock = clock
        self._metrics = metrics
        self.model = FactorModel(
            universe.group_of,
            lam=settings.ewma_lambda,
            window=settings.window,
            min_samples=settings.min_samples,
        )
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
                engine = self._engine
                levels = self._universe.levels(engine.marks.mark, self._usd_per())
                intervals = 1.0 if last_sample is None else (now - last_sample) / interval_s
                self.model.observe(levels, intervals=max(intervals, 1e-3))
                last_sample = now
                now_ns = self._clock.now_ns()
                self._channel.publish(engine.revalue_options(now_ns), now_ns)
                if running is None or running.done():
                    running = asyncio.create_task(self._run_all(now_ns))
        finally:
            if running is not None:
                running.cancel()

    async def _run_all(self, now_ns: int) -> None:
        every = np.arange(self._engine.book.size_n, dtype=np.int64)
        started = time.perf_counter()
        try:
            report = await self.run_once(every, now_ns)
        except Exception:
            # The next sample starts a new run; the last report stays published.
            logger.exception("risk run failed")
            return
        self.run_seconds.observe(time.perf_counter() - started)
        self._channel.publish_risk(report)

    async def run_once(self, accounts: I64Array1D, now_ns: int) -> RiskReport:
        """Risk of ``accounts`` (sorted rows) now; only array copies happen on the loop."""
        async with self._lock:
            state = capture(self._engine, accounts, now_ns)
            model = self.model.copy()
            return await asyncio.to_thread(self._compute, state, model)

    def _compute(self, state: EngineCopy, model: FactorModel) -> RiskReport:
        # In the worker thread: touches only the copies and immutable terms.
        s = self._settings
        return run_risk(
            take_snapshot(state, self._engine.terms, self._universe),
            model,
            self._engine.terms,
            self.scenarios,
            confidences=s.confidence_levels(),
            horizon_s=s.horizon_days * TRADING_SECONDS_PER_DAY,
            sample_interval_s=s.interval_ms / 1000,
        )

    def _usd_per(self) -> np.ndarray:
        usd_per = self._engine.usd_per
        assert usd_per is not None  # set by the engine's first revaluation
        return usd_per
