"""The trading day's roll, every day at ``TICKGATE_PORTFOLIO_DAY_ROLL_UTC``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from gateway.clock import Clock

__all__ = ["day_start_ns", "run_day_rolls", "seconds_until_utc"]

_DAY_S: Final = 86_400


def seconds_until_utc(minute_of_day: int, now_ns: int) -> float:
    """Seconds from ``now_ns`` to the next ``minute_of_day`` (UTC), in (0, 1 day]."""
    now_s = now_ns / 1e9
    wait = (minute_of_day * 60 - now_s) % _DAY_S
    return wait if wait > 0 else float(_DAY_S)


def day_start_ns(minute_of_day: int, now_ns: int) -> int:
    """The last roll at ``minute_of_day`` (UTC) at or before ``now_ns``: today's start, in ns."""
    since_s = (now_ns / 1e9 - minute_of_day * 60) % _DAY_S
    return now_ns - round(since_s * 1e9)


async def run_day_rolls(minute_of_day: int, roll: Callable[[int], None], clock: Clock) -> None:
    """Call ``roll(now_ns)`` every day at ``minute_of_day`` (UTC), until cancelled."""
    while True:
        await asyncio.sleep(seconds_until_utc(minute_of_day, clock.now_ns()))
        roll(clock.now_ns())
        await asyncio.sleep(60)  # past the minute, even if the timer fired early
