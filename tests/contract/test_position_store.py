"""Contract of the position store port, run over every adapter.

``memory`` is the embedded default; ``redis`` runs against a real
redis-server (one per session, a unique key prefix per test).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from portfolio.errors import StoreUnavailable
from portfolio.memory import MemoryPositionStore
from portfolio.redis import RedisPositionStore
from portfolio.store import AccountRecord, PositionStore
from portfolio.types import AccountId, PositionState
from tests.servers import RedisServer, free_port

AWKWARD_FLOATS = [
    pytest.param(0.1 + 0.2, id="0.1+0.2"),
    pytest.param(1e-300, id="1e-300"),
    pytest.param(-1e-300, id="-1e-300"),
    pytest.param(5e-324, id="smallest-subnormal"),
    pytest.param(1.7976931348623157e308, id="largest-finite"),
    pytest.param(-0.0, id="negative-zero"),
    pytest.param(1 / 3, id="one-third"),
    pytest.param(2.0**53 + 2.0, id="above-2**53"),
    pytest.param(-123456.789, id="negative"),
]


def make_record(
    account: str = "ACC-1",
    *,
    version: int = 1,
    base_currency: str = "USD",
    cash: dict[str, float] | None = None,
    positions: dict[str, PositionState] | None = None,
) -> AccountRecord:
    return AccountRecord(
        account=AccountId(account),
        base_currency=base_currency,
        version=version,
        cash={"USD": 1000.0} if cash is None else cash,
        positions={"AAPL": PositionState(100.0, 190.5)} if positions is None else positions,
    )


def exact(record: AccountRecord) -> tuple[object, ...]:
    """The record with every float as its hex form, so equality is bit-for-bit."""
    return (
        record.account,
        record.base_currency,
        record.version,
        {currency: float.hex(amount) for currency, amount in record.cash.items()},
        {
            symbol: tuple(float.hex(getattr(state, f.name)) for f in dataclasses.fields(state))
            for symbol, state in record.positions.items()
        },
    )


def exact_all(records: dict[AccountId, AccountRecord]) -> dict[AccountId, tuple[object, ...]]:
    return {account: exact(record) for account, record in records.items()}


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def new_store(request: pytest.FixtureRequest) -> Callable[[], PositionStore]:
    """A factory of fresh, empty stores of one adapter."""
    if request.param == "memory":
        return MemoryPositionStore
    server: RedisServer = request.getfixturevalue("shared_redis")
    prefix = f"contract-{uuid.uuid4().hex}"
    return lambda: RedisPositionStore(server.url, key_prefix=prefix, timeout_s=5.0)


@pytest.fixture
async def store(new_store: Callable[[], PositionStore]) -> AsyncIterator[PositionStore]:
    started = new_store()
    await started.start()
    yield started
    await started.clear()
    await started.stop()


async def test_load_of_an_empty_store_returns_no_records(store: PositionStore) -> None:
    loaded = await store.load()

    assert loaded == {}


async def test_save_then_load_returns_the_record_keyed_by_its_account(
    store: PositionStore,
) -> None:
    record = make_record("ACC-7", version=12, base_currency="EUR")

    await store.save([record])
    loaded = await store.load()

    assert loaded == {AccountId("ACC-7"): record}


@pytest.mark.parametrize("value", AWKWARD_FLOATS)
async def test_save_then_load_keeps_awkward_floats_bit_for_bit(
    store: PositionStore, value: float
) -> None:
    state = PositionState(value, value, value, value, value, value)
    record = make_record(cash={"USD": value}, positions={"XYZ": state})

    await store.save([record])
    loaded = await store.load()

    assert exact_all(loaded) == {record.account: exact(record)}


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(float("inf"), id="inf"),
        pytest.param(float("-inf"), id="-inf"),
        pytest.param(float("nan"), id="nan"),
    ],
)
def test_records_with_non_finite_numbers_cannot_be_built(value: float) -> None:
    # Nothing non-finite can reach a store: records refuse it at construction.
    with pytest.raises(ValueError, match="finite"):
        PositionState(100.0, value)
    with pytest.raises(ValueError, match="finite"):
        make_record(cash={"USD": value})


async def test_save_then_load_keeps_distinct_position_fields_in_their_places(
    store: PositionStore,
) -> None:
    state = PositionState(
        quantity=1.5,
        avg_cost=2.25,
        realised_pnl=-3.125,
        commission=4.0625,
        day_open_quantity=-5.5,
        day_trade_value=6.75,
    )
    record = make_record(positions={"AAPL": state})

    await store.save([record])
    loaded = await store.load()

    assert exact_all(loaded) == {record.account: exact(record)}


async def test_save_then_load_keeps_a_short_position_with_negative_quantities(
    store: PositionStore,
) -> None:
    short = PositionState(
        quantity=-250.0,
        avg_cost=88.123,
        realised_pnl=-1234.5,
        commission=7.25,
        day_open_quantity=-100.0,
        day_trade_value=-13218.45,
    )
    record = make_record(positions={"TSLA": short})

    await store.save([record])
    loaded = await store.load()

    assert exact_all(loaded) == {record.account: exact(record)}


async def test_save_then_load_keeps_many_positions(store: PositionStore) -> None:
    symbols = [f"SYM{i}" for i in range(600)] + ["BRK.B", "7203.T", "ES:2025-12", "株式"]
    positions = {
        symbol: PositionState(float(i) - 300.0, i * 0.1, i * -0.01, i * 0.001, float(i), i * 1.1)
        for i, symbol in enumerate(symbols)
    }
    record = make_record(positions=positions)

    await store.save([record])
    loaded = await store.load()

    assert exact_all(loaded) == {record.account: exact(record)}


async def test_save_then_load_keeps_several_cash_currencies(store: PositionStore) -> None:
    cash = {"USD": 250_000.0, "EUR": -1234.56, "JPY": 1e9 + 0.5, "GBP": 0.1 + 0.2, "CHF": -0.0}
    record = make_record(cash=cash)

    await store.save([record])
    loaded = await store.load()

    assert exact_all(loaded) == {record.account: exact(record)}


async def test_save_then_load_keeps_an_account_without_positions_or_cash(
    store: PositionStore,
) -> None:
    record = make_record(cash={}, positions={})

    await store.save([record])
    loaded = await store.load()

    assert loaded == {record.account: record}


@pytest.mark.parametrize("version", [0, 1, 987_654_321, 2**63 - 1])
async def test_save_then_load_keeps_the_version(store: PositionStore, version: int) -> None:
    record = make_record(version=version)

    await store.save([record])
    loaded = await store.load()

    assert loaded[record.account].version == version


async def test_save_replaces_the_whole_record_so_a_removed_position_is_gone(
    store: PositionStore,
) -> None:
    before = make_record(
        version=1,
        positions={"AAPL": PositionState(100.0, 190.5), "MSFT": PositionState(50.0, 410.0)},
    )
    after = make_record(version=2, positions={"AAPL": PositionState(120.0, 191.0)})
    await store.save([before])

    await store.save([after])
    loaded = await store.load()

    assert exact_all(loaded) == {after.account: exact(after)}


async def test_save_replaces_the_whole_record_so_a_removed_currency_is_gone(
    store: PositionStore,
) -> None:
    before = make_record(version=1, cash={"USD": 10.0, "EUR": 20.0})
    after = make_record(version=2, cash={"USD": 15.0})
    await store.save([before])

    await store.save([after])
    loaded = await store.load()

    assert exact_all(loaded) == {after.account: exact(after)}


async def test_save_leaves_accounts_not_in_the_batch_untouched(store: PositionStore) -> None:
    other = make_record("ACC-OTHER", version=3)
    await store.save([other, make_record("ACC-1", version=1)])

    await store.save([make_record("ACC-1", version=2)])
    loaded = await store.load()

    assert loaded[other.account] == other


async def test_save_of_many_accounts_in_one_call_stores_every_one(store: PositionStore) -> None:
    records = [
        make_record(
            f"ACC-{i:05d}",
            version=i,
            cash={"USD": i * 0.1},
            positions={f"S{i % 7}": PositionState(float(i), 0.5 + i)},
        )
        for i in range(1_234)
    ]

    await store.save(records)
    loaded = await store.load()

    assert exact_all(loaded) == {r.account: exact(r) for r in records}


async def test_save_of_no_records_changes_nothing(store: PositionStore) -> None:
    record = make_record()
    await store.save([record])

    await store.save([])
    loaded = await store.load()

    assert loaded == {record.account: record}


async def test_clear_removes_every_record(store: PositionStore) -> None:
    await store.save([make_record(f"ACC-{i}") for i in range(20)])

    await store.clear()
    loaded = await store.load()

    assert loaded == {}


async def test_save_after_clear_stores_only_the_new_records(store: PositionStore) -> None:
    await store.save([make_record("ACC-OLD")])
    await store.clear()
    record = make_record("ACC-NEW", version=9)

    await store.save([record])
    loaded = await store.load()

    assert loaded == {record.account: record}


async def test_clear_of_an_empty_store_succeeds(store: PositionStore) -> None:
    await store.clear()
    loaded = await store.load()

    assert loaded == {}


# --- the sync mark ------------------------------------------------------------


async def test_a_new_store_has_no_sync_mark(store: PositionStore) -> None:
    assert await store.read_sync_mark() is None


async def test_ensure_sync_mark_sets_it_when_there_is_none(store: PositionStore) -> None:
    kept = await store.ensure_sync_mark("mark-a")

    assert kept == "mark-a"
    assert await store.read_sync_mark() == "mark-a"


async def test_ensure_sync_mark_keeps_a_mark_already_set(store: PositionStore) -> None:
    await store.ensure_sync_mark("mark-a")

    kept = await store.ensure_sync_mark("mark-b")

    assert kept == "mark-a"
    assert await store.read_sync_mark() == "mark-a"


async def test_clear_removes_the_sync_mark(store: PositionStore) -> None:
    await store.save([make_record()])
    await store.ensure_sync_mark("mark-a")

    await store.clear()

    assert await store.read_sync_mark() is None


# The Redis adapter turns an unreachable server into StoreUnavailable (the
# memory adapter cannot be unreachable). Nothing listens on the port: no
# server binary is needed.


@pytest.fixture
async def unreachable_store() -> AsyncIterator[RedisPositionStore]:
    store = RedisPositionStore(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.2)
    await store.start()
    yield store
    await store.stop()


@pytest.mark.integration
async def test_redis_load_with_no_server_raises_store_unavailable(
    unreachable_store: RedisPositionStore,
) -> None:
    with pytest.raises(StoreUnavailable):
        await unreachable_store.load()


@pytest.mark.integration
async def test_redis_save_with_no_server_raises_store_unavailable(
    unreachable_store: RedisPositionStore,
) -> None:
    with pytest.raises(StoreUnavailable):
        await unreachable_store.save([make_record()])


@pytest.mark.integration
async def test_redis_clear_with_no_server_raises_store_unavailable(
    unreachable_store: RedisPositionStore,
) -> None:
    with pytest.raises(StoreUnavailable):
        await unreachable_store.clear()


@pytest.mark.integration
async def test_redis_sync_mark_with_no_server_raises_store_unavailable(
    unreachable_store: RedisPositionStore,
) -> None:
    with pytest.raises(StoreUnavailable):
        await unreachable_store.read_sync_mark()
    with pytest.raises(StoreUnavailable):
        await unreachable_store.ensure_sync_mark("mark")


@pytest.mark.integration
async def test_redis_store_used_before_start_raises_store_unavailable() -> None:
    store = RedisPositionStore(f"redis://127.0.0.1:{free_port()}/0")

    with pytest.raises(StoreUnavailable, match="not started"):
        await store.load()


@pytest.mark.integration
async def test_unreadable_cached_account_is_skipped_and_the_rest_load(shared_redis) -> None:
    from redis.asyncio import Redis

    prefix = f"test-{uuid.uuid4().hex}"
    store = RedisPositionStore(f"redis://127.0.0.1:{shared_redis.port}/0", key_prefix=prefix)
    await store.start()
    good = make_record("ACC-1")
    await store.save([good, make_record("ACC-2")])
    raw = Redis(port=shared_redis.port)
    await raw.hset(f"{prefix}:account:ACC-2", "cash", b'{"USD": null}')
    await raw.aclose()

    loaded = await store.load()
    await store.stop()

    assert exact_all(loaded) == {good.account: exact(good)}
