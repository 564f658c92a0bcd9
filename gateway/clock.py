"""The clock port: components take a ``Clock``; tests pass a manual one."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """Wall-clock time as UNIX nanoseconds."""

    def now_ns(self) -> int:
        """Return the current time in UNIX nanoseconds."""
        ...


class SystemClock:
    """The real clock."""

    def now_ns(self) -> int:
        """Return ``time.time_ns()``."""
        return time.time_ns()
