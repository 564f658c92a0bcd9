"""Connection admission: every connection within the open-file limit, health checks first.

Each TCP connection holds a file descriptor. Once the process reaches its
open-file limit (``RLIMIT_NOFILE``), ``accept()`` fails with ``EMFILE``,
and uvloop then stops listening for good, silently: nobody, not even a
health check, gets in again. So the gateway never lets connections reach
the limit:

- **capacity** = the soft limit minus ``reserved_fds``. The reserve covers
  the process's own files and sockets (the listener, Redis, Kafka, the
  event loop's own descriptors) and a little slack.
- When a new connection would pass the capacity, the oldest **sheddable**
  connection is closed to make room: one that has not yet sent a complete
  request head, an HTTP connection idle between requests, or a WebSocket
  that has neither authenticated nor subscribed. When none is sheddable, the
  new connection itself is closed.
- The last ``health_headroom`` connections of the capacity take plain HTTP
  only: a WebSocket upgrade beyond ``capacity - health_headroom`` first
  sheds the oldest sheddable connections, and is answered 503 when none
  can be, so ``/healthz`` and ``/metrics`` still get in when established
  clients fill the rest.

Each closing is counted in ``tickgate_connections_closed_total{reason}`` and
logged at WARNING, throttled to one line per interval with a count
(``gateway.logs``). ``raise_open_file_limit`` lifts the soft limit to the
hard one at start, where the hard limit allows.
"""

from __future__ import annotations

import logging
import resource
from typing import Final, Protocol

from gateway.metrics import Metrics

__all__ = [
    "ADMISSION_STATE_KEY",
    "ConnectionAdmission",
    "Sheddable",
    "open_file_limit",
    "raise_open_file_limit",
]

logger = logging.getLogger(__name__)

ADMISSION_STATE_KEY: Final = "tickgate.admission"
"""Key of the admission in the ASGI lifespan state, where the protocols find it."""


class Sheddable(Protocol):
    """A connection the admission may close to make room."""

    def is_sheddable(self) -> bool:
        """Whether closing it costs nobody anything yet (no request, no authenticated client)."""
        ...

    def shed(self) -> None:
        """Close it now, freeing its file descriptor."""
        ...


def open_file_limit() -> int:
    """The soft ``RLIMIT_NOFILE`` (``RLIM_INFINITY`` as a very large number)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 2**31


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft open-file limit to the hard one; return (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == hard:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as e:
        logger.warning(
            "cannot raise the open-file limit from %d to %d: %s",
            soft,
            hard,
            e,
            extra={"event": "connections.fd_limit_not_raised"},
        )
        return soft, soft
    return soft, hard


class ConnectionAdmission:
    """Open connections by key (the transport), and the sheddable ones, oldest first.

    A connection is admitted when it is accepted, settled while it is being
    served (a request in progress), unsettled when it is idle again, adopted
    when another protocol takes its transport over (the WebSocket upgrade),
    and released when it is gone. Release is idempotent.
    """

    def __init__(self, *, capacity: int, health_headroom: int, metrics: Metrics) -> None:
        if capacity <= health_headroom:
            logger.warning(
                "the open-file limit leaves room for %d connections, not more than the "
                "health headroom (%d): raise the limit (ulimit -n) or lower "
                "TICKGATE_SERVER_RESERVED_FDS",
                capacity,
                health_headroom,
                extra={"event": "connections.fd_limit_low"},
            )
        self.capacity = max(capacity, 1)
        self.health_headroom = min(health_headroom, self.capacity - 1)
        self._metrics = metrics
        self._open: set[object] = set()
        # Insertion order is age: the first is the one to shed first.
        self._candidates: dict[object, Sheddable] = {}
        metrics.gauge("connections_open", "Open TCP connections.", lambda: len(self._open))
        metrics.gauge(
            "connections_capacity",
            "Most TCP connections admitted (open-file limit minus the reserve).",
            lambda: self.capacity,
        )

    @property
    def open_count(self) -> int:
        """Connections open now."""
        return len(self._open)

    def admit(self, key: object, connection: Sheddable) -> None:
        """Admit a new connection, shedding the oldest sheddable one if at capacity."""
        self._open.add(key)
        self._candidates[key] = connection
        if len(self._open) <= self.capacity:
            return
        victim = self._oldest_sheddable(besides=key)
        if victim is None:
            self._close(key, connection, "capacity")
            logger.warning(
                "connections at capacity (%d, the open-file limit minus the reserve) and "
                "none can be shed; refused a new connection",
                self.capacity,
                extra={"event": "connections.refused_at_capacity"},
            )
            return
        self._close(*victim, "shed")
        self._log_shed()

    def admit_websocket(self, key: object) -> bool:
        """Whether an upgrade may have a connection outside the health headroom.

        Past ``capacity - health_headroom`` the oldest sheddable connections
        are closed to make room; when none can be, the upgrade is refused
        (counted and logged), and the caller answers 503.
        """
        limit = self.capacity - self.health_headroom
        shed = 0
        while len(self._open) > limit:
            victim = self._oldest_sheddable(besides=key)
            if victim is None:
                self.count_closed("health_headroom")
                logger.warning(
                    "WebSocket upgrade refused: %d connections open, none can be shed, and "
                    "the last %d are kept for plain HTTP",
                    len(self._open),
                    self.health_headroom,
                    extra={"event": "connections.upgrade_refused"},
                )
                return False
            self._close(*victim, "shed")
            shed += 1
        if shed:
            self._log_shed()
        return True

    def settle(self, key: object) -> None:
        """The connection is being served: not sheddable until it is unsettled."""
        self._candidates.pop(key, None)

    def unsettle(self, key: object, connection: Sheddable) -> None:
        """The connection is idle (or unauthenticated) again: sheddable, as the newest."""
        if key in self._open:
            self._candidates.pop(key, None)
            self._candidates[key] = connection

    def adopt(self, key: object, connection: Sheddable) -> None:
        """Another protocol took the connection over; it is sheddable as the newest."""
        self.unsettle(key, connection)

    def release(self, key: object) -> None:
        """Forget a closed connection; idempotent."""
        self._open.discard(key)
        self._candidates.pop(key, None)

    def count_closed(self, reason: str) -> None:
        """Count a connection the listener closed before serving it (``reason``)."""
        self._metrics.counters.connections_closed[reason] += 1

    def _oldest_sheddable(self, *, besides: object) -> tuple[object, Sheddable] | None:
        # Candidates that are no longer sheddable (a WebSocket that has since
        # authenticated) are dropped on the way; they stay open.
        for key, connection in list(self._candidates.items()):
            if key is besides:
                continue
            del self._candidates[key]
            if connection.is_sheddable():
                return key, connection
        return None

    def _log_shed(self) -> None:
        logger.warning(
            "connections at capacity (%d, the open-file limit minus the reserve); "
            "closed the oldest incomplete connection",
            self.capacity,
            extra={"event": "connections.shed"},
        )

    def _close(self, key: object, connection: Sheddable, reason: str) -> None:
        self.release(key)
        self.count_closed(reason)
        connection.shed()
