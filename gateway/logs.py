"""Logging setup: one plain format, and throttling of repeated messages."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Final

__all__ = ["ThrottleFilter", "configure_logging"]

_LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers that can repeat one message many times a second during an outage
# or a flood of bad input; their repeats are throttled.
_THROTTLED: Final = (
    "aiokafka",
    "gateway.admission",
    "gateway.marketdata.simulator",
    "gateway.marketdata.kafka",
    "gateway.marketdata._deadletters",
    "gateway.marketdata.upstream",
    "gateway.ws.connection",
    "gateway.uvicornseam",
)


class ThrottleFilter(logging.Filter):
    """Let one record per (logger, message template) through per interval.

    Applies to loggers whose name starts with one of ``prefixes``. The first
    record after a quiet interval carries the count of what was suppressed.
    """

    def __init__(self, prefixes: Sequence[str], interval_s: float = 10.0) -> None:
        super().__init__()
        self._prefixes = tuple(prefixes)
        self._interval_s = interval_s
        self._last: dict[tuple[str, object], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Return whether ``record`` should be emitted."""
        if not record.name.startswith(self._prefixes):
            return True
        # A logger adapter that decorates messages (per connection) passes the
        # undecorated template as throttle_key, so repeats across connections match.
        key = (record.name, getattr(record, "throttle_key", record.msg))
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last[0] < self._interval_s:
            self._last[key] = (last[0], last[1] + 1)
            return False
        suppressed = last[1] if last is not None else 0
        self._last[key] = (now, 0)
        if suppressed:
            record.msg = f"{record.msg} [{suppressed} similar suppressed]"
        return True


def configure_logging(level: str) -> None:
    """Log to stderr at ``level``, throttling repeats from noisy loggers."""
    logging.basicConfig(level=level, format=_LOG_FORMAT)
    throttle = ThrottleFilter(_THROTTLED)
    for handler in logging.getLogger().handlers:
        handler.addFilter(throttle)
    # websockets logs each connection's open and close at INFO.
    logging.getLogger("websockets").setLevel(max(logging.WARNING, logging.getLevelName(level)))
