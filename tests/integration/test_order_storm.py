"""Order entry under retry storms and outages: the real Redis store, the real Kafka bus.

Commands are counted on the topic itself (read back by a consumer), never
by asking the code under test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
import pytest

from orders.api import ApiResponse
from orders.bus import CommandBus
from orders.commands import Command, command_from_wire
from orders.events import RecordNotCompleted
from orders.kafka import KafkaCommandBus
from orders.redis import RedisIdempotencyStore
from orders.settings import EntrySettings, IdempotencySettings, KafkaBusSettings
from orders.types import IdempotencyKey, PrincipalId, TransferId, transfer_id_for
from tests.kafkaread import read_topic
from tests.orderdoubles import (
    NS,
    PRINCIPAL,
    T0,
    Harness,
    body_of,
    make_harness,
    order_json,
    post,
    problem_code,
)

pytestmark = pytest.mark.integration

SETTINGS = EntrySettings(idempotency=IdempotencySettings(lease_ms=15_000))


class NoLedger:
    """A CommandLookup with no ledger behind it: nothing is ever found."""

    async def find_command(self, transfer_id: TransferId) -> Command | None:
        return None


class GatedBus:
    """A real bus whose submits wait for ``gate``; ``all_held`` is set once ``hold`` wait."""

    def __init__(self, bus: CommandBus, hold: int) -> None:
        self._bus = bus
        self._hold = hold
        self.gate = asyncio.Event()
        self.all_held = asyncio.Event()
        self.waiting = 0

    async def start(self) -> None:
        await self._bus.start()

    async def stop(self) -> None:
        await self._bus.stop()

    async def submit(self, command: Command) -> None:
        self.waiting += 1
        if self.waiting >= self._hold:
            self.all_held.set()
        await self.gate.wait()
        await self._bus.submit(command)


@dataclass
class Rig:
    harness: Harness
    bootstrap: str
    topic: str

    async def on_topic(self) -> list[Command]:
        records = await read_topic(self.bootstrap, self.topic)
        return [command_from_wire(orjson.loads(r.value)) for r in records]


async def rig(store: RedisIdempotencyStore, bus: CommandBus, bootstrap: str, topic: str) -> Rig:
    await store.start()
    await bus.start()
    harness = make_harness(store=store, settings=SETTINGS, lookup=NoLedger(), real_bus=bus)
    return Rig(harness, bootstrap, topic)


def kafka_bus(bootstrap: str, topic: str) -> KafkaCommandBus:
    return KafkaCommandBus(
        KafkaBusSettings(
            bootstrap=bootstrap, topic=topic, send_timeout_ms=1_500, request_timeout_ms=1_000
        )
    )


@pytest.fixture
async def storm_rig(shared_redis, tansu) -> AsyncIterator[Rig]:
    topic = f"orders.submitted.{uuid.uuid4().hex[:8]}"
    store = RedisIdempotencyStore(
        shared_redis.url, SETTINGS.idempotency, key_prefix=uuid.uuid4().hex
    )
    bus = kafka_bus(tansu.bootstrap, topic)
    built = await rig(store, bus, tansu.bootstrap, topic)
    yield built
    await bus.stop()
    await store.stop()


def is_replay(response: ApiResponse) -> bool:
    return response.header("idempotent-replayed") == "true"


async def test_retry_storm_of_one_order_puts_exactly_one_command_on_the_topic(storm_rig) -> None:
    entry = storm_rig.harness.entry
    # 20 concurrent sends of one key (separate connections) and 7 retries within 4 s.
    concurrent = [post("/v1/orders", order_json(), key="storm") for _ in range(20)]
    retries = [post("/v1/orders", order_json(), key="storm", now_ns=T0 + i * 600_000_000)
               for i in range(7)]  # fmt: skip

    answers = await asyncio.gather(*(entry.handle(r) for r in [*concurrent, *retries]))
    late = await entry.handle(post("/v1/orders", order_json(), key="storm", now_ns=T0 + 4 * NS))
    on_topic = await storm_rig.on_topic()

    first = [a for a in answers if a.status == 202 and not is_replay(a)]
    replays = [a for a in answers if a.status == 202 and is_replay(a)]
    in_progress = [a for a in answers if problem_code(a) == "idempotency_request_in_progress"]
    assert len(first) == 1
    assert len(replays) + len(in_progress) == 26
    assert all(r.body == first[0].body for r in [*replays, late])
    assert is_replay(late)
    expected = transfer_id_for(PrincipalId(PRINCIPAL), IdempotencyKey("storm"))
    assert [c.transfer_id for c in on_topic] == [expected]


async def test_many_orders_with_duplicates_put_one_command_per_key_on_the_topic(storm_rig) -> None:
    entry = storm_rig.harness.entry
    keys = [f"k-{i}" for i in range(30)]
    requests = [post("/v1/orders", order_json(quantity="1"), key=k) for k in keys for _ in range(3)]

    answers = await asyncio.gather(*(entry.handle(r) for r in requests))
    on_topic = await storm_rig.on_topic()

    assert sum(1 for a in answers if a.status == 202 and not is_replay(a)) == 30
    assert sorted(c.transfer_id for c in on_topic) == sorted(
        transfer_id_for(PrincipalId(PRINCIPAL), IdempotencyKey(k)) for k in keys
    )


@pytest.mark.slow
async def test_redis_killed_mid_storm_answers_503_and_executes_nothing_without_a_claim(
    redis_server, tansu
) -> None:
    topic = f"orders.submitted.{uuid.uuid4().hex[:8]}"
    store = RedisIdempotencyStore(redis_server.url, SETTINGS.idempotency, timeout_s=1.0)
    bus = GatedBus(kafka_bus(tansu.bootstrap, topic), hold=5)
    built = await rig(store, bus, tansu.bootstrap, topic)
    entry, events = built.harness.entry, built.harness.events
    try:
        # Wave 1 is claimed and prepared, and held at the bus when Redis dies.
        wave1 = [
            asyncio.create_task(entry.handle(post("/v1/orders", order_json(), key=f"w1-{i}")))
            for i in range(5)
        ]
        await asyncio.wait_for(bus.all_held.wait(), timeout=30)
        redis_server.stop()
        bus.gate.set()
        wave1_answers = await asyncio.gather(*wave1)
        on_topic_after_wave1 = await built.on_topic()

        outage = await asyncio.gather(
            *(entry.handle(post("/v1/orders", order_json(), key=f"w2-{i % 4}")) for i in range(12))
        )
        on_topic_after_outage = await built.on_topic()

        redis_server.start()
        wave3 = await asyncio.gather(
            *(entry.handle(post("/v1/orders", order_json(), key=f"w2-{i % 4}")) for i in range(12))
        )
        on_topic_at_end = await built.on_topic()
    finally:
        await bus.stop()
        await store.stop()

    # Wave 1 was durable on Kafka: its 202 stands although its records could not be completed.
    assert [a.status for a in wave1_answers] == [202] * 5
    assert sum(isinstance(e, RecordNotCompleted) for e in events) == 5
    assert len(on_topic_after_wave1) == 5
    # The outage: every answer is 503, and no command reached the bus.
    assert {(a.status, problem_code(a)) for a in outage} == {(503, "idempotency_unavailable")}
    assert all(a.header("retry-after") == "1" for a in outage)
    assert len(on_topic_after_outage) == 5
    # After the restart the keys run, once each.
    assert sum(1 for a in wave3 if a.status == 202 and not is_replay(a)) == 4
    assert len({c.transfer_id for c in on_topic_at_end}) == 9
    assert len(on_topic_at_end) == 9


@pytest.mark.slow
async def test_kafka_down_at_submit_is_503_the_key_is_released_and_the_retry_succeeds_once(
    shared_redis, private_tansu
) -> None:
    topic = f"orders.submitted.{uuid.uuid4().hex[:8]}"
    store = RedisIdempotencyStore(
        shared_redis.url, SETTINGS.idempotency, key_prefix=uuid.uuid4().hex
    )
    bus = kafka_bus(private_tansu.bootstrap, topic)
    built = await rig(store, bus, private_tansu.bootstrap, topic)
    entry = built.harness.entry
    try:
        private_tansu.stop()
        down = await entry.handle(post("/v1/orders", order_json()))
        private_tansu.start()
        retry = await entry.handle(post("/v1/orders", order_json(), now_ns=T0 + NS))
        again = await entry.handle(post("/v1/orders", order_json(), now_ns=T0 + 2 * NS))
        records = await read_topic(private_tansu.bootstrap, topic)
    finally:
        await bus.stop()
        await store.stop()

    assert (down.status, problem_code(down)) == (503, "submit_unavailable")
    assert down.header("retry-after") == "1"
    assert retry.status == 202
    assert not is_replay(retry)
    assert is_replay(again)
    assert again.body == retry.body
    # A send that timed out may still land once the broker is back; then it is the very
    # same command (same bytes), which the ledger applies once by its transfer id.
    assert 1 <= len(records) <= 2
    assert len({r.value for r in records}) == 1
    assert (
        command_from_wire(orjson.loads(records[0].value)).transfer_id
        == body_of(retry)["transfer_id"]
    )
