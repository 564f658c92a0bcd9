"""Submit-to-fill latency: match accepted orders to their first fill event.

The storm registers each ``202`` (``order_id`` and its scheduled send time);
a watcher reports each ``fill`` event it sees (the ``orders`` WebSocket
channel, or the ledger's Kafka ``orders.events`` topic). Latency is the
event's arrival minus the scheduled send, both on this process's monotonic
clock. A fill can arrive before its ``202`` was read (the ledger is fast,
the answer was queued): it waits in ``early`` until its order registers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

import orjson

from load_tests.stats import Histogram

__all__ = ["FillMatcher", "KafkaFillWatcher", "WsFillWatcher"]


class FillMatcher:
    """Pending orders, fills that came early, and the latency histogram."""

    def __init__(self) -> None:
        self.pending: dict[str, int] = {}
        self.early: dict[str, int] = {}
        self.latency = Histogram()
        self.filled = 0
        self.rejected = 0
        self.last_fill_ns = 0
        self.settled = asyncio.Event()

    def accepted(self, order_id: str, scheduled_ns: int) -> None:
        """An order was accepted (the storm's hook)."""
        seen = self.early.pop(order_id, None)
        if seen is None:
            self.pending[order_id] = scheduled_ns
        else:
            self._record(seen - scheduled_ns, seen)

    def fill(self, order_id: str, now_ns: int) -> None:
        """A fill event of ``order_id`` arrived at ``now_ns``; later fills of it are ignored."""
        scheduled = self.pending.pop(order_id, None)
        if scheduled is not None:
            self._record(now_ns - scheduled, now_ns)
        elif order_id not in self.early:
            self.early[order_id] = now_ns

    def rejected_order(self, order_id: str) -> None:
        """The ledger refused ``order_id``: it will never fill."""
        if self.pending.pop(order_id, None) is not None:
            self.rejected += 1
            self._check()

    def _record(self, latency_ns: int, now_ns: int) -> None:
        self.latency.record_ns(latency_ns)
        self.filled += 1
        self.last_fill_ns = now_ns
        self._check()

    def _check(self) -> None:
        if not self.pending:
            self.settled.set()

    async def wait_settled(self, timeout_s: float) -> None:
        """Wait until every accepted order filled or was rejected, or ``timeout_s`` passed."""
        self._check()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self.pending:
                    self.settled.clear()
                    await self.settled.wait()


class KafkaFillWatcher:
    """Read the ledger's events topic from its end; feed fills to the matcher."""

    def __init__(self, bootstrap: str, topic: str, matcher: FillMatcher) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._matcher = matcher
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, enable_auto_commit=False, group_id=None
        )
        await consumer.start()
        partitions = consumer.partitions_for_topic(self._topic) or {0}
        assigned = [TopicPartition(self._topic, p) for p in partitions]
        consumer.assign(assigned)
        await consumer.seek_to_end(*assigned)
        for partition in assigned:
            await consumer.position(partition)
        self._task = asyncio.get_running_loop().create_task(self._run(consumer))

    async def _run(self, consumer: Any) -> None:
        matcher = self._matcher
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=20, max_records=5_000)
                now = time.monotonic_ns()
                for records in batches.values():
                    for record in records:
                        _route(orjson.loads(record.value), "type", matcher, now)
        finally:
            await consumer.stop()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class WsFillWatcher:
    """Subscribe to the ``orders`` channel of the accounts; feed fills to the matcher."""

    def __init__(
        self, ws_url: str, token: str, accounts: Sequence[str], matcher: FillMatcher
    ) -> None:
        self._url = f"{ws_url}?token={token}"
        self._accounts = list(accounts)
        self._matcher = matcher
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.error: str | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        async with asyncio.timeout(30):
            await self._ready.wait()
        if self.error is not None:
            raise RuntimeError(f"the orders channel: {self.error}")

    async def _run(self) -> None:
        from websockets.asyncio.client import connect

        matcher = self._matcher
        try:
            async with connect(self._url, max_size=None, compression=None) as ws:
                subscribe = {
                    "op": "subscribe",
                    "channel": "orders",
                    "accounts": self._accounts,
                    "id": 1,
                }
                await ws.send(orjson.dumps(subscribe).decode())  # a text frame
                snapshots = 0
                async for frame in ws:
                    now = time.monotonic_ns()
                    decoded = orjson.loads(frame)
                    # A frame holds one message, or an array of them (docs/protocol.md).
                    for message in decoded if isinstance(decoded, list) else [decoded]:
                        kind = message.get("type")
                        if kind == "update":
                            _route(message, "event", matcher, now)
                        elif kind == "snapshot":
                            snapshots += 1
                            if snapshots == len(self._accounts):
                                self._ready.set()
                        elif kind == "error":
                            self.error = str(message.get("code"))
                            self._ready.set()
                            return
        except Exception as e:  # the watcher's task boundary: the run reports it
            self.error = repr(e)
            self._ready.set()
            raise

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _route(event: dict[str, Any], kind_field: str, matcher: FillMatcher, now_ns: int) -> None:
    kind = event.get(kind_field)
    order_id = event.get("order_id")
    if not isinstance(order_id, str):
        return
    if kind == "fill":
        matcher.fill(order_id, now_ns)
    elif kind == "order" and event.get("status") == "rejected":
        matcher.rejected_order(order_id)
