"""The outbox relay's backlog: 0 once caught up, the store's count while the sinks fail."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ledger.journal import EventDraft
from ledger.relay import OutboxRelay
from ledger.sqlite import SqliteLedgerStore
from ledger.store import DeadLetter, OutboxEvent
from orders.types import AccountId
from tests.harness import poll_until
from tests.ledger_harness import deposit_batch

ACCOUNT = AccountId("ACC-1")


class Sink:
    """An event sink that refuses while ``is_down`` (as a broker outage would)."""

    def __init__(self) -> None:
        self.is_down = True
        self.published: list[int] = []

    async def publish(self, events: Sequence[OutboxEvent]) -> None:
        if self.is_down:
            raise OSError("sink down")
        self.published += [e.event_seq for e in events]

    async def publish_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        pass


async def test_backlog_counts_unsent_events_while_the_sink_fails_then_drops_to_zero(tmp_path):
    store = SqliteLedgerStore(str(tmp_path / "ledger.db"))
    await store.start()
    batch = deposit_batch(ACCOUNT, 100, "t1", open_client=True)
    batch.events += [EventDraft(f"e{i}", ACCOUNT, "payment", {}) for i in range(3)]
    await store.commit(batch)
    sink = Sink()
    relay = OutboxRelay(store, [sink], lambda: 1, batch_size=2, interval_ms=10)
    task = asyncio.create_task(relay.run())
    try:
        await poll_until(lambda: relay.backlog == 3, what="the backlog to be counted")
        sink.is_down = False
        relay.wake()
        await poll_until(lambda: relay.backlog == 0, what="the relay to catch up")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.stop()

    assert sink.published == [1, 2, 3]
