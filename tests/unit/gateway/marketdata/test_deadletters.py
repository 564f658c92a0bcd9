"""The Kafka dead-letter queue: commits never pass an undelivered letter.

The producer here is a double that hands out futures the test resolves; the
delivery path against a real broker is covered in
tests/integration/test_kafka_source.py.
"""

from __future__ import annotations

import asyncio

from aiokafka import ConsumerRecord, TopicPartition

from gateway.marketdata._deadletters import DeadLetterQueue
from gateway.metrics import Metrics

TP0 = TopicPartition("md.ticks", 0)
TP1 = TopicPartition("md.ticks", 1)


class ProducerDouble:
    """Records sends; each send's delivery is a future the test completes."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, list[tuple[str, bytes]]]] = []
        self.deliveries: list[asyncio.Future[object]] = []

    async def send(self, topic, value, key, headers):
        self.sent.append((topic, value, headers))
        delivery: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.deliveries.append(delivery)
        return delivery


def record(partition: int, offset: int) -> ConsumerRecord:
    return ConsumerRecord(
        topic="md.ticks",
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"AAPL",
        value=b"{bad",
        checksum=None,
        serialized_key_size=4,
        serialized_value_size=4,
        headers=(),
    )


async def settle() -> None:
    # Let the delivery tasks run until they wait on their futures.
    for _ in range(5):
        await asyncio.sleep(0)


async def test_pending_letter_holds_its_partition_commit_below_its_offset():
    queue, producer = DeadLetterQueue("md.ticks.dlq", Metrics()), ProducerDouble()
    queue.add(producer, record(0, 5), "bad_json", "x")
    await settle()

    clamped = queue.clamp({TP0: 10, TP1: 7})

    assert clamped == {TP0: 5, TP1: 7}


async def test_delivered_letter_releases_the_commit():
    queue, producer = DeadLetterQueue("md.ticks.dlq", Metrics()), ProducerDouble()
    queue.add(producer, record(0, 5), "bad_json", "x")
    await settle()
    producer.deliveries[0].set_result("metadata")
    await queue.wait_delivered(1.0)

    clamped = queue.clamp({TP0: 10})

    assert clamped == {TP0: 10}
    assert len(queue) == 0


async def test_failed_delivery_keeps_holding_and_is_sent_again_on_retry():
    metrics = Metrics()
    queue, producer = DeadLetterQueue("md.ticks.dlq", metrics), ProducerDouble()
    queue.add(producer, record(1, 3), "crossed", "refused")
    await settle()
    producer.deliveries[0].set_exception(OSError("broker gone"))
    await queue.wait_delivered(1.0)
    held = queue.clamp({TP1: 9})

    queue.retry(producer)
    await settle()
    producer.deliveries[1].set_result("metadata")
    await queue.wait_delivered(1.0)

    assert held == {TP1: 3}
    assert len(producer.sent) == 2
    assert queue.clamp({TP1: 9}) == {TP1: 9}
    assert metrics.counters.dead_letters["crossed"] == 1  # counted once, not per attempt


async def test_letter_carries_reason_detail_and_source_headers():
    queue, producer = DeadLetterQueue("md.ticks.dlq", Metrics()), ProducerDouble()
    queue.add(producer, record(0, 42), "bad_record", "ts_event must be a number")
    await settle()

    topic, value, headers = producer.sent[0]

    assert (topic, value) == ("md.ticks.dlq", b"{bad")
    assert dict(headers) == {
        "tickgate.reason": b"bad_record",
        "tickgate.detail": b"ts_event must be a number",
        "tickgate.source": b"md.ticks/0@42",
    }


async def test_cancelled_deliveries_stay_undelivered():
    queue, producer = DeadLetterQueue("md.ticks.dlq", Metrics()), ProducerDouble()
    queue.add(producer, record(0, 5), "bad_json", "x")
    await settle()

    queue.cancel()

    assert queue.clamp({TP0: 10}) == {TP0: 5}
