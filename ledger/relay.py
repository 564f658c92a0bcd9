"""The outbox relay: publish committed events, then mark them sent.

Events were written in the same transaction as the entries, so none is
lost. The relay publishes the oldest unsent events in order to every
``EventSink`` (Kafka ``orders.events``, in-process listeners), then marks
them sent. A crash between the two re-publishes them: consumers dedupe
on ``event_id``. It also publishes new dead letters to a dead-letter sink.

Event wire form (JSON object, one per event)::

    {"event_id": "...", "seq": 42, "ledger_seq": 17, "type": "fill",
     "account_id": "DEMO-0001", ...payload}

``seq`` is the event sequence (gapless, in commit order), ``ledger_seq`` the
ledger transaction the event belongs to. Payloads are in docs/ledger.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import orjson

from ledger.store import DeadLetter, LedgerStore, OutboxEvent

__all__ = ["EventSink", "ListenerSink", "OutboxRelay", "dead_letter_wire", "event_wire"]

logger = logging.getLogger(__name__)


def event_wire(event: OutboxEvent) -> bytes:
    """The event's JSON bytes: envelope fields, then its payload's fields."""
    head = orjson.dumps(
        {
            "event_id": event.event_id,
            "seq": event.event_seq,
            "ledger_seq": event.ledger_seq,
            "type": event.type,
            "account_id": event.account_id,
        }
    )
    body = event.payload.encode()
    if body == b"{}":
        return head
    return head[:-1] + b"," + body[1:]


def dead_letter_wire(letter: DeadLetter) -> bytes:
    """A dead letter's JSON bytes for the dead-letter topic."""
    return orjson.dumps(
        {
            "dlq_id": letter.dlq_id,
            "transfer_id": letter.transfer_id,
            "account_id": letter.account_id,
            "reason": letter.reason,
            "detail": letter.detail,
            "source": letter.source,
            "raw": letter.raw,
            "ts_ns": letter.ts_ns,
        }
    )


class EventSink(Protocol):
    """Where the relay publishes (port)."""

    async def publish(self, events: Sequence[OutboxEvent]) -> None:
        """Return once every event is durable downstream; raise otherwise."""
        ...

    async def publish_dead_letters(self, letters: Sequence[DeadLetter]) -> None: ...


class ListenerSink:
    """In-process listeners (the embedded default): each gets every event, in order."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[Sequence[OutboxEvent]], None]] = []

    def add(self, listener: Callable[[Sequence[OutboxEvent]], None]) -> None:
        self._listeners.append(listener)

    async def publish(self, events: Sequence[OutboxEvent]) -> None:
        for listener in self._listeners:
            try:
                listener(events)
            except Exception:
                logger.exception(
                    "a ledger event listener failed", extra={"event": "ledger.listener_failed"}
                )

    async def publish_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            logger.warning(
                "ledger dead letter %d: %s (%s)",
                letter.dlq_id,
                letter.reason,
                letter.detail,
                extra={"event": "ledger.dead_letter"},
            )


class OutboxRelay:
    """Publish unsent events in batches of ``batch_size`` whenever woken, or every interval."""

    def __init__(
        self,
        store: LedgerStore,
        sinks: Sequence[EventSink],
        now_ns: Callable[[], int],
        *,
        batch_size: int = 1000,
        interval_ms: int = 200,
    ) -> None:
        self._store = store
        self._sinks = list(sinks)
        self._now_ns = now_ns
        self._batch_size = batch_size
        self._interval_s = interval_ms / 1000
        self._wake = asyncio.Event()
        self.published = 0
        # Events committed and not yet published, as of the last round: 0 after
        # a round that caught up, counted in the store after a full round (the
        # relay is behind) or a failed one (the sinks or the store are down).
        self.backlog = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Relay forever; store or sink failures are logged and retried next round."""
        while True:
            try:
                while await self.relay_once():
                    self.backlog = await self._store.unsent_event_count()
                self.backlog = 0
            except Exception as e:
                logger.warning(
                    "the outbox relay failed, retrying: %s",
                    e,
                    extra={"event": "ledger.relay_failed"},
                )
                await self._count_backlog()
            self._wake.clear()
            try:
                async with asyncio.timeout(self._interval_s):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _count_backlog(self) -> None:
        try:
            self.backlog = await self._store.unsent_event_count()
        except Exception as e:
            # The store is down too: the last count stands until it answers.
            logger.debug(
                "the outbox backlog cannot be counted: %s",
                e,
                extra={"event": "ledger.backlog_uncounted"},
            )

    async def relay_once(self) -> bool:
        """Publish one batch of events and dead letters; whether there may be more."""
        events = await self._store.unsent_events(self._batch_size)
        if events:
            for sink in self._sinks:
                await sink.publish(events)
            await self._store.mark_sent([e.event_seq for e in events], self._now_ns())
            self.published += len(events)
        letters = await self._store.unpublished_dead_letters(self._batch_size)
        if letters:
            for sink in self._sinks:
                await sink.publish_dead_letters(letters)
            await self._store.mark_dead_letters_published(
                [d.dlq_id for d in letters], self._now_ns()
            )
        return len(events) == self._batch_size or len(letters) == self._batch_size
