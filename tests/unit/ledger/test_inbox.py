"""Group commit of the embedded inbox, on a real SQLite ledger file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import orjson
import pytest

from ledger.inbox import InboxBus
from ledger.sqlite import SqliteLedgerStore
from orders.errors import BusUnavailable

T0 = 1_800_000_000 * 1_000_000_000


class CountingStore(SqliteLedgerStore):
    """The real SQLite store, recording the size of every inbox commit."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.appends: list[int] = []

    async def inbox_append(self, wires: Sequence[str], ts_ns: int) -> None:
        self.appends.append(len(wires))
        await super().inbox_append(wires, ts_ns)


@pytest.fixture
async def store(tmp_path) -> AsyncIterator[CountingStore]:
    store = CountingStore(tmp_path / "ledger.db")
    await store.start()
    yield store
    await store.stop()


def wire(n: int) -> str:
    return orjson.dumps({"n": n}).decode()


async def inbox_numbers(store: CountingStore) -> list[int]:
    return [orjson.loads(m.wire)["n"] for m in await store.inbox_read(1_000)]


async def test_a_lone_submit_is_committed_by_the_time_it_returns(store):
    bus = InboxBus(store, lambda: T0)

    await bus.submit_raw([wire(1)])

    assert await inbox_numbers(store) == [1]
    assert store.appends == [1]


async def test_submits_arriving_during_a_commit_share_the_next_one(store):
    bus = InboxBus(store, lambda: T0)

    await asyncio.gather(*(bus.submit_raw([wire(n)]) for n in range(50)))

    # The first commits alone; the 49 that queued behind it go in one transaction.
    assert store.appends == [1, 49]
    assert await inbox_numbers(store) == list(range(50))


async def test_every_submitter_of_a_failed_commit_gets_bus_unavailable(store):
    bus = InboxBus(store, lambda: T0)
    await store.stop()

    results = await asyncio.gather(
        *(bus.submit_raw([wire(n)]) for n in range(3)), return_exceptions=True
    )

    assert all(isinstance(r, BusUnavailable) for r in results), results


async def test_a_cancelled_submitter_leaves_the_others_committed(store):
    bus = InboxBus(store, lambda: T0)
    first = asyncio.ensure_future(bus.submit_raw([wire(0)]))
    await asyncio.sleep(0)  # the first submit's commit is in flight
    queued = [asyncio.ensure_future(bus.submit_raw([wire(n)])) for n in (1, 2)]
    await asyncio.sleep(0)
    queued[0].cancel()

    await asyncio.gather(first, queued[1])
    await bus.stop()

    assert queued[0].cancelled()
    # A command handed over before the cancel is committed all the same (as one
    # cancelled while the disk wrote it always was); nothing is lost or doubled.
    assert await inbox_numbers(store) == [0, 1, 2]


async def test_each_commit_is_told_and_a_failed_one_is_not(store):
    told: list[int] = []
    bus = InboxBus(store, lambda: T0, on_committed=lambda: told.append(len(store.appends)))

    await asyncio.gather(*(bus.submit_raw([wire(n)]) for n in range(5)))
    assert told == [1, 2]  # once per commit: the first alone, the four behind it together

    await store.stop()
    with pytest.raises(BusUnavailable):
        await bus.submit_raw([wire(9)])
    assert told == [1, 2]
