"""PositionCache against a real redis-server that tests kill and restart.

The "book" is a dict of account records the test controls; PositionCache
reads it through ``records_of`` and ``all_accounts``. What Redis holds is
read back with a fresh store on the same key prefix; ``seed`` writes the
cache a test starts from.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence

import pytest

from gateway.accounts import positioncache
from gateway.accounts.positioncache import PositionCache
from gateway.metrics import Metrics
from gateway.settings import PositionCacheSettings, RedisSettings
from portfolio.errors import StoreUnavailable
from portfolio.memory import MemoryPositionStore
from portfolio.redis import RedisPositionStore
from portfolio.store import AccountRecord
from portfolio.types import AccountId, PositionState
from tests.harness import poll_until
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

DEADLINE_S = 15.0


def make_record(account: str, version: int, quantity: float = 100.0) -> AccountRecord:
    return AccountRecord(
        account=AccountId(account),
        base_currency="USD",
        version=version,
        cash={"USD": 10_000.0 - quantity, "EUR": version * 0.1},
        positions={"AAPL": PositionState(quantity, 190.25, day_open_quantity=quantity)},
    )


class Book:
    """The truth PositionCache writes from: account records the test changes by hand."""

    def __init__(self, records: Iterable[AccountRecord] = ()) -> None:
        self.records = {r.account: r for r in records}

    def records_of(self, accounts: Iterable[AccountId]) -> list[AccountRecord]:
        return [self.records[a] for a in accounts]

    def all_accounts(self) -> list[AccountId]:
        return list(self.records)

    def fill(self, account: str, quantity: float) -> AccountId:
        """Apply a made-up fill: the next version with a new quantity."""
        key = AccountId(account)
        self.records[key] = make_record(account, self.records[key].version + 1, quantity)
        return key


class Harness:
    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.redis = RedisSettings(
            url=server.url, key_prefix=f"cache-{uuid.uuid4().hex}", timeout_ms=200
        )
        self.settings = PositionCacheSettings(
            flush_interval_ms=20, retry_backoff_initial_ms=20, retry_backoff_max_ms=200
        )
        self.book = Book(make_record(f"ACC-{i}", version=10 + i) for i in range(8))
        self.metrics = Metrics()
        self.store = self._new_store()
        self.seed = self._new_store()
        self.cache = PositionCache(
            self.store,
            name="redis",
            settings=self.settings,
            records_of=self.book.records_of,
            all_accounts=self.book.all_accounts,
            metrics=self.metrics,
        )

    def _new_store(self) -> RedisPositionStore:
        s = self.redis
        assert s.url is not None
        return RedisPositionStore(s.url, key_prefix=s.key_prefix, timeout_s=s.timeout_ms / 1000)

    async def cached(self) -> dict[AccountId, AccountRecord] | None:
        """What Redis holds now, or None while it cannot be reached.

        A new store each time: a pooled connection would be stale after a restart.
        """
        probe = self._new_store()
        await probe.start()
        try:
            return await probe.load()
        except StoreUnavailable:
            return None
        finally:
            await probe.stop()

    async def cache_holds_the_book(self) -> bool:
        return await self.cached() == self.book.records

    def degraded_gauge(self) -> float:
        text = self.metrics.exposition().decode()
        match = re.search(r"^tickgate_positions_cache_degraded ([0-9.e+-]+)$", text, re.M)
        assert match is not None, text
        return float(match.group(1))


@pytest.fixture
async def harness(redis_server: RedisServer) -> AsyncIterator[Harness]:
    h = Harness(redis_server)
    await h.store.start()
    await h.seed.start()
    yield h
    await h.seed.stop()
    await h.store.stop()


@pytest.fixture
async def running(harness: Harness) -> AsyncIterator[Harness]:
    """The harness with ``cache.run()`` going as a task (cancelled at the end)."""
    task = asyncio.create_task(harness.cache.run())
    yield harness
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert task.cancelled(), "run() ended on its own"


# --- warm start -------------------------------------------------------------


async def test_warm_start_keeps_a_cached_record_at_the_truths_version(harness: Harness) -> None:
    truth = make_record("ACC-0", version=10, quantity=100.0)
    cached = make_record("ACC-0", version=10, quantity=555.0)
    await harness.seed.save([cached])

    records = await harness.cache.warm_start({truth.account: truth})

    assert records == {cached.account: cached}


async def test_warm_start_keeps_a_cached_record_ahead_of_the_truth(harness: Harness) -> None:
    truth = make_record("ACC-0", version=10)
    cached = make_record("ACC-0", version=14, quantity=42.0)
    await harness.seed.save([cached])

    records = await harness.cache.warm_start({truth.account: truth})

    assert records == {cached.account: cached}


async def test_warm_start_rebuilds_a_record_behind_the_truth(harness: Harness) -> None:
    truth = make_record("ACC-0", version=10)
    await harness.seed.save([make_record("ACC-0", version=9, quantity=1.0)])

    records = await harness.cache.warm_start({truth.account: truth})

    assert records == {truth.account: truth}


async def test_warm_start_rebuilds_a_record_missing_from_the_cache(harness: Harness) -> None:
    truth = make_record("ACC-0", version=10)

    records = await harness.cache.warm_start({truth.account: truth})

    assert records == {truth.account: truth}


async def test_warm_start_rebuilds_a_cached_record_the_gateway_cannot_load(
    harness: Harness,
) -> None:
    truth = make_record("ACC-0", version=10)
    stale_symbol = AccountRecord(
        AccountId("ACC-0"), "USD", 12, {}, {"GONE": PositionState(1.0, 1.0, day_open_quantity=1.0)}
    )
    await harness.seed.save([stale_symbol])
    cache = PositionCache(
        harness.store,
        name="redis",
        settings=harness.settings,
        records_of=harness.book.records_of,
        all_accounts=harness.book.all_accounts,
        metrics=Metrics(),
        problem=lambda r: "unknown instrument 'GONE'" if "GONE" in r.positions else None,
    )

    records = await cache.warm_start({truth.account: truth})

    # Ahead of the truth, but naming an instrument no longer listed: a miss.
    assert records == {truth.account: truth}


async def test_flush_after_warm_start_writes_the_rebuilt_records_and_keeps_the_current_ones(
    harness: Harness,
) -> None:
    ahead = make_record("ACC-0", version=20, quantity=7.0)
    behind_truth = make_record("ACC-1", version=11)
    truth = {
        ahead.account: make_record("ACC-0", version=10),
        behind_truth.account: behind_truth,
        AccountId("ACC-2"): make_record("ACC-2", version=12),
    }
    await harness.seed.save([ahead, make_record("ACC-1", version=3, quantity=9.0)])
    records = await harness.cache.warm_start(truth)
    harness.book.records = dict(records)

    await harness.cache.flush()

    assert await harness.cached() == {
        ahead.account: ahead,
        behind_truth.account: behind_truth,
        AccountId("ACC-2"): truth[AccountId("ACC-2")],
    }


async def test_warm_start_with_redis_down_returns_the_truth(harness: Harness) -> None:
    harness.server.stop()

    records = await harness.cache.warm_start(harness.book.records)

    assert records == harness.book.records


async def test_warm_start_with_redis_down_marks_the_cache_degraded(harness: Harness) -> None:
    harness.server.stop()

    await harness.cache.warm_start(harness.book.records)

    assert harness.cache.is_degraded


async def test_run_after_a_warm_start_with_redis_down_resyncs_every_account_once_it_is_up(
    harness: Harness,
) -> None:
    harness.server.stop()
    await harness.cache.warm_start(harness.book.records)
    task = asyncio.create_task(harness.cache.run())
    try:
        harness.server.start()

        await poll_until(
            lambda: not harness.cache.is_degraded, what="the cache recovers", timeout_s=DEADLINE_S
        )

        assert await harness.cached() == harness.book.records
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --- running ----------------------------------------------------------------


async def test_run_writes_the_accounts_marked_dirty(running: Harness) -> None:
    h = running
    changed = [h.book.fill("ACC-1", 150.0), h.book.fill("ACC-5", -20.0)]

    h.cache.mark_dirty(changed)

    await poll_until(
        lambda: _holds(h, {a: h.book.records[a] for a in changed}),
        what="dirty accounts written",
        timeout_s=DEADLINE_S,
    )


async def test_run_marks_the_cache_degraded_when_redis_dies_with_writes_pending(
    running: Harness,
) -> None:
    h = running
    h.server.stop()

    h.cache.mark_dirty([h.book.fill("ACC-2", 1.0)])

    await poll_until(
        lambda: h.cache.is_degraded, what="the cache is degraded", timeout_s=DEADLINE_S
    )


async def test_redis_killed_and_restarted_mid_run_ends_with_every_account_resynced(
    running: Harness,
) -> None:
    h = running
    # Before the outage: some changes reach Redis.
    before = [h.book.fill("ACC-0", 110.0), h.book.fill("ACC-1", 120.0)]
    h.cache.mark_dirty(before)
    await poll_until(
        lambda: _holds(h, {a: h.book.records[a] for a in before}),
        what="first changes written",
        timeout_s=DEADLINE_S,
    )
    # The outage: Redis dies; more accounts change while it is down.
    h.server.stop()
    h.cache.mark_dirty([h.book.fill("ACC-2", 130.0), h.book.fill("ACC-3", 140.0)])
    await poll_until(
        lambda: h.cache.is_degraded, what="the cache is degraded", timeout_s=DEADLINE_S
    )
    h.cache.mark_dirty([h.book.fill("ACC-0", 150.0), h.book.fill("ACC-4", -160.0)])
    # Redis comes back empty.
    h.server.start()

    await poll_until(
        lambda: not h.cache.is_degraded, what="the cache recovers", timeout_s=DEADLINE_S
    )

    # Every account, the never-dirty ACC-5..ACC-7 included, at its latest record.
    assert await h.cached() == h.book.records


async def test_redis_restarted_empty_while_idle_gets_every_account_on_the_next_write(
    running: Harness,
) -> None:
    h = running
    h.cache.mark_dirty(h.book.all_accounts())
    await poll_until(
        lambda: h.cache_holds_the_book(), what="every account written", timeout_s=DEADLINE_S
    )
    h.server.stop()
    h.server.start()

    h.cache.mark_dirty([h.book.fill("ACC-6", 66.0)])
    await poll_until(
        lambda: _holds(h, {AccountId("ACC-6"): h.book.records[AccountId("ACC-6")]}),
        what="the change written",
        timeout_s=DEADLINE_S,
    )

    # A restarted Redis may have lost everything; the docstring promises nothing is lost.
    assert await h.cached() == h.book.records


async def test_redis_restarted_empty_while_idle_is_resynced_without_waiting_for_a_write(
    running: Harness,
) -> None:
    h = running
    h.cache.mark_dirty(h.book.all_accounts())
    await poll_until(
        lambda: h.cache_holds_the_book(), what="every account written", timeout_s=DEADLINE_S
    )
    h.server.stop()
    h.server.start()

    # No fill, no write: the loss alone must bring every account back.
    await poll_until(
        lambda: h.cache_holds_the_book(), what="every account resynced", timeout_s=DEADLINE_S
    )

    assert not h.cache.is_degraded


async def test_a_cache_emptied_under_it_is_degraded_until_every_account_is_written_again() -> None:
    book = Book(make_record(f"ACC-{i}", version=i) for i in range(5))
    store = MemoryPositionStore()
    cache = PositionCache(
        store,
        name="memory",
        settings=PositionCacheSettings(),
        records_of=book.records_of,
        all_accounts=book.all_accounts,
        metrics=Metrics(),
    )
    await cache.warm_start(book.records)
    await cache.flush()
    await store.clear()  # emptied (a Redis restarted without persistence, FLUSHALL)

    await cache.check_store()
    degraded_while_empty = (cache.is_degraded, await store.load())
    await cache.flush()

    assert degraded_while_empty == (True, {})
    assert not cache.is_degraded
    assert await store.load() == book.records


async def test_two_caches_sharing_a_store_adopt_one_sync_mark_and_stay_quiet() -> None:
    book = Book(make_record(f"ACC-{i}", version=i) for i in range(3))
    store = MemoryPositionStore()
    caches = [
        PositionCache(
            store,
            name="memory",
            settings=PositionCacheSettings(),
            records_of=book.records_of,
            all_accounts=book.all_accounts,
            metrics=Metrics(),
        )
        for _ in range(2)
    ]
    for cache in caches:
        await cache.warm_start(book.records)
        await cache.flush()

    for cache in caches:
        await cache.check_store()

    assert [cache.is_degraded for cache in caches] == [False, False]


# --- metrics ----------------------------------------------------------------


async def test_degraded_gauge_reads_1_while_redis_is_down(running: Harness) -> None:
    h = running
    h.server.stop()
    h.cache.mark_dirty([h.book.fill("ACC-2", 1.0)])
    await poll_until(
        lambda: h.cache.is_degraded, what="the cache is degraded", timeout_s=DEADLINE_S
    )

    gauge = h.degraded_gauge()

    assert gauge == 1.0


async def test_degraded_gauge_reads_0_once_redis_is_back(running: Harness) -> None:
    h = running
    h.server.stop()
    h.cache.mark_dirty([h.book.fill("ACC-2", 1.0)])
    await poll_until(
        lambda: h.cache.is_degraded, what="the cache is degraded", timeout_s=DEADLINE_S
    )
    h.server.start()
    await poll_until(
        lambda: not h.cache.is_degraded, what="the cache recovers", timeout_s=DEADLINE_S
    )

    gauge = h.degraded_gauge()

    assert gauge == 0.0


async def _holds(h: Harness, expected: dict[AccountId, AccountRecord]) -> bool:
    cached = await h.cached()
    return cached is not None and all(cached.get(a) == r for a, r in expected.items())


# --- batches ----------------------------------------------------------------


async def test_flush_writes_every_account_in_batches(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(positioncache, "FLUSH_BATCH", 3)  # 8 accounts: batches of 3, 3, 2
    harness.cache.mark_dirty(harness.book.all_accounts())

    await harness.cache.flush()

    assert await harness.cache_holds_the_book()


class FailsOnce(MemoryPositionStore):
    """A memory store whose ``fail_at``-th save (1-based) raises, once."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.saves = 0
        self.fail_at = fail_at

    async def save(self, records: Sequence[AccountRecord]) -> None:
        self.saves += 1
        if self.saves == self.fail_at:
            raise StoreUnavailable("down for one write")
        await super().save(records)


async def test_flush_failing_after_a_batch_keeps_the_unwritten_accounts_dirty(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(positioncache, "FLUSH_BATCH", 3)
    book = Book(make_record(f"ACC-{i}", version=10 + i) for i in range(8))
    store = FailsOnce(fail_at=2)
    cache = PositionCache(
        store,
        name="memory",
        settings=PositionCacheSettings(),
        records_of=book.records_of,
        all_accounts=book.all_accounts,
        metrics=Metrics(),
    )
    cache.mark_dirty(book.all_accounts())

    with pytest.raises(StoreUnavailable):
        await cache.flush()
    first = await store.load()
    await cache.flush()

    assert sorted(first) == sorted(book.all_accounts())[:3]  # the first batch landed
    assert await store.load() == book.records
