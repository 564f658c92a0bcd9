"""Logging setup: plain text or one JSON object per line, and throttling of repeats.

Every log call of ours names its event (``extra={"event": "feed.down"}``):
a stable, dotted name that docs/operations.md lists, so log queries survive
a reworded message. ``JsonFormatter`` writes each record as one line with
that ``event``, the rendered ``message`` and any other fields passed in
``extra`` (``trace_id``, ``conn_id``, ...). Records of libraries (uvicorn,
aiokafka) have no name of ours: their ``event`` is ``log``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final, Literal

import orjson

__all__ = ["UNNAMED_EVENT", "JsonFormatter", "ThrottleFilter", "configure_logging"]

_LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
UNNAMED_EVENT: Final = "log"
"""The ``event`` of a record that names none (a library's)."""
# What every LogRecord has; anything else on a record came from ``extra``.
_RECORD_FIELDS: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "event", "throttle_key", "taskName"}
)
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


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: time, level, logger, event, message, extras.

    ``ts`` is UTC with milliseconds (``2026-12-03T16:20:00.123Z``). A record
    with an exception carries its traceback in ``exception`` (newlines
    escaped, so the record stays on one line).
    """

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as one line of JSON."""
        ts = datetime.fromtimestamp(record.created, tz=UTC)
        body: dict[str, object] = {
            "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "event": getattr(record, "event", UNNAMED_EVENT),
            "message": record.getMessage(),
        }
        body.update((k, v) for k, v in vars(record).items() if k not in _RECORD_FIELDS)
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            body["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(body, default=str).decode()


def configure_logging(level: str, log_format: Literal["text", "json"] = "text") -> None:
    """Log to stderr at ``level`` in ``log_format``, throttling repeats from noisy loggers."""
    logging.basicConfig(level=level, format=_LOG_FORMAT)
    throttle = ThrottleFilter(_THROTTLED)
    for handler in logging.getLogger().handlers:
        handler.addFilter(throttle)
        if log_format == "json":
            handler.setFormatter(JsonFormatter())
    # websockets logs each connection's open and close at INFO.
    logging.getLogger("websockets").setLevel(max(logging.WARNING, logging.getLevelName(level)))
