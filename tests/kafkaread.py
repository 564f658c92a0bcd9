"""Read a whole Kafka topic back, up to a marker written after everything acknowledged.

Tansu's ListOffsets answers are not the end of the log (it reported 1 for a
partition holding 20 records), so the end is found another way: a marker
record is produced to every partition, and each partition is read until its
marker. Every record acknowledged before the call precedes its partition's
marker, so nothing acknowledged is missed and nothing is waited for by time.
"""

from __future__ import annotations

import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

MARKER_HEADER = "test-end-marker"


async def read_topic(
    bootstrap: str, topic: str, *, timeout_s: float = 30.0
) -> list[ConsumerRecord]:
    """Return every record of ``topic`` acknowledged so far, partition by partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        if topic not in await consumer.topics():  # also refreshes the metadata
            return []  # nothing was ever produced to it
        partitions = sorted(consumer.partitions_for_topic(topic) or set())
        marker = uuid.uuid4().hex.encode()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
        await producer.start()
        try:
            for partition in partitions:
                await producer.send_and_wait(
                    topic, value=b"", partition=partition, headers=[(MARKER_HEADER, marker)]
                )
        finally:
            await producer.stop()
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: dict[TopicPartition, list[ConsumerRecord]] = {tp: [] for tp in tps}
        open_tps = set(tps)
        deadline = time.monotonic() + timeout_s
        while open_tps:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its markers in {timeout_s} s")
            batch = await consumer.getmany(*open_tps, timeout_ms=500)
            for tp, found in batch.items():
                for record in found:
                    if (MARKER_HEADER, marker) in list(record.headers):
                        open_tps.discard(tp)
                        break
                    if not any(name == MARKER_HEADER for name, _ in record.headers):
                        records[tp].append(record)
        return [r for tp in tps for r in records[tp]]
    finally:
        await consumer.stop()
