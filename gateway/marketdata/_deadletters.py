"""Dead letters of the Kafka source: delivered at least once, never committed past.

A dead letter is produced to the DLQ topic by a task of its own, so the
consumer never waits for it (``send`` itself can wait on metadata). Until its
delivery is confirmed, the consumer's commits on that record's partition stop
below the record's offset; a failed delivery is sent again on the next
commit cycle. If tickgate stops before it is delivered, the record is read
again after the restart and dead-lettered again: nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition

from gateway.metrics import Metrics

__all__ = ["DeadLetterQueue"]

logger = logging.getLogger(__name__)

_MAX_DETAIL_CHARS = 500


@dataclass(slots=True)
class _Letter:
    record: ConsumerRecord[bytes, bytes]
    reason: str
    detail: str
    delivery: asyncio.Task[None] | None = None


class DeadLetterQueue:
    """Dead letters not yet confirmed by the broker."""

    def __init__(self, topic: str, metrics: Metrics) -> None:
        self._topic = topic
        self._metrics = metrics
        self._letters: list[_Letter] = []

    def __len__(self) -> int:
        self._prune()
        return len(self._letters)

    def add(
        self,
        producer: AIOKafkaProducer,
        record: ConsumerRecord[bytes, bytes],
        reason: str,
        detail: str,
    ) -> None:
        """Dead-letter ``record`` with its reason; the delivery is confirmed later."""
        letter = _Letter(record, reason, detail)
        self._letters.append(letter)
        self._metrics.counters.dead_letters[reason] += 1
        self._send(producer, letter)

    def retry(self, producer: AIOKafkaProducer) -> None:
        """Send again every letter whose delivery failed."""
        self._prune()
        for letter in self._letters:
            if letter.delivery is None:
                self._send(producer, letter)

    def cancel(self) -> None:
        """Stop the deliveries in flight; their letters stay undelivered."""
        for letter in self._letters:
            if letter.delivery is not None:
                letter.delivery.cancel()
                letter.delivery = None

    async def wait_delivered(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for the deliveries in flight."""
        pending = [letter.delivery for letter in self._letters if letter.delivery is not None]
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)
        self._prune()

    def clamp(self, offsets: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Lower each partition's commit offset to its first undelivered letter."""
        self._prune()
        clamped = dict(offsets)
        for letter in self._letters:
            tp = TopicPartition(letter.record.topic, letter.record.partition)
            if tp in clamped:
                clamped[tp] = min(clamped[tp], letter.record.offset)
        return clamped

    def _send(self, producer: AIOKafkaProducer, letter: _Letter) -> None:
        letter.delivery = asyncio.create_task(self._deliver(producer, letter))

    async def _deliver(self, producer: AIOKafkaProducer, letter: _Letter) -> None:
        record = letter.record
        headers = [
            ("tickgate.reason", letter.reason.encode()),
            ("tickgate.detail", letter.detail[:_MAX_DETAIL_CHARS].encode()),
            ("tickgate.source", f"{record.topic}/{record.partition}@{record.offset}".encode()),
        ]
        delivery = await producer.send(
            self._topic, value=record.value, key=record.key, headers=headers
        )
        await delivery

    def _prune(self) -> None:
        undelivered = []
        for letter in self._letters:
            delivery = letter.delivery
            if delivery is not None and delivery.done():
                if not delivery.cancelled() and delivery.exception() is None:
                    continue
                error = None if delivery.cancelled() else delivery.exception()
                logger.warning(
                    "dead letter not delivered (%s); will retry",
                    error,
                    extra={"event": "feed.dead_letter_undelivered"},
                )
                letter.delivery = None
            undelivered.append(letter)
        self._letters = undelivered
