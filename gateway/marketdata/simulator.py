"""The simulator source: the market model paced in real time.

The model runs in fixed steps (``simulator.step_ms``); the source runs as many
steps as wall time has advanced and yields their ticks as one batch. When the
loop falls more than ``max_catchup_steps`` behind, the excess time is skipped
(and counted), so a stalled process does not replay a burst of old ticks.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Sequence

from gateway.clock import Clock
from gateway.marketdata.source import Rejection, SourceBatch
from gateway.metrics import Metrics
from gateway.settings import SimulatorSettings
from pricing.simulator import MarketModel, Regime

__all__ = ["SimulatorSource"]

logger = logging.getLogger(__name__)


class SimulatorSource:
    """Paces a ``MarketModel`` and yields its ticks."""

    name = "simulator"
    is_up = True

    def __init__(
        self, model: MarketModel, settings: SimulatorSettings, *, clock: Clock, metrics: Metrics
    ) -> None:
        self.model = model
        self._settings = settings
        self._clock = clock
        self._counters = metrics.counters

    async def start(self) -> None:
        """Nothing to connect to."""

    async def stop(self) -> None:
        """Nothing to release."""

    def spike(self, *, rate_multiplier: float, vol_multiplier: float, duration_s: float) -> int:
        """Switch to a volatility spike for ``duration_s``; return its length in steps."""
        if not duration_s > 0:
            raise ValueError(f"duration_s must be positive, was {duration_s}")
        regime = Regime("spike", rate_multiplier=rate_multiplier, vol_multiplier=vol_multiplier)
        steps = max(1, math.ceil(duration_s * 1000 / self._settings.step_ms))
        self.model.set_regime(regime, steps=steps)
        logger.info(
            "volatility spike: rate x%g, vol x%g for %g s",
            rate_multiplier,
            vol_multiplier,
            duration_s,
            extra={"event": "feed.spike_started"},
        )
        return steps

    async def batches(self) -> AsyncIterator[SourceBatch]:
        """Yield the ticks of every step that wall time has reached."""
        loop = asyncio.get_running_loop()
        step_s = self._settings.step_ms / 1000
        max_catchup = self._settings.max_catchup_steps
        origin = loop.time()
        done = 0
        while True:
            due = int((loop.time() - origin) / step_s) - done
            if due <= 0:
                await asyncio.sleep(origin + (done + 1) * step_s - loop.time())
                continue
            if due > max_catchup:
                self._counters.simulator_skipped_steps += due - max_catchup
                done += due - max_catchup
                due = max_catchup
            now_ns = self._clock.now_ns()
            ticks = self.model.advance(now_ns, due)
            done += due
            if len(ticks):
                yield SourceBatch(ticks)

    async def acknowledge(self, batch: SourceBatch, rejected: Sequence[Rejection]) -> None:
        """The model only emits valid ticks; a rejection here is a bug worth a log line."""
        if rejected:
            logger.error(
                "simulator emitted %d invalid ticks: %s",
                len(rejected),
                rejected[:5],
                extra={"event": "feed.invalid_simulated_ticks"},
            )
