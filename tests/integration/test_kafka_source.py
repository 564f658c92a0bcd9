"""The Kafka source against a real Kafka-compatible broker (Tansu) started by a fixture."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.builders import make_settings
from tests.harness import Message, client, http, poll_until, running_gateway

pytestmark = pytest.mark.integration


async def create_topics(bootstrap: str, *names: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, num_partitions=3, replication_factor=1) for name in names]
        )
    finally:
        await admin.close()


@pytest.fixture
async def topic(tansu) -> str:
    name = f"md.ticks.{uuid.uuid4().hex[:8]}"
    await create_topics(tansu.bootstrap, name, f"{name}.dlq")
    return name


@pytest.fixture
async def producer(tansu) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=tansu.bootstrap, enable_idempotence=False)
    await p.start()
    yield p
    await p.stop()


def kafka_settings(tmp_path, bootstrap: str, topic: str, *, group: str | None = None):
    return make_settings(
        tmp_path,
        # Prices never age into staleness here: only an outage can make them stale.
        feed={"source": "kafka", "staleness_check_ms": 50, "stale_after_ms": 600_000},
        kafka={
            "bootstrap": bootstrap,
            "topic": topic,
            "dlq_topic": f"{topic}.dlq",
            "group_id": group or f"gateway-{uuid.uuid4().hex[:8]}",
            "auto_offset_reset": "earliest",
            "commit_interval_ms": 100,
            "probe_interval_ms": 100,
            "probe_timeout_ms": 500,
            "retry_backoff_initial_ms": 100,
            "retry_backoff_max_ms": 500,
        },
    )


def tick(symbol: str, bid: float, **extra: object) -> bytes:
    return orjson.dumps(
        {"symbol": symbol, "bid": bid, "ask": bid + 0.5, "ts_event": time.time_ns(), **extra}
    )


async def test_produced_ticks_reach_a_websocket_client(tmp_path, tansu, topic, producer):
    settings = kafka_settings(tmp_path, tansu.bootstrap, topic)
    async with running_gateway(settings) as gw, client(gw.ws_url) as c:
        await c.request(
            {"op": "subscribe", "channel": "quotes", "symbols": ["AAPL", "SAP"], "id": 1}
        )
        await producer.send_and_wait(topic, key=b"AAPL", value=tick("AAPL", 271.5))
        await producer.send_and_wait(
            topic, key=b"SAP", value=tick("SAP", 233.0, last=233.2, size=10)
        )
        # One batch or two: keys within a frame come in no particular order.
        updates: dict[str, Message] = {}
        while len(updates) < 2:
            update = await c.until(lambda m: m["type"] == "update")
            updates[update["key"]] = update
        aapl, sap = updates["AAPL"], updates["SAP"]

    assert (aapl["bid"], aapl["ask"], aapl["stale"]) == (271.5, 272.0, False)
    assert (sap["bid"], sap["last"], sap["size"]) == (233.0, 233.2, 10.0)


async def test_bad_records_go_to_the_dlq_with_reasons_and_the_stream_goes_on(
    tmp_path, tansu, topic, producer
):
    bad = [
        (b"AAPL", b"{not json", "bad_json"),
        (b"AAPL", orjson.dumps({"symbol": "AAPL", "bid": 1.0, "ask": 2.0}), "bad_record"),
        (b"AAPL", tick("AAPL", -5.0), "negative"),
        (b"NOPE", tick("NOPE", 5.0), "unknown_instrument"),
        (
            b"AAPL",
            orjson.dumps({"symbol": "AAPL", "bid": 9.0, "ask": 8.0, "ts_event": 1}),
            "crossed",
        ),
        (b"MSFT", tick("AAPL", 5.0), "bad_record"),
    ]
    group = f"gateway-{uuid.uuid4().hex[:8]}"
    settings = kafka_settings(tmp_path, tansu.bootstrap, topic, group=group)
    async with running_gateway(settings) as gw, client(gw.ws_url) as c:
        await c.request({"op": "subscribe", "channel": "quotes", "symbols": ["AAPL"], "id": 1})
        for key, value, _ in bad:
            await producer.send_and_wait(topic, key=key, value=value)
        await producer.send_and_wait(topic, key=b"AAPL", value=tick("AAPL", 42.0))
        good = await c.until(lambda m: m["type"] == "update")
        dead_letters = dict(gw.gateway.metrics.counters.dead_letters)

    dlq = AIOKafkaConsumer(
        f"{topic}.dlq", bootstrap_servers=tansu.bootstrap, auto_offset_reset="earliest"
    )
    await dlq.start()
    try:
        records: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + 20
        while len(records) < len(bad) and time.monotonic() < deadline:
            for batch in (await dlq.getmany(timeout_ms=200)).values():
                records.extend(batch)
    finally:
        await dlq.stop()

    assert good["bid"] == 42.0
    reasons = sorted(dict(r.headers)["tickgate.reason"].decode() for r in records)
    assert reasons == sorted(reason for _, _, reason in bad)
    assert sorted(r.value for r in records) == sorted(value for _, value, _ in bad)
    assert all(dict(r.headers)["tickgate.source"].startswith(topic.encode()) for r in records)
    assert sum(dead_letters.values()) == len(bad)
    # Every record was applied or dead-lettered, and the group committed past all of them.
    assert await committed_total(tansu.bootstrap, group, topic) == len(bad) + 1


async def committed_total(bootstrap: str, group: str, topic: str) -> int:
    """Sum of the group's committed offsets over the topic's partitions."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        committed = [await consumer.committed(TopicPartition(topic, p)) for p in partitions]
    finally:
        await consumer.stop()
    return sum(offset or 0 for offset in committed)


