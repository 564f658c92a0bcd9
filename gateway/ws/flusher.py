"""Flushing many connections without holding the event loop for all of them.

A tick batch can touch every connection. Writing them all in the step that
applied the batch would make accepts, handshakes, ``subscribe`` replies and
reads wait behind the whole fan-out. ``Flusher`` flushes at most ``chunk``
connections synchronously and queues the rest for the next loop steps,
``chunk`` per step; the loop polls its sockets between steps, so a reconnect
storm is served while the fan-out runs. It is sans-I/O: the shell passes
``defer``, which runs a callback in the next loop step (the loop's
``call_soon``).

Nothing is lost or reordered: a queued connection's outbox keeps
collecting updates (a key's newer update merges with the unsent one, with
``seq_from``), and its flush writes all of it as one frame. A connection is
queued once however many batches touch it meanwhile. Flushing never
awaits: ``Subscriber.flush`` writes only if the socket can take it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Final

from gateway.ws.topic import Subscriber

__all__ = ["FLUSH_CHUNK", "Flusher"]

FLUSH_CHUNK: Final = 256
"""Connections flushed per loop step (one frame write each, some 10 us)."""


class Flusher:
    """Flushes touched subscribers, at most ``chunk`` per event-loop step."""

    __slots__ = ("_chunk", "_defer", "_is_scheduled", "_queue", "_queued")

    def __init__(
        self, defer: Callable[[Callable[[], None]], object], chunk: int = FLUSH_CHUNK
    ) -> None:
        if chunk <= 0:
            raise ValueError(f"chunk must be positive, was {chunk}")
        self._defer = defer
        self._chunk = chunk
        self._queue: deque[Subscriber] = deque()
        self._queued: set[Subscriber] = set()
        self._is_scheduled = False

    @property
    def pending(self) -> int:
        """Subscribers waiting for a later loop step."""
        return len(self._queue)

    def flush(self, subscribers: Iterable[Subscriber]) -> None:
        """Flush ``subscribers`` now, up to the chunk, and the rest in later loop steps."""
        queue, queued = self._queue, self._queued
        for subscriber in subscribers:
            if subscriber not in queued:
                queued.add(subscriber)
                queue.append(subscriber)
        if not self._is_scheduled:
            self._flush_chunk()

    def _flush_chunk(self) -> None:
        self._is_scheduled = False
        queue, queued = self._queue, self._queued
        for _ in range(min(self._chunk, len(queue))):
            subscriber = queue.popleft()
            queued.discard(subscriber)
            subscriber.flush()
        if queue:
            self._is_scheduled = True
            self._defer(self._flush_chunk)
