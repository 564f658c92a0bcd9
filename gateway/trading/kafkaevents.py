"""Ledger events from Kafka ``orders.events``, when the ledger runs in another process.

Every gateway node needs every event, so each node consumes with a group of
its own (``TICKGATE_ORDERS_EVENTS_GROUP_ID``; give each node a distinct
one). A new group starts at the earliest offset: the accounts were loaded
from the ledger first, so events they already reflect change nothing
(``LedgerEvents`` and the engine skip them). Offsets are committed after a
batch was applied, so a restart resumes where the node stopped, and a crash
in between only re-applies (at least once, deduped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from gateway.backoff import Backoff
from gateway.trading.events import LedgerEvent, LedgerEvents, event_from_wire

__all__ = ["KafkaLedgerEvents"]

logger = logging.getLogger(__name__)

_MAX_RECORDS = 1_000
_FETCH_WAIT_MS = 20


class KafkaLedgerEvents:
    """Consume ``orders.events`` into ``LedgerEvents`` until cancelled; see the module docstring."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group_id: str,
        router: LedgerEvents,
        *,
        request_timeout_ms: int,
        backoff: Backoff,
    ) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._group_id = group_id
        self._router = router
        self._request_timeout_ms = request_timeout_ms
        self._backoff = backoff
        self._consumer: AIOKafkaConsumer | None = None
        self.malformed = 0

    @property
    def is_up(self) -> bool:
        """Whether the consumer is connected (it reconnects with backoff when not)."""
        return self._consumer is not None

    async def run(self) -> None:
        """Consume, reconnecting with backoff while the broker is down."""
        while True:
            try:
                consumer = await self._connect()
                self._backoff.reset()
                await self._consume(consumer)
            except KafkaError as e:
                await self.stop()
                delay_s = self._backoff.next_delay_s()
                logger.warning(
                    "kafka %s unavailable for ledger events (%s); retrying in %.1f s",
                    self._bootstrap,
                    e,
                    delay_s,
                    extra={"event": "orders.events_unavailable"},
                )
                await asyncio.sleep(delay_s)

    async def stop(self) -> None:
        """Close the consumer (offsets of applied batches were committed already)."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await consumer.stop()

    async def _connect(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                self._topic,
                bootstrap_servers=self._bootstrap,
                group_id=self._group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                request_timeout_ms=self._request_timeout_ms,
            )
            try:
                await consumer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await consumer.stop()
                raise
            self._consumer = consumer
        return self._consumer

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            fetched = await consumer.getmany(timeout_ms=_FETCH_WAIT_MS, max_records=_MAX_RECORDS)
            if not fetched:
                continue
            events: list[LedgerEvent] = []
            offsets = {}
            # Partitions are keyed by account: order matters within one, not across.
            for tp, records in fetched.items():
                offsets[tp] = records[-1].offset + 1
                for record in records:
                    try:
                        events.append(event_from_wire(record.value or b""))
                    except ValueError as e:
                        self.malformed += 1
                        logger.error(
                            "ledger event at %s:%d is malformed: %s",
                            tp,
                            record.offset,
                            e,
                            extra={"event": "orders.event_malformed"},
                        )
            self._router.on_events(events)
            await consumer.commit(offsets)
