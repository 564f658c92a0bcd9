"""Contract of the command bus port, written against a factory so any adapter can join.

An adapter joins by adding a param to ``make_bus_under_test``: a function
that builds a ``BusUnderTest`` (the bus, a way to read back what it made
durable, independently of the bus, and, when ``is_killable``, ways to take
its backend down and bring it back). ``kafka`` runs against the real Tansu
broker; the ledger's embedded inbox (``ledger.inbox``) is meant to join
with its SQLite file as the backend.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

import orjson
import pytest

from orders.bus import CommandBus
from orders.commands import CancelOrder, Command, SubmitOrder, SubmitPayment, command_from_wire
from orders.errors import BusUnavailable
from orders.kafka import KafkaCommandBus
from orders.settings import KafkaBusSettings
from orders.types import (
    AccountId,
    IdempotencyKey,
    OrderType,
    PaymentKind,
    PrincipalId,
    Side,
    TimeInForce,
    TraceId,
    cancel_transfer_id_for,
    order_id_for,
    payment_id_for,
    transfer_id_for,
)
from tests.kafkaread import read_topic

T0 = 1_800_000_000 * 1_000_000_000


@dataclass
class BusUnderTest:
    bus: CommandBus
    read_durable: Callable[[], Awaitable[list[Command]]]
    take_down: Callable[[], Awaitable[None]] | None = None
    bring_up: Callable[[], Awaitable[None]] | None = None


MakeBus = Callable[..., Awaitable[BusUnderTest]]


def order(key: str = "k-1", account: str = "ACC-1", **changes: object) -> SubmitOrder:
    transfer_id = transfer_id_for(PrincipalId("svc"), IdempotencyKey(key))
    fields: dict[str, object] = {
        "transfer_id": transfer_id,
        "trace_id": TraceId("ab" * 16),
        "principal": PrincipalId("svc"),
        "account_id": AccountId(account),
        "ts_accepted": T0,
        "order_id": order_id_for(transfer_id),
        "symbol": "AAPL",
        "side": Side.BUY,
        "quantity": Decimal("100"),
        "order_type": OrderType.LIMIT,
        "limit_price": Decimal("187.25"),
        "time_in_force": TimeInForce.DAY,
        "client_order_id": None,
    } | changes
    return SubmitOrder(**fields)  # type: ignore[arg-type]


def payment(key: str = "p-1") -> SubmitPayment:
    transfer_id = transfer_id_for(PrincipalId("svc"), IdempotencyKey(key))
    return SubmitPayment(
        transfer_id=transfer_id,
        trace_id=TraceId("cd" * 16),
        principal=PrincipalId("svc"),
        account_id=AccountId("ACC-1"),
        ts_accepted=T0 + 5,
        payment_id=payment_id_for(transfer_id),
        kind=PaymentKind.WITHDRAWAL,
        amount=Decimal("2500.00"),
        currency="USD",
        reference="wire ü 2026",
    )


def cancel() -> CancelOrder:
    order_id = order().order_id
    return CancelOrder(
        transfer_id=cancel_transfer_id_for(order_id),
        trace_id=TraceId("ef" * 16),
        principal=PrincipalId("svc"),
        account_id=AccountId("ACC-1"),
        ts_accepted=T0 + 9,
        order_id=order_id,
    )


def kafka_factory(request: pytest.FixtureRequest) -> MakeBus:
    async def make(*, is_killable: bool = False) -> BusUnderTest:
        broker = request.getfixturevalue("private_tansu" if is_killable else "tansu")
        topic = f"orders.submitted.{uuid.uuid4().hex[:8]}"
        bus = KafkaCommandBus(
            KafkaBusSettings(
                bootstrap=broker.bootstrap,
                topic=topic,
                send_timeout_ms=2_000,
                request_timeout_ms=1_000,
            )
        )

        async def read_durable() -> list[Command]:
            records = await read_topic(broker.bootstrap, topic)
            return [command_from_wire(orjson.loads(r.value)) for r in records]

        async def take_down() -> None:
            broker.stop()

        async def bring_up() -> None:
            broker.start()

        return BusUnderTest(bus, read_durable, take_down, bring_up)

    return make


@pytest.fixture(params=[pytest.param("kafka", marks=pytest.mark.integration)])
def make_bus_under_test(request: pytest.FixtureRequest) -> MakeBus:
    """``await make_bus_under_test(is_killable=...)`` builds a bus of one adapter."""
    factories = {"kafka": kafka_factory}
    return factories[request.param](request)


@pytest.fixture
async def under_test(make_bus_under_test: MakeBus) -> AsyncIterator[BusUnderTest]:
    built = await make_bus_under_test()
    await built.bus.start()
    yield built
    await built.bus.stop()


@pytest.mark.parametrize(
    "command", [order(), payment(), cancel()], ids=["order", "payment", "cancel"]
)
async def test_a_submitted_command_is_durable_and_reads_back_equal(under_test, command) -> None:
    await under_test.bus.submit(command)

    durable = await under_test.read_durable()

    assert durable == [command]


async def test_a_market_order_without_limit_price_reads_back_equal(under_test) -> None:
    market = order(order_type=OrderType.MARKET, limit_price=None, client_order_id="c-1")

    await under_test.bus.submit(market)

    assert await under_test.read_durable() == [market]


async def test_concurrent_submits_are_each_durable_exactly_once(under_test) -> None:
    commands = [order(f"k-{i}", account=f"ACC-{i % 7}") for i in range(60)]

    await asyncio.gather(*(under_test.bus.submit(c) for c in commands))
    durable = await under_test.read_durable()

    assert sorted(c.transfer_id for c in durable) == sorted(c.transfer_id for c in commands)


async def test_one_accounts_commands_read_back_in_submit_order(under_test) -> None:
    commands = [order(f"k-{i}") for i in range(10)]

    for command in commands:
        await under_test.bus.submit(command)
    durable = [c for c in await under_test.read_durable() if c.account_id == "ACC-1"]

    assert [c.transfer_id for c in durable] == [c.transfer_id for c in commands]


async def test_submitting_a_transfer_id_again_is_allowed(under_test) -> None:
    await under_test.bus.submit(order())

    await under_test.bus.submit(order())
    durable = await under_test.read_durable()

    assert {c.transfer_id for c in durable} == {order().transfer_id}


async def test_stop_twice_is_harmless(make_bus_under_test) -> None:
    built = await make_bus_under_test()
    await built.bus.start()

    await built.bus.stop()
    await built.bus.stop()


@pytest.mark.slow
async def test_submit_while_the_backend_is_down_raises_bus_unavailable(make_bus_under_test) -> None:
    built = await make_bus_under_test(is_killable=True)
    assert built.take_down is not None
    await built.bus.start()
    try:
        await built.bus.submit(order("k-before"))
        await built.take_down()

        with pytest.raises(BusUnavailable):
            await built.bus.submit(order("k-down"))
    finally:
        await built.bus.stop()


@pytest.mark.slow
async def test_submit_after_the_backend_came_back_succeeds(make_bus_under_test) -> None:
    built = await make_bus_under_test(is_killable=True)
    assert built.take_down is not None
    assert built.bring_up is not None
    await built.bus.start()
    try:
        await built.take_down()
        with pytest.raises(BusUnavailable):
            await built.bus.submit(order("k-down"))
        await built.bring_up()

        await built.bus.submit(order("k-up"))
        durable = await built.read_durable()
    finally:
        await built.bus.stop()

    assert order("k-up").transfer_id in {c.transfer_id for c in durable}


@pytest.mark.slow
async def test_start_with_the_backend_down_does_not_raise_and_submit_raises(
    make_bus_under_test,
) -> None:
    built = await make_bus_under_test(is_killable=True)
    assert built.take_down is not None
    await built.take_down()

    await built.bus.start()
    try:
        with pytest.raises(BusUnavailable):
            await built.bus.submit(order())
    finally:
        await built.bus.stop()


# --- Kafka only: the record's key and headers ---------------------------------------------


@pytest.mark.integration
async def test_kafka_record_is_keyed_by_account_and_carries_version_type_and_trace(
    tansu,
) -> None:
    topic = f"orders.submitted.{uuid.uuid4().hex[:8]}"
    bus = KafkaCommandBus(KafkaBusSettings(bootstrap=tansu.bootstrap, topic=topic))
    async with bus:
        await bus.submit(payment())

    (record,) = await read_topic(tansu.bootstrap, topic)

    assert record.key == b"ACC-1"
    assert dict(record.headers) == {"v": b"1", "type": b"payment.submit", "trace_id": b"cd" * 16}
    assert orjson.loads(record.value)["v"] == 1


@pytest.mark.integration
@pytest.mark.slow
async def test_kafka_bus_is_up_follows_the_last_connect_or_submit(request) -> None:
    built = await kafka_factory(request)(is_killable=True)
    bus = built.bus
    assert isinstance(bus, KafkaCommandBus)
    assert built.take_down is not None
    assert built.bring_up is not None
    before_start = bus.is_up
    await bus.start()
    try:
        started = bus.is_up
        await built.take_down()
        with pytest.raises(BusUnavailable):
            await bus.submit(order("k-down"))
        after_failure = bus.is_up
        await built.bring_up()
        await bus.submit(order("k-up"))
        after_success = bus.is_up
    finally:
        await bus.stop()

    assert (before_start, started, after_failure, after_success) == (False, True, False, True)
    assert not bus.is_up
