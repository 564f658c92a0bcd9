"""The Kafka source: ``md.ticks`` in batches, bad records to ``md.ticks.dlq``.

- Records are keyed by symbol; the value is the canonical JSON tick
  (``gateway.marketdata.codec``).
- The consumer reads with ``getmany`` and commits offsets only after the
  pipeline acknowledged the batch (at most every ``commit_interval_ms``, and
  on stop), so a restart resumes after the last applied tick. Commits run in
  the background, one at a time, so a slow or dead broker never stalls ingest.
- A record that cannot be decoded, or that the PriceBook refuses, is counted
  and produced to the dead-letter topic with its reason in the headers. It
  never stops the consumer, and offsets are never committed past a dead
  letter the broker has not confirmed (``_deadletters.py``).
- When the broker cannot be reached the source reports itself down (the
  gateway then marks every price stale), logs once per interval and keeps
  retrying with backoff; it comes back up by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from gateway.backoff import Backoff
from gateway.clock import Clock
from gateway.errors import ShutdownIncomplete
from gateway.marketdata._deadletters import DeadLetterQueue
from gateway.marketdata.codec import DecodeError, TickDecoder, TickRows
from gateway.marketdata.source import Rejection, SourceBatch
from gateway.metrics import Metrics
from gateway.settings import KafkaSettings
from pricing.instruments import InstrumentMaster

__all__ = ["KafkaSource"]

logger = logging.getLogger(__name__)


class KafkaSource:
    """Consume ticks from Kafka; see the module docstring."""

    name = "kafka"

    def __init__(
        self, settings: KafkaSettings, master: InstrumentMaster, *, clock: Clock, metrics: Metrics
    ) -> None:
        assert settings.bootstrap is not None  # Settings refuses source=kafka without it
        self._settings = settings
        self._bootstrap = settings.bootstrap
        self._decoder = TickDecoder(master.symbol_index)
        self._clock = clock
        self._metrics = metrics
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._is_up = False
        self._uncommitted: dict[TopicPartition, int] = {}
        self._last_commit_s = time.monotonic()
        self._commit_task: asyncio.Task[None] | None = None
        self._dead_letters = DeadLetterQueue(settings.dlq_topic, metrics)
        self._last_probe_s = 0.0
        # Records behind the partition's high watermark after the last fetch from it.
        self._lag: dict[tuple[str, ...], float] = {}
        metrics.labelled_gauge(
            "kafka_consumer_lag",
            "Records of md.ticks not yet consumed, per partition, as of the last fetch.",
            ("topic", "partition"),
            lambda: self._lag,
        )

    @property
    def is_up(self) -> bool:
        """Whether the broker answered the last fetch or probe."""
        return self._is_up

    async def start(self) -> None:
        """Connections are made by ``batches``, so a down broker does not stop startup."""

    async def stop(self) -> None:
        """Wait for dead letters, commit what was applied, close both clients.

        Both clients are closed whatever the broker's state. Raises
        ``ShutdownIncomplete`` when applied offsets could not be committed
        (they are read again at the next start).
        """
        consumer, producer = self._consumer, self._producer
        self._consumer = self._producer = None
        self._is_up = False
        try:
            if self._commit_task is not None:
                await self._commit_task
            if consumer is not None and producer is not None:
                await self._commit(consumer, producer)
        finally:
            self._dead_letters.cancel()
            # Close both even when the broker is gone and a close fails.
            for what, client in (("consumer", consumer), ("producer", producer)):
                if client is not None:
                    await _close(what, client)
        if self._uncommitted:
            raise ShutdownIncomplete(
                f"kafka offsets not committed at shutdown ({len(self._uncommitted)} partitions);"
                " their records will be read again at the next start"
            )

    async def batches(self) -> AsyncIterator[SourceBatch]:
        """Yield decoded batches; connect, and reconnect with backoff, as needed."""
        s = self._settings
        backoff = Backoff(s.retry_backoff_initial_ms / 1000, s.retry_backoff_max_ms / 1000)
        while True:
            try:
                consumer = await self._connect()
                backoff.reset()
                async for batch in self._consume(consumer):
                    yield batch
            except KafkaError as e:
                self._set_up(False, reason=str(e))
                await self._disconnect()
                delay_s = backoff.next_delay_s()
                logger.warning(
                    "kafka %s unavailable (%s); retrying in %.1f s",
                    self._bootstrap,
                    e,
                    delay_s,
                    extra={"event": "feed.unavailable"},
                )
                await asyncio.sleep(delay_s)

    async def acknowledge(self, batch: SourceBatch, rejected: Sequence[Rejection]) -> None:
        """Dead-letter refused rows, record the batch's offsets, commit when due."""
        if rejected and batch.origins is not None:
            for rejection in rejected:
                record = batch.origins[rejection.row]
                assert isinstance(record, ConsumerRecord)
                self._dead_letter(record, rejection.reason.label, "refused by the PriceBook")
        if isinstance(batch.position, dict):
            self._uncommitted.update(batch.position)
        self._commit_in_background()

    # --- internals ----------------------------------------------------------------

    async def _connect(self) -> AIOKafkaConsumer:
        s = self._settings
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap,
                client_id=f"{s.client_id}-dlq",
                enable_idempotence=s.enable_idempotence,
                request_timeout_ms=s.request_timeout_ms,
            )
            await producer.start()
            self._producer = producer
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                s.topic,
                bootstrap_servers=self._bootstrap,
                group_id=s.group_id,
                client_id=s.client_id,
                enable_auto_commit=False,
                auto_offset_reset=s.auto_offset_reset,
                request_timeout_ms=s.request_timeout_ms,
                retry_backoff_ms=s.retry_backoff_initial_ms,
            )
            await consumer.start()
            self._consumer = consumer
        self._set_up(True)
        return self._consumer

    async def _disconnect(self) -> None:
        self._dead_letters.cancel()
        if self._commit_task is not None:
            self._commit_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._commit_task
            self._commit_task = None
        for what, client in (("consumer", self._consumer), ("producer", self._producer)):
            if client is not None:
                await _close(what, client)
        self._consumer = self._producer = None

    async def _consume(self, consumer: AIOKafkaConsumer) -> AsyncIterator[SourceBatch]:
        s = self._settings
        while True:
            fetched = await consumer.getmany(
                timeout_ms=s.fetch_wait_ms, max_records=s.max_batch_records
            )
            if not fetched:
                await self._probe(consumer)
                continue
            self._set_up(True)
            self._last_probe_s = time.monotonic()
            self._note_lag(consumer, fetched)
            batch = await self._decode(fetched)
            if batch is not None:
                yield batch

    def _note_lag(
        self,
        consumer: AIOKafkaConsumer,
        fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
    ) -> None:
        for tp, records in fetched.items():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                lag = max(highwater - (records[-1].offset + 1), 0)
                self._lag[(tp.topic, str(tp.partition))] = float(lag)

    async def _decode(
        self, fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> SourceBatch | None:
        ts_recv = self._clock.now_ns()
        rows = TickRows()
        origins: list[ConsumerRecord[bytes, bytes]] = []
        position: dict[TopicPartition, int] = {}
        decoder = self._decoder
        for tp, records in fetched.items():
            position[tp] = records[-1].offset + 1
            for record in records:
                try:
                    key = record.key.decode() if record.key is not None else None
                    if record.value is None:
                        raise DecodeError("bad_record", "record has no value")
                    obj = decoder.parse(record.value)
                    rows.append(decoder.decode(obj, ts_recv, key_symbol=key, seq=record.offset))
                    origins.append(record)
                except DecodeError as e:
                    self._refuse(record, e.reason, e.detail)
                except UnicodeDecodeError:
                    self._refuse(record, "bad_record", "key is not UTF-8")
        if not rows:
            self._uncommitted.update(position)
            self._commit_in_background()
            return None
        return SourceBatch(rows.to_batch(), origins=origins, position=position)

    def _refuse(self, record: ConsumerRecord[bytes, bytes], reason: str, detail: str) -> None:
        self._metrics.counters.records_refused[reason] += 1
        self._dead_letter(record, reason, detail)

    def _dead_letter(self, record: ConsumerRecord[bytes, bytes], reason: str, detail: str) -> None:
        assert self._producer is not None  # batches exist only while connected
        self._dead_letters.add(self._producer, record, reason, detail)

    async def _probe(self, consumer: AIOKafkaConsumer) -> None:
        # An idle topic and a dead broker both fetch nothing; a metadata request
        # tells them apart.
        now = time.monotonic()
        if now - self._last_probe_s < self._settings.probe_interval_ms / 1000:
            return
        self._last_probe_s = now
        try:
            async with asyncio.timeout(self._settings.probe_timeout_ms / 1000):
                await consumer.topics()
        except (KafkaError, TimeoutError) as e:
            self._set_up(False, reason=str(e) or type(e).__name__)
            return
        self._set_up(True)

    def _commit_in_background(self) -> None:
        consumer, producer = self._consumer, self._producer
        interval_s = self._settings.commit_interval_ms / 1000
        in_flight = self._commit_task is not None and not self._commit_task.done()
        if (
            consumer is None
            or producer is None
            or in_flight
            or not self._uncommitted
            or time.monotonic() - self._last_commit_s < interval_s
        ):
            return
        self._last_commit_s = time.monotonic()
        self._commit_task = asyncio.create_task(
            self._commit(consumer, producer), name="tickgate-kafka-commit"
        )

    async def _commit(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        self._dead_letters.retry(producer)
        await self._dead_letters.wait_delivered(self._settings.commit_timeout_ms / 1000)
        offsets = self._dead_letters.clamp(self._uncommitted)
        if not offsets:
            return
        request = {tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()}
        try:
            async with asyncio.timeout(self._settings.commit_timeout_ms / 1000):
                await consumer.commit(request)
        except (KafkaError, TimeoutError) as e:
            logger.warning(
                "committing offsets failed (%s); will retry",
                e,
                extra={"event": "feed.offsets_commit_failed"},
            )
            return
        for tp, offset in offsets.items():
            # Offsets acknowledged while the commit was in flight, or held back
            # by an undelivered dead letter, stay pending.
            if self._uncommitted.get(tp) == offset:
                del self._uncommitted[tp]

    def _set_up(self, is_up: bool, *, reason: str = "") -> None:
        if is_up == self._is_up:
            return
        self._is_up = is_up
        if is_up:
            self._metrics.counters.feed_connects += 1
            logger.info("kafka %s is up", self._bootstrap, extra={"event": "feed.up"})
        else:
            logger.warning(
                "kafka %s is down (%s); prices go stale",
                self._bootstrap,
                reason,
                extra={"event": "feed.down"},
            )


async def _close(what: str, client: AIOKafkaConsumer | AIOKafkaProducer) -> None:
    # aiokafka can raise CancelledError out of stop() when the broker is gone
    # (it awaits a fetch task it cancelled itself); only a cancellation of
    # this task itself is let through.
    try:
        await client.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        logger.warning(
            "closing the kafka %s was cut short by the client; it is closed",
            what,
            extra={"event": "feed.close_cut_short"},
        )
    except Exception as e:
        logger.warning(
            "closing the kafka %s failed: %s", what, e, extra={"event": "feed.close_failed"}
        )
