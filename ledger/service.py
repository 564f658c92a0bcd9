"""The ledger service: consume commands in batches, run the sagas, commit, relay events.

One service runs embedded in ``tickgate run`` (inbox source, SQLite store,
in-process listeners) or standalone (Kafka source and sink, PostgreSQL).
Its loops:

- **consume**: take up to ``batch_max_commands`` messages from the source,
  decode them (undecodable ones become dead letters), drop the transfer ids
  the store knows (a redelivery is a success, not an error), load the
  accounts they name, execute the batch (``saga.Executor``) and commit it
  in one database transaction, then acknowledge the source (Kafka offsets
  are committed only now; the inbox cursor went in the transaction).
- **match**: ``on_book_changed(changed_ix)`` marks instruments; resting
  orders on them are re-checked in the next loop step, as one batch.
- **rail**: every pending withdrawal is resolved with the payment rail:
  ``status`` first, ``send`` only when the rail has never seen it.
- **relay**: the outbox relay publishes committed events.

Every commit goes through one lock, so batches never interleave. A commit
that fails because the store is down is retried with backoff (nothing was
acknowledged, nothing is lost); one that fails on a stale version or a
duplicate transfer is re-executed against fresh state; one the database
refuses (a floor) is split until the refused command is alone, and that
command is dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from ledger.accounts import client_state
from ledger.errors import (
    DuplicateTransfer,
    FloorViolation,
    LedgerError,
    RailError,
    StaleState,
    StoreUnavailable,
    UnbalancedTransaction,
)
from ledger.journal import Batch, DeadLetterDraft
from ledger.rail import PaymentRail, RailStatus
from ledger.relay import EventSink, ListenerSink, OutboxRelay
from ledger.saga import (
    DayRoll,
    Decoded,
    Executor,
    Input,
    Plan,
    RailOutcome,
    SeedAccount,
    TickMatch,
    Undecodable,
)
from ledger.seed import seed_inputs
from ledger.state import LedgerState
from ledger.store import LedgerStore, OutboxEvent
from ledger.venue import ExecutionSettings
from orders.commands import CancelOrder, command_from_wire
from orders.errors import CommandDecodeError
from orders.types import AccountId, PaymentId
from orders.views import FINAL_ORDER_STATUSES
from portfolio.store import AccountRecord
from pricing.instruments import InstrumentMaster
from pricing.pricebook import PriceBook

__all__ = ["CommandSource", "LedgerService", "LedgerServiceSettings", "decode_message"]

logger = logging.getLogger(__name__)
_KAFKA_IDLE_S = 0.005  # after an empty fetch that returned at once


class CommandSource(Protocol):
    """Where commands come from (port): ``ledger.inbox.InboxSource``, ``ledger.kafka``."""

    name: str
    # True when an empty fetch returns at once (the inbox): the service then
    # waits for a wake or ``idle_poll_ms``. False when fetch waits itself (Kafka).
    polls: bool

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def fetch(self, max_records: int) -> tuple[list[bytes], object] | None:
        """The next messages and an opaque position covering them, or None when idle."""
        ...

    def cursor(self, position: object) -> int | None:
        """The inbox cursor to commit with the batch (None for Kafka)."""
        ...

    async def acknowledge(self, position: object) -> None:
        """Called after the batch committed (Kafka commits its offsets here)."""
        ...


@dataclass(frozen=True, slots=True)
class LedgerServiceSettings:
    """Settings of the ledger service (``TICKGATE_LEDGER_*``, docs/ledger.md)."""

    batch_max_commands: int = 1000
    idle_poll_ms: int = 250
    relay_batch_size: int = 1000
    relay_interval_ms: int = 200
    rail_poll_interval_ms: int = 100
    rail_timeout_ms: int = 2000
    retry_backoff_initial_ms: int = 50
    retry_backoff_max_ms: int = 2000
    partition_months_ahead: int = 2
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)
    is_relay_enabled: bool = True
    """False when another process relays the outbox (``python -m ledger --role relay``)."""

    def __post_init__(self) -> None:
        for name in (
            "batch_max_commands",
            "idle_poll_ms",
            "relay_batch_size",
            "relay_interval_ms",
            "rail_poll_interval_ms",
            "rail_timeout_ms",
            "retry_backoff_initial_ms",
            "retry_backoff_max_ms",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, was {getattr(self, name)}")


def decode_message(raw: bytes, source: str) -> Decoded | Undecodable:
    """Decode one message of the command bus."""
    text = raw.decode("utf-8", errors="replace")
    try:
        wire = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return Undecodable(text, "bad_json", f"not JSON: {e}", source)
    try:
        return Decoded(command_from_wire(wire), text, source)
    except CommandDecodeError as e:
        return Undecodable(text, e.reason, e.message, source)


class LedgerService:
    """The ledger service (see the module docstring); ``start``/``stop`` or ``async with``."""

    def __init__(
        self,
        store: LedgerStore,
        source: CommandSource,
        master: InstrumentMaster,
        book: PriceBook,
        rail: PaymentRail,
        *,
        settings: LedgerServiceSettings | None = None,
        sinks: Sequence[EventSink] = (),
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.settings = settings or LedgerServiceSettings()
        self.store = store
        self.source = source
        self.master = master
        self.book = book
        self.rail = rail
        self.now_ns = now_ns
        self.state = LedgerState()
        self.listeners = ListenerSink()
        self._executor = Executor(master, book, self.settings.execution)
        self.relay = OutboxRelay(
            store,
            [*sinks, self.listeners],
            now_ns,
            batch_size=self.settings.relay_batch_size,
            interval_ms=self.settings.relay_interval_ms,
        )
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._match_wake = asyncio.Event()
        self._rail_wake = asyncio.Event()
        self._changed: set[int] = set()
        self._in_flight: set[str] = set()
        self._rail_tasks: set[asyncio.Task[None]] = set()
        self.commands_processed = 0
        self.batches_committed = 0
        self._commit_listeners: list[Callable[[Batch], None]] = []

    async def __aenter__(self) -> LedgerService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Load open orders and pending payments, then start the loops (the store is started
        by the caller, which owns it)."""
        await self.store.ensure_partitions(self.now_ns(), self.settings.partition_months_ahead)
        await self.reload()
        await self.source.start()
        self._tasks = [
            asyncio.create_task(self._supervise("consume", self._consume), name="ledger-consume"),
            asyncio.create_task(self._supervise("match", self._match), name="ledger-match"),
            asyncio.create_task(self._supervise("rail", self._rail), name="ledger-rail"),
            asyncio.create_task(
                self._supervise("partitions", self._partitions), name="ledger-partitions"
            ),
        ]
        if self.settings.is_relay_enabled:
            self._tasks.append(
                asyncio.create_task(self._supervise("relay", self.relay.run), name="ledger-relay")
            )

    async def stop(self) -> None:
        """Cancel the loops and wait for them; in-flight batches are either committed or not."""
        tasks = [*self._tasks, *self._rail_tasks]
        self._tasks = []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.source.stop()

    async def reload(self) -> None:
        """Forget the cache and read open orders and pending payments from the store."""
        self.state = LedgerState()
        for row in await self.store.open_orders():
            self.state.open_orders[row.record.order_id] = row
        for payment in await self.store.pending_payments():
            self.state.pending_payments[payment.record.payment_id] = payment

    def add_event_listener(self, listener: Callable[[Sequence[OutboxEvent]], None]) -> None:
        """Call ``listener`` with each relayed batch of events, in order (embedded use)."""
        self.listeners.add(listener)

    def add_commit_listener(self, listener: Callable[[Batch], None]) -> None:
        """Call ``listener`` with each batch once it is committed (for metrics)."""
        self._commit_listeners.append(listener)

    def wake(self) -> None:
        """New commands are in the inbox: fetch now rather than at the next poll."""
        self._wake.set()

    def on_book_changed(self, changed_ix: Iterable[int]) -> None:
        """A PriceBook listener: re-check the resting orders on these instruments."""
        if not self.state.open_orders:
            return
        self._changed.update(int(ix) for ix in changed_ix)
        self._match_wake.set()

    async def roll_day(self) -> Plan:
        """Expire what rests with time in force ``day`` (call at the day roll)."""
        return await self.process([DayRoll()])

    async def seed(self, records: Iterable[AccountRecord], *, ts_event: int) -> Plan:
        """Post seed accounts as deposits and fills; accounts that exist are skipped."""
        return await self.process(seed_inputs(records, self.master, ts_event=ts_event))

    # --- the commit path --------------------------------------------------------------------

    async def process(self, inputs: Sequence[Input], cursor: int | None = None) -> Plan:
        """Execute and commit ``inputs`` as one batch (retrying as the module docstring says)."""
        async with self._lock:
            return await self._commit(list(inputs), cursor)

    async def _commit(self, inputs: list[Input], cursor: int | None) -> Plan:
        backoff_s = self.settings.retry_backoff_initial_ms / 1000
        conflicts = 0
        while True:
            try:
                todo = await self._prepare(inputs)
                plan = self._executor.execute(todo, self.state, self.now_ns())
                plan.batch.inbox_cursor = cursor
                if not plan.batch.is_empty:
                    await self.store.commit(plan.batch)
                break
            except (StaleState, DuplicateTransfer) as e:
                conflicts += 1
                logger.info(
                    "ledger batch conflicted (%s); re-executing",
                    e,
                    extra={"event": "ledger.batch_conflicted"},
                )
                self.state.forget_clients()
                if conflicts > 5:
                    raise
            except (FloorViolation, UnbalancedTransaction) as e:
                self.state.forget_clients()
                return await self._split(inputs, cursor, e)
            except StoreUnavailable as e:
                logger.warning(
                    "ledger store unavailable (%s); retrying in %.2f s",
                    e,
                    backoff_s,
                    extra={"event": "ledger.store_unavailable"},
                )
                self.state.forget_clients()
                await asyncio.sleep(backoff_s * (0.5 + random.random()))
                backoff_s = min(backoff_s * 2, self.settings.retry_backoff_max_ms / 1000)
        self.state.apply(plan.clients, plan.orders, plan.payments)
        self.batches_committed += 1
        self.commands_processed += len(plan.batch.commands)
        if not plan.batch.is_empty:
            for listener in self._commit_listeners:
                listener(plan.batch)
        self.relay.wake()
        if plan.withdrawals:
            self._rail_wake.set()
        return plan

    async def _split(self, inputs: list[Input], cursor: int | None, error: LedgerError) -> Plan:
        # The database refused the batch: halve it until the refused input is alone.
        if len(inputs) > 1:
            half = len(inputs) // 2
            await self._commit(inputs[:half], None)
            return await self._commit(inputs[half:], cursor)
        item = inputs[0]
        logger.error(
            "the ledger store refused an input: %s", error, extra={"event": "ledger.input_refused"}
        )
        if not isinstance(item, Decoded):
            raise error
        return await self._dead_letter(item, cursor, str(error), item.command.account_id)

    async def _dead_letter(
        self, item: Decoded, cursor: int | None, detail: str, account: AccountId
    ) -> Plan:
        plan = self._executor.execute([], self.state, self.now_ns())
        plan.batch.dead_letters.append(
            DeadLetterDraft(
                item.command.transfer_id, account, item.wire, "store_refused", detail, item.source
            )
        )
        plan.batch.inbox_cursor = cursor
        await self.store.commit(plan.batch)
        return plan

    async def _prepare(self, inputs: list[Input]) -> list[Input]:
        # Drop known transfers, load the clients the inputs name, find cancelled orders.
        ids = [i.command.transfer_id for i in inputs if isinstance(i, Decoded)]
        known = await self.store.known_transfers(ids) if ids else set()
        todo = [
            i for i in inputs if not (isinstance(i, Decoded) and i.command.transfer_id in known)
        ]
        names = {i.command.account_id for i in todo if isinstance(i, Decoded)}
        names |= {i.account_id for i in todo if isinstance(i, SeedAccount)}
        names |= (
            {r.record.account_id for r in self.state.open_orders.values()}
            if any(isinstance(i, TickMatch | DayRoll) for i in todo)
            else set()
        )
        names |= (
            {p.record.account_id for p in self.state.pending_payments.values()}
            if any(isinstance(i, RailOutcome) for i in todo)
            else set()
        )
        missing = [a for a in names if a not in self.state.clients]
        if missing:
            for account, stored in (await self.store.load_clients(missing)).items():
                self.state.clients[account] = client_state(stored, self.master)
        resolved: list[Input] = []
        for item in todo:
            if (
                isinstance(item, Decoded)
                and isinstance(item.command, CancelOrder)
                and item.command.order_id not in self.state.open_orders
            ):
                target = await self.store.get_order(item.command.order_id)
                item = Decoded(item.command, item.wire, item.source, target)
            resolved.append(item)
        return resolved

    # --- loops ------------------------------------------------------------------------------

    async def _supervise(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception(
                    "the ledger %s loop crashed; restarting in 1 s",
                    name,
                    extra={"event": "ledger.loop_crashed"},
                )
                await asyncio.sleep(1.0)

    async def _consume(self) -> None:
        s = self.settings
        backoff_s = s.retry_backoff_initial_ms / 1000
        while True:
            try:
                fetched = await self.source.fetch(s.batch_max_commands)
            except Exception as e:
                logger.warning(
                    "command source %s unavailable: %s",
                    self.source.name,
                    e,
                    extra={"event": "ledger.source_unavailable"},
                )
                await asyncio.sleep(backoff_s * (0.5 + random.random()))
                backoff_s = min(backoff_s * 2, s.retry_backoff_max_ms / 1000)
                continue
            backoff_s = s.retry_backoff_initial_ms / 1000
            if fetched is None:
                if not self.source.polls:
                    # Kafka waited in its fetch, unless it had nothing assigned
                    # (a group rejoin): never spin on the loop the rejoin needs.
                    await asyncio.sleep(_KAFKA_IDLE_S)
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(s.idle_poll_ms / 1000):
                        await self._wake.wait()
                continue
            messages, position = fetched
            inputs: list[Input] = [decode_message(m, self.source.name) for m in messages]
            await self.process(inputs, self.source.cursor(position))
            try:
                await self.source.acknowledge(position)
            except Exception as e:
                # Committed already: a redelivery is deduped by transfer id.
                logger.warning(
                    "acknowledging a committed batch failed: %s",
                    e,
                    extra={"event": "ledger.acknowledge_failed"},
                )

    async def _match(self) -> None:
        while True:
            await self._match_wake.wait()
            self._match_wake.clear()
            changed, self._changed = self._changed, set()
            symbols = {self.master.symbols[ix] for ix in changed if 0 <= ix < len(self.master)}
            if any(r.record.symbol in symbols for r in self.state.open_orders.values()):
                await self.process([TickMatch(frozenset(changed))])

    async def _rail(self) -> None:
        while True:
            for payment in list(self.state.pending_payments.values()):
                payment_id = payment.record.payment_id
                if payment_id in self._in_flight:
                    continue
                self._in_flight.add(payment_id)
                task = asyncio.create_task(self._settle(payment_id))
                self._rail_tasks.add(task)
                task.add_done_callback(self._rail_tasks.discard)
            self._rail_wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.rail_poll_interval_ms / 1000):
                    await self._rail_wake.wait()

    async def _settle(self, payment_id: str) -> None:
        try:
            payment = self.state.pending_payments.get(PaymentId(payment_id))
            if payment is None:
                return
            record = payment.record
            timeout_s = self.settings.rail_timeout_ms / 1000
            try:
                async with asyncio.timeout(timeout_s):
                    status = await self.rail.status(record.transfer_id)
                if status is RailStatus.NOT_FOUND:
                    async with asyncio.timeout(timeout_s):
                        status = await self.rail.send(
                            record.transfer_id,
                            record.account_id,
                            payment.amount_minor,
                            record.currency,
                        )
            except (RailError, TimeoutError) as e:
                logger.info(
                    "payment %s: rail outcome unknown (%s); will ask again",
                    payment_id,
                    e,
                    extra={"event": "ledger.rail_outcome_unknown"},
                )
                return
            if status in (RailStatus.SETTLED, RailStatus.REJECTED):
                await self.process(
                    [RailOutcome(record.payment_id, status is RailStatus.SETTLED, None)]
                )
        except Exception:
            logger.exception(
                "settling payment %s failed",
                payment_id,
                extra={"event": "ledger.settlement_failed"},
            )
        finally:
            self._in_flight.discard(payment_id)

    async def _partitions(self) -> None:
        while True:
            await asyncio.sleep(3600)
            await self.store.ensure_partitions(self.now_ns(), self.settings.partition_months_ahead)

    @property
    def open_order_count(self) -> int:
        return sum(
            1
            for r in self.state.open_orders.values()
            if r.record.status not in FINAL_ORDER_STATUSES
        )
