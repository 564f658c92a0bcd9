"""The embedded command bus: the inbox table of the ledger's own store.

``InboxBus.submit`` commits the command to the inbox and returns: it is
durable when the API answers ``202``. Submits that arrive while a commit
is in flight are committed together by the next one (group commit): one
transaction, one fsync, for every request that waited on the disk, and no
added wait when the bus is idle. Each submit still returns only once its
own command is durable. The ledger service reads the inbox
after the cursor its last batch committed, and commits the new cursor in
the same transaction as the batch, so a command is processed exactly once
whatever crashes. ``find_command`` answers the API's reconciliation
question from the processed commands and the unread inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

import orjson

from ledger.errors import StoreUnavailable
from ledger.store import InboxMessage, LedgerStore
from orders.commands import Command, command_from_wire, command_to_wire
from orders.errors import BusUnavailable, CommandDecodeError
from orders.types import TransferId

__all__ = ["InboxBus", "InboxSource"]


class InboxBus:
    """``orders.bus.CommandBus`` and ``CommandLookup`` over the ledger store's inbox."""

    def __init__(
        self,
        store: LedgerStore,
        now_ns: Callable[[], int],
        on_committed: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._now_ns = now_ns
        # Told after each commit: an embedded ledger service in this process
        # reads the inbox at once instead of at its next idle poll.
        self.on_committed = on_committed
        # Submits waiting for the next commit, and the commit in flight (its owner is this bus).
        self._waiting: list[tuple[Sequence[str], asyncio.Future[None]]] = []
        self._in_flight: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """The store is started by its owner (the ledger service)."""

    async def stop(self) -> None:
        """Wait for the commit in flight and those queued behind it."""
        while self._in_flight is not None:
            with contextlib.suppress(Exception):
                await self._in_flight

    async def submit(self, command: Command) -> None:
        await self.submit_raw([orjson.dumps(command_to_wire(command)).decode()])

    async def submit_raw(self, wires: Sequence[str]) -> None:
        """Commit already-encoded commands (a submit, or a redrive of dead letters)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((wires, future))
        if self._in_flight is None:
            self._commit_next()
        await future

    def _commit_next(self) -> None:
        batch, self._waiting = self._waiting, []
        if not batch:
            self._in_flight = None
            return
        wires = [wire for part, _ in batch for wire in part]
        commit = asyncio.get_running_loop().create_task(
            self._store.inbox_append(wires, self._now_ns())
        )
        commit.add_done_callback(lambda done: self._committed(done, batch))
        self._in_flight = commit

    def _committed(
        self, commit: asyncio.Task[None], batch: list[tuple[Sequence[str], asyncio.Future[None]]]
    ) -> None:
        error = None if commit.cancelled() else commit.exception()
        if isinstance(error, StoreUnavailable):
            wrapped = BusUnavailable(f"the ledger inbox is unavailable: {error}")
            wrapped.__cause__ = error
            error = wrapped
        for _, future in batch:
            if future.done():  # its submitter was cancelled; the command is committed anyway
                continue
            if commit.cancelled():
                future.cancel()
            elif error is not None:
                future.set_exception(error)
            else:
                future.set_result(None)
        if error is None and not commit.cancelled() and self.on_committed is not None:
            self.on_committed()
        self._commit_next()

    async def find_command(self, transfer_id: TransferId) -> Command | None:
        try:
            wire = await self._store.find_command(transfer_id)
        except StoreUnavailable as e:
            raise BusUnavailable(f"the ledger inbox is unavailable: {e}") from e
        if wire is None:
            return None
        try:
            return command_from_wire(orjson.loads(wire))
        except (orjson.JSONDecodeError, CommandDecodeError):
            return None


class InboxSource:
    """The ledger service's command source over the inbox (the embedded default)."""

    name = "inbox"
    polls = True

    def __init__(self, store: LedgerStore) -> None:
        self._store = store

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def fetch(self, max_records: int) -> tuple[list[bytes], object] | None:
        """The next messages after the committed cursor, and the cursor that covers them."""
        messages: list[InboxMessage] = await self._store.inbox_read(max_records)
        if not messages:
            return None
        return [m.wire.encode() for m in messages], messages[-1].inbox_id

    def cursor(self, position: object) -> int | None:
        """The inbox cursor the batch commits with its entries."""
        assert isinstance(position, int)
        return position

    async def acknowledge(self, position: object) -> None:
        """Nothing to do: the cursor was committed with the batch."""
