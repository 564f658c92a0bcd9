"""Kafka adapters of the ledger service.

- ``KafkaCommandSource``: consumes ``orders.submitted`` (consumer group
  ``ledger``) in batches; offsets are committed only by ``acknowledge``,
  which the service calls after the batch's database commit. A crash in
  between redelivers the batch, and the ledger's transfer-id dedupe makes
  the redelivery a no-op.
- ``KafkaEventSink``: the relay's sink, producing events to
  ``orders.events`` (key ``account_id``, so one account's events stay in
  order on one partition) and dead letters to ``orders.dlq``, waiting for
  every acknowledgement before the relay marks them sent.
- ``KafkaCommandProducer``: produces raw commands to ``orders.submitted``
  (dead-letter redrive in a Kafka deployment).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from ledger.relay import dead_letter_wire, event_wire
from ledger.store import DeadLetter, OutboxEvent

__all__ = ["KafkaCommandProducer", "KafkaCommandSource", "KafkaEventSink", "LedgerKafkaSettings"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LedgerKafkaSettings:
    bootstrap: str
    commands_topic: str = "orders.submitted"
    events_topic: str = "orders.events"
    dlq_topic: str = "orders.dlq"
    group_id: str = "ledger"
    client_id: str = "tickgate-ledger"
    fetch_wait_ms: int = 20
    request_timeout_ms: int = 40_000
    session_timeout_ms: int = 10_000
    enable_idempotence: bool = False


class KafkaCommandSource:
    """Command batches from ``orders.submitted``; see the module docstring."""

    name = "kafka"
    polls = False  # fetch long-polls the broker

    def __init__(self, settings: LedgerKafkaSettings) -> None:
        self._settings = settings
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        """Connections are made by ``fetch``, so a down broker does not stop startup."""

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                await consumer.stop()
            except Exception as e:
                logger.debug(
                    "closing the command consumer failed: %s",
                    e,
                    extra={"event": "ledger.consumer_close_failed"},
                )

    async def _connect(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            s = self._settings
            consumer = AIOKafkaConsumer(
                s.commands_topic,
                bootstrap_servers=s.bootstrap,
                group_id=s.group_id,
                client_id=s.client_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                request_timeout_ms=s.request_timeout_ms,
                session_timeout_ms=s.session_timeout_ms,
            )
            try:
                await consumer.start()
            except BaseException:
                await consumer.stop()
                raise
            self._consumer = consumer
        return self._consumer

    async def fetch(self, max_records: int) -> tuple[list[bytes], object] | None:
        """The next records (values) and their offsets; raises ``KafkaError`` when down."""
        try:
            consumer = await self._connect()
            fetched = await consumer.getmany(
                timeout_ms=self._settings.fetch_wait_ms, max_records=max_records
            )
        except KafkaError:
            await self.stop()
            raise
        if not fetched:
            return None
        values: list[bytes] = []
        position: dict[TopicPartition, int] = {}
        for tp, records in fetched.items():
            position[tp] = records[-1].offset + 1
            values += [r.value if r.value is not None else b"" for r in records]
        return values, position

    def cursor(self, position: object) -> int | None:
        return None

    async def acknowledge(self, position: object) -> None:
        """Commit the offsets after the batch is in the database."""
        assert isinstance(position, dict)
        consumer = await self._connect()
        await consumer.commit(position)


class KafkaEventSink:
    """Produce events and dead letters; return once the broker acknowledged all."""

    def __init__(self, settings: LedgerKafkaSettings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None: ...

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            except Exception as e:
                logger.debug(
                    "closing the event producer failed: %s",
                    e,
                    extra={"event": "ledger.producer_close_failed"},
                )

    async def _connect(self) -> AIOKafkaProducer:
        if self._producer is None:
            s = self._settings
            producer = AIOKafkaProducer(
                bootstrap_servers=s.bootstrap,
                client_id=f"{s.client_id}-events",
                acks="all",
                enable_idempotence=s.enable_idempotence,
                request_timeout_ms=s.request_timeout_ms,
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _send_all(self, topic: str, records: list[tuple[bytes, bytes]]) -> None:
        try:
            producer = await self._connect()
            futures = [await producer.send(topic, value, key=key) for key, value in records]
            await asyncio.gather(*futures)
        except KafkaError:
            await self.stop()
            raise

    async def publish(self, events: Sequence[OutboxEvent]) -> None:
        await self._send_all(
            self._settings.events_topic, [(e.account_id.encode(), event_wire(e)) for e in events]
        )

    async def publish_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        await self._send_all(
            self._settings.dlq_topic,
            [((d.account_id or "").encode(), dead_letter_wire(d)) for d in letters],
        )


class KafkaCommandProducer:
    """Produce raw command wires to ``orders.submitted`` (redrive)."""

    def __init__(self, settings: LedgerKafkaSettings) -> None:
        self._sink = KafkaEventSink(settings)
        self._topic = settings.commands_topic

    async def stop(self) -> None:
        await self._sink.stop()

    async def submit_raw(self, wires: Sequence[str]) -> None:
        await self._sink._send_all(self._topic, [(b"", w.encode()) for w in wires])
