"""The event loop's lag: how late it runs a timer, the stall every task and client sees."""

from __future__ import annotations

import asyncio

from gateway.metrics import Metrics

__all__ = ["LoopMonitor"]


class LoopMonitor:
    """Measures how late the event loop wakes a sleeper: the stall everyone else sees."""

    def __init__(self, metrics: Metrics, *, interval_s: float = 0.05) -> None:
        self._interval_s = interval_s
        self.max_lag_s = 0.0
        self.lag_seconds = metrics.histogram(
            "event_loop_lag_seconds",
            "How late the event loop ran a timer (sampled every 50 ms).",
            (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
        )
        metrics.gauge(
            "event_loop_lag_max_seconds", "Largest loop lag seen.", lambda: self.max_lag_s
        )

    async def run(self) -> None:
        """Sample the loop lag until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self._interval_s
            await asyncio.sleep(self._interval_s)
            lag = max(0.0, loop.time() - expected)
            self.max_lag_s = max(self.max_lag_s, lag)
            self.lag_seconds.observe(lag)
