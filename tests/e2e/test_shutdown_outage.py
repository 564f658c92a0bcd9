"""SIGTERM to a real ``tickgate run`` while its Kafka broker is down (issue 14, item 9)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.builders import TEST_SECRET
from tests.harness import http, poll_until
from tests.integration.test_kafka_source import create_topics
from tests.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


async def health(port: int) -> dict[str, object] | None:
    try:
        status, body = await http("GET", f"http://127.0.0.1:{port}/healthz")
    except OSError:
        return None
    health = orjson.loads(body)
    return health if status == 200 and isinstance(health, dict) else None


async def ticks_accepted(port: int) -> float:
    _, body = await http("GET", f"http://127.0.0.1:{port}/metrics")
    for line in body.decode().splitlines():
        if line.startswith("tickgate_ticks_accepted_total "):
            return float(line.split()[1])
    return 0.0


async def produce_ticks(bootstrap: str, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for i in range(count):
            value = {
                "symbol": "AAPL",
                "bid": 100.0 + i,
                "ask": 100.5 + i,
                "ts_event": time.time_ns(),
            }
            await producer.send_and_wait(topic, orjson.dumps(value), key=b"AAPL")
    finally:
        await producer.stop()


async def test_sigterm_during_a_kafka_outage_stops_bounded_and_clean(tmp_path, private_tansu):
    topic = f"md.ticks.{uuid.uuid4().hex[:8]}"
    await create_topics(private_tansu.bootstrap, topic, f"{topic}.dlq")
    await produce_ticks(private_tansu.bootstrap, topic, 5)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TICKGATE_")},
        "TICKGATE_DATA_DIR": str(tmp_path),
        "TICKGATE_AUTH_JWT_SECRET": TEST_SECRET,
        "TICKGATE_PORTFOLIO_DEMO_ACCOUNTS": "20",
        "TICKGATE_KAFKA_TOPIC": topic,
        "TICKGATE_KAFKA_DLQ_TOPIC": f"{topic}.dlq",
        "TICKGATE_KAFKA_GROUP_ID": f"gateway-{uuid.uuid4().hex[:8]}",
        "TICKGATE_KAFKA_AUTO_OFFSET_RESET": "earliest",
        # Applied offsets stay pending until the stop, which cannot commit them.
        "TICKGATE_KAFKA_COMMIT_INTERVAL_MS": "600000",
        "TICKGATE_KAFKA_COMMIT_TIMEOUT_MS": "1000",
        "TICKGATE_KAFKA_PROBE_INTERVAL_MS": "100",
        "TICKGATE_KAFKA_PROBE_TIMEOUT_MS": "500",
        "TICKGATE_SHUTDOWN_TIMEOUT_S": "5",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "run",
        "--port",
        str(port),
        "--kafka",
        private_tansu.bootstrap,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await poll_until(
            lambda: ticks_accepted_or_zero(port), what="the ticks to be applied", timeout_s=60
        )
        private_tansu.stop()
        await poll_until(lambda: feed_down(port), what="the feed to be down", timeout_s=30)
        process.send_signal(signal.SIGTERM)
        # Bounded: 5 s for clients, 5 s for the source, then the cache.
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    log = stderr.decode()
    assert "Traceback" not in log
    assert "CancelledError" not in log
    assert "Application shutdown failed" not in log
    assert "Unclosed" not in log
    assert "positions written to the cache at shutdown" in log
    assert "offsets not committed at shutdown" in log
    assert "tickgate stopped" in log
    assert process.returncode == 4


async def ticks_accepted_or_zero(port: int) -> bool:
    if await health(port) is None:
        return False
    return await ticks_accepted(port) >= 5


async def feed_down(port: int) -> bool:
    body = await health(port)
    return body is not None and body["feed"] == {"source": "kafka", "is_up": False}