async def test_restarted_consumer_resumes_without_loss_or_duplicates(
    tmp_path, tansu, topic, producer
):
    group = f"gateway-{uuid.uuid4().hex[:8]}"
    settings = kafka_settings(tmp_path, tansu.bootstrap, topic, group=group)
    for i in range(30):
        await producer.send(topic, key=b"AAPL", value=tick("AAPL", 100.0 + i))
    await producer.flush()
    async with running_gateway(settings) as first:
        counters = first.gateway.metrics.counters
        await poll_until(lambda: counters.ticks_received == 30, what="30 ticks", timeout_s=30)
    first_run = counters.ticks_received

    for i in range(20):
        await producer.send(topic, key=b"MSFT", value=tick("MSFT", 200.0 + i))
    await producer.flush()
    async with running_gateway(settings) as second:
        counters = second.gateway.metrics.counters
        await poll_until(lambda: counters.ticks_received >= 20, what="20 ticks", timeout_s=30)
        # A sentinel after the 20: once it arrives, anything doubled would have too.
        await producer.send_and_wait(topic, key=b"NVDA", value=tick("NVDA", 1.0))
        await poll_until(
            lambda: second.gateway.book.bid[second.gateway.master.symbol_index["NVDA"]] == 1.0,
            what="the sentinel",
            timeout_s=30,
        )
        second_run = counters.ticks_received
        msft = second.gateway.book.bid[second.gateway.master.symbol_index["MSFT"]]

    assert first_run == 30
    assert second_run == 21
    assert msft == 219.0


@pytest.mark.slow
async def test_broker_outage_marks_prices_stale_and_recovers(tmp_path, private_tansu):
    topic = "md.ticks"
    await create_topics(private_tansu.bootstrap, topic, f"{topic}.dlq")
    settings = kafka_settings(tmp_path, private_tansu.bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=private_tansu.bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        async with running_gateway(settings) as gw, client(gw.ws_url) as c:
            await c.request({"op": "subscribe", "channel": "quotes", "symbols": ["AAPL"], "id": 1})
            await producer.send_and_wait(topic, key=b"AAPL", value=tick("AAPL", 10.0))
            fresh = await c.until(lambda m: m["type"] == "update" and m["bid"] == 10.0)

            private_tansu.stop()
            stale = await c.until(lambda m: m["type"] == "update" and m["stale"], timeout_s=30)
            was_up_during_outage = gw.gateway.source.is_up

            private_tansu.start()
            await create_topics(private_tansu.bootstrap, topic, f"{topic}.dlq")
            await poll_until(lambda: gw.gateway.source.is_up, what="kafka up again", timeout_s=60)
            deadline = time.monotonic() + 60
            recovered = None
            while recovered is None and time.monotonic() < deadline:
                await producer.send_and_wait(topic, key=b"AAPL", value=tick("AAPL", 11.0))
                try:
                    recovered = await c.until(
                        lambda m: m["type"] == "update" and m["bid"] == 11.0, timeout_s=2
                    )
                except TimeoutError:
                    continue
    finally:
        await producer.stop()

    assert fresh["stale"] is False
    assert (stale["bid"], stale["stale"]) == (10.0, True)
    assert was_up_during_outage is False
    assert recovered is not None
    assert recovered["stale"] is False


async def test_load_tool_drives_a_spike_by_producing_ticks_to_kafka(tmp_path, tansu, topic):
    # tickgate-load's Kafka driver: it produces the ticks itself (as a
    # separate process), and the gateway consuming the topic serves them.
    settings = kafka_settings(tmp_path, tansu.bootstrap, topic)
    out = tmp_path / "kafka-spike"
    async with running_gateway(settings) as gw:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "load_tests",
            "spike",
            "--url",
            gw.ws_url,
            "--clients",
            "4",
            "--symbols-per-client",
            "10",
            "--duration-s",
            "12",
            "--spike-at-s",
            "7",
            "--spike-s",
            "2",
            "--rate-multiplier",
            "4",
            "--driver",
            "kafka",
            "--kafka-bootstrap",
            tansu.bootstrap,
            "--kafka-topic",
            topic,
            "--tick-rate",
            "2000",
            "--workers",
            "1",
            "--out",
            str(out),
            "--no-progress",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), timeout=90)

    assert process.returncode == 0, output.decode()
    result = orjson.loads((out / "result.json").read_bytes())
    driver = result["generator"]["driver"]
    assert driver["driver"] == "kafka"
    assert driver["produced"] > 0
    assert 0 < result["delivered"] <= result["produced"]
    assert result["gaps"] == 0
    assert result["protocol_errors"] == {}


async def test_consumer_lag_is_exposed_per_partition_and_reaches_zero(
    tmp_path, tansu, topic, producer
):
    settings = kafka_settings(tmp_path, tansu.bootstrap, topic)
    async with running_gateway(settings) as gw:
        sent = await producer.send_and_wait(topic, key=b"AAPL", value=tick("AAPL", 271.5))
        series = f'tickgate_kafka_consumer_lag{{partition="{sent.partition}",topic="{topic}"}}'

        async def caught_up() -> bool:
            _, body = await http("GET", f"{gw.url}/metrics")
            return f"{series} 0.0" in body.decode()

        await poll_until(caught_up, what="the partition's lag to be exposed at 0")
