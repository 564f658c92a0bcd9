"""The order path of a running gateway: the ledger store and service, order entry, events.

``Trading.open`` starts the ledger store and, with the embedded ledger,
posts the seed accounts (the positions file or the demo accounts) through
the ledger on its first start, so every account's numbers take the real
path. ``load_accounts`` then reads the accounts from the ledger: they are
the truth the position cache and the engine start from. ``attach`` wires
the rest around the running accounts (order entry with its risk view, the
``orders`` channel, the routing of ledger events), and ``start`` starts
the bus, the idempotency store, the ledger service and, with a separate
ledger, the consumer of its Kafka events.

Embedded (the default): the command bus is the ledger store's inbox, the
ledger service runs in this process on the same PriceBook, and its outbox
relay hands events to ``LedgerEvents`` in process. Split: commands go to
Kafka ``orders.submitted``, a ``tickgate ledger run`` process consumes them,
and its events come back on ``orders.events``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import orjson

from gateway.accounts.dayroll import day_start_ns
from gateway.accounts.runtime import Accounts
from gateway.audit import EntryAudit, both
from gateway.backoff import Backoff
from gateway.channels.orders import OrdersChannel
from gateway.clock import Clock
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.tracing import NO_TRACER, Tracer
from gateway.trading.accountview import EngineAccountView
from gateway.trading.config import (
    bank_settings,
    entry_settings,
    kafka_bus_settings,
    ledger_kafka_settings,
    ledger_service_settings,
)
from gateway.trading.events import LedgerEvents
from gateway.trading.kafkaevents import KafkaLedgerEvents
from gateway.trading.ledgerreads import API_OPENAPI
from ledger.accounts import load_accounts
from ledger.bank import SimulatedBank
from ledger.inbox import InboxBus, InboxSource
from ledger.journal import Batch, OrderRow
from ledger.relay import EventSink
from ledger.service import CommandSource, LedgerService
from ledger.store import LedgerStore
from orders import events as entry_events
from orders.bus import CommandBus
from orders.commands import Command
from orders.entry import OrderEntry
from orders.idempotency import IdempotencyStore
from orders.ports import EntryPorts
from orders.views import OrderRecord
from portfolio.store import AccountRecord
from portfolio.types import AccountId
from pricing.instruments import InstrumentMaster
from pricing.pricebook import PriceBook
from pricing.types import I64Array1D

__all__ = [
    "LedgerParts",
    "Trading",
    "build_ledger_service",
    "build_ledger_store",
    "order_wire",
    "trace_commits",
]

logger = logging.getLogger(__name__)


def build_ledger_store(settings: Settings) -> LedgerStore:
    """The ledger store the settings name: PostgreSQL, or the SQLite file (the default)."""
    location = settings.ledger.store_location(settings.data_dir)
    if settings.ledger.is_postgres:
        from ledger.postgres import PostgresLedgerStore

        return PostgresLedgerStore(location)
    from ledger.sqlite import SqliteLedgerStore

    return SqliteLedgerStore(location)


def order_wire(record: OrderRecord, trace_id: str | None = None) -> dict[str, object]:
    """An order's state as the ``orders`` channel and the ledger's events carry it."""
    return {
        "account_id": record.account_id,
        "order_id": record.order_id,
        "transfer_id": record.transfer_id,
        "client_order_id": record.client_order_id,
        "symbol": record.symbol,
        "side": record.side.value,
        "quantity": _text(record.quantity),
        "order_type": record.order_type.value,
        "limit_price": None if record.limit_price is None else _text(record.limit_price),
        "time_in_force": record.time_in_force.value,
        "status": record.status.value,
        "filled_quantity": _text(record.filled_quantity),
        "average_price": None if record.average_price is None else _text(record.average_price),
        "reason": record.reason,
        "ts_accepted": record.ts_accepted,
        "ts_event": record.ts_updated,
        "trace_id": trace_id,
    }


def _text(value: object) -> str:
    return format(value, "f")


@dataclass(slots=True)
class Trading:
    """The order path's parts; see the module docstring."""

    settings: Settings
    master: InstrumentMaster
    book: PriceBook
    clock: Clock
    metrics: Metrics
    store: LedgerStore
    bus: CommandBus
    idempotency: IdempotencyStore
    channel: OrdersChannel
    tracer: Tracer = NO_TRACER
    service: LedgerService | None = None
    ledger: LedgerParts | None = None
    entry: OrderEntry | None = None
    events: LedgerEvents | None = None
    kafka_events: KafkaLedgerEvents | None = None
    _tasks: set[asyncio.Task[object]] = field(default_factory=set)

    @classmethod
    def build(
        cls,
        settings: Settings,
        master: InstrumentMaster,
        book: PriceBook,
        *,
        clock: Clock,
        metrics: Metrics,
        epoch: str,
        tracer: Tracer = NO_TRACER,
    ) -> Trading:
        """Build the parts the settings name (nothing is started)."""
        store = build_ledger_store(settings)
        orders = settings.orders
        bus: CommandBus
        if orders.bus == "kafka":
            from orders.kafka import KafkaCommandBus

            bus = KafkaCommandBus(kafka_bus_settings(orders, settings.kafka))
        else:
            bus = InboxBus(store, clock.now_ns)
        idempotency = _build_idempotency(settings)
        trading = cls(
            settings=settings,
            master=master,
            book=book,
            clock=clock,
            metrics=metrics,
            store=store,
            bus=bus,
            idempotency=idempotency,
            channel=OrdersChannel(epoch=epoch, history=orders.channel_history),
            tracer=tracer,
        )
        if settings.ledger.embedded:
            trading.ledger = build_ledger_service(settings, master, book, store, clock)
            trading.service = trading.ledger.service
            if isinstance(bus, InboxBus):  # same process: no need to wait for a poll
                bus.on_committed = trading.service.wake
            _expose_ledger(trading.service, metrics)
            trace_commits(trading.service, tracer, clock.now_ns)
        return trading

    # --- startup ----------------------------------------------------------------------

    async def open(self, seeds: Callable[[], Mapping[AccountId, AccountRecord]]) -> None:
        """Start the ledger store; with the embedded ledger, post the seed accounts it lacks."""
        await self.store.start()
        if self.service is None:
            return
        now_ns = self.clock.now_ns()
        # Seeds post entries: their month's partition must exist first (PostgreSQL).
        await self.store.ensure_partitions(now_ns, self.settings.ledger.partition_months_ahead)
        # Seeds are stamped one second before the day starts, so they open the day.
        start_ns = day_start_ns(self.settings.portfolio.day_roll_minute(), now_ns)
        plan = await self.service.seed(seeds().values(), ts_event=start_ns - 1_000_000_000)
        created = len(plan.batch.clients)
        if created:
            logger.info(
                "ledger: %d seed account(s) posted", created, extra={"event": "ledger.seeded"}
            )

    async def load_accounts(self) -> dict[AccountId, AccountRecord]:
        """Every account as the ledger states it, versioned by its last ledger seq."""
        now_ns = self.clock.now_ns()
        start_ns = day_start_ns(self.settings.portfolio.day_roll_minute(), now_ns)
        snapshot = await load_accounts(self.store, self.master, day_start_ns=start_ns)
        records = {a: account.to_record() for a, account in snapshot.accounts.items()}
        logger.info(
            "ledger: %d accounts loaded at ledger seq %d",
            len(records),
            snapshot.ledger_seq,
            extra={"event": "ledger.accounts_loaded"},
        )
        return records

    async def attach(self, accounts: Accounts | None) -> None:
        """Wire order entry, the ``orders`` channel and the event routing around ``accounts``."""
        if accounts is not None:
            view = EngineAccountView(accounts.positions, self.book, self.master)
            ports = EntryPorts(
                idempotency=self.idempotency,
                bus=self.bus,
                lookup=InboxBus(self.store, self.clock.now_ns),
                orders=self.store,
                accounts=view,
            )
            self.entry = OrderEntry(
                self.master,
                ports,
                entry_settings(self.settings.api, self.settings.orders),
                on_event=both(
                    _EntryEventLog(self.metrics, self.tracer, self.clock.now_ns),
                    EntryAudit(self.clock),
                ),
                encode=orjson.dumps,
                openapi=API_OPENAPI,
            )
        rows: list[OrderRow] = await self.store.open_orders()
        self.channel.load_open_orders(order_wire(row.record, row.trace_id) for row in rows)
        entry = self.entry
        self.events = LedgerEvents(
            self.master,
            accounts=accounts,
            channel=self.channel,
            note_transfer=None if entry is None else entry.note_ledger_event,
            now_ns=self.clock.now_ns,
            metrics=self.metrics,
            tracer=self.tracer,
        )
        if self.service is not None:
            self.service.add_event_listener(self.events.on_outbox)
        else:
            kafka = self.settings.kafka
            assert kafka.bootstrap is not None  # Settings checks it without an embedded ledger
            self.kafka_events = KafkaLedgerEvents(
                kafka.bootstrap,
                self.settings.orders.events_topic,
                self.settings.orders.events_group_id,
                self.events,
                request_timeout_ms=kafka.request_timeout_ms,
                backoff=Backoff(
                    kafka.retry_backoff_initial_ms / 1000, kafka.retry_backoff_max_ms / 1000
                ),
            )

    async def start(self) -> None:
        """Start the bus, the idempotency store and the ledger service (its loops)."""
        await self.idempotency.start()
        await self.bus.start()
        if self.service is not None:
            await self.service.start()

    def run_events(self) -> Callable[[], Awaitable[None]] | None:
        """The long-running task consuming Kafka events, if the ledger runs elsewhere."""
        return None if self.kafka_events is None else self.kafka_events.run

    def on_book_changed(self, changed_ix: I64Array1D, now_ns: int) -> None:
        """A PriceBook listener: resting orders on the changed instruments are re-checked."""
        if self.service is not None:
            self.service.on_book_changed(changed_ix.tolist())

    def roll_day(self) -> None:
        """Expire what rests with time in force ``day`` (at the day roll)."""
        if self.service is None:
            return
        task = asyncio.create_task(self.service.roll_day(), name="tickgate-ledger-day-roll")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Stop the service, the consumers and the bus, then close the store."""
        for task in list(self._tasks):
            task.cancel()
        if self.kafka_events is not None:
            await self.kafka_events.stop()
        if self.service is not None:
            await self.service.stop()
        for closer in (self.bus.stop, self.idempotency.stop, self.store.stop):
            try:
                await closer()
            except Exception:
                logger.exception(
                    "closing a part of the order path failed",
                    extra={"event": "orders.close_failed"},
                )
        if self.ledger is not None:
            await self.ledger.close()


def _build_idempotency(settings: Settings) -> IdempotencyStore:
    idempotency = entry_settings(settings.api, settings.orders).idempotency
    if settings.orders.idempotency_store == "redis":
        from orders.redis import RedisIdempotencyStore

        redis = settings.redis
        assert redis.url is not None  # Settings checks it
        return RedisIdempotencyStore(
            redis.url,
            idempotency,
            key_prefix=redis.key_prefix,
            timeout_s=redis.timeout_ms / 1000,
        )
    from orders.memory import MemoryIdempotencyStore

    return MemoryIdempotencyStore(idempotency)


@dataclass(slots=True)
class LedgerParts:
    """A ledger service and what it owns besides the store: the rail and its event sinks."""

    service: LedgerService
    bank: SimulatedBank
    sinks: list[EventSink]

    async def close(self) -> None:
        """Close the Kafka event sinks and the rail (after the service stopped)."""
        for sink in self.sinks:
            stop = getattr(sink, "stop", None)  # the Kafka sink holds a producer
            if stop is not None:
                try:
                    await stop()
                except Exception:
                    logger.exception(
                        "closing a ledger event sink failed",
                        extra={"event": "ledger.sink_close_failed"},
                    )
        self.bank.close()


def build_ledger_service(
    settings: Settings,
    master: InstrumentMaster,
    book: PriceBook,
    store: LedgerStore,
    clock: Clock,
) -> LedgerParts:
    """The ledger service the settings name: inbox or Kafka commands, on ``book``'s prices."""
    source: CommandSource
    sinks: list[EventSink] = []
    if settings.orders.bus == "kafka":
        from ledger.kafka import KafkaCommandSource, KafkaEventSink

        kafka = ledger_kafka_settings(settings.ledger, settings.orders, settings.kafka)
        source = KafkaCommandSource(kafka)
        sinks.append(KafkaEventSink(kafka))
    else:
        source = InboxSource(store)
    bank_path = None
    if not settings.ledger.is_postgres:
        # The data dir holds the ledger and the bank: private to the service's user.
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        bank_path = str(settings.data_dir / "bank.db")
    bank = SimulatedBank(bank_settings(settings.ledger, settings.simulator.seed), bank_path)
    service = LedgerService(
        store,
        source,
        master,
        book,
        bank,
        settings=ledger_service_settings(settings.ledger),
        sinks=sinks,
        now_ns=clock.now_ns,
    )
    return LedgerParts(service, bank, sinks)


def _expose_ledger(service: LedgerService, metrics: Metrics) -> None:
    # The embedded ledger service's figures on the gateway's /metrics.
    batch_commands = metrics.histogram(
        "ledger_batch_commands",
        "Commands in one committed ledger batch.",
        buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
    )
    counters = metrics.counters

    def committed(batch: Batch) -> None:
        counters.ledger_batches += 1
        counters.ledger_transactions += len(batch.transactions)
        counters.ledger_postings += sum(len(t.postings) for t in batch.transactions)
        batch_commands.observe(len(batch.commands))

    service.add_commit_listener(committed)
    metrics.gauge(
        "ledger_outbox_backlog",
        "Ledger events committed and not yet relayed, as of the relay's last round.",
        lambda: service.relay.backlog,
    )
    metrics.gauge(
        "ledger_open_orders",
        "Orders resting in the ledger (accepted, reserved or partially filled).",
        lambda: service.open_order_count,
    )


def trace_commits(service: LedgerService, tracer: Tracer, now_ns: Callable[[], int]) -> None:
    """Log each committed event of a traced order or payment, and record its span."""

    def committed(batch: Batch) -> None:
        is_logged = logger.isEnabledFor(logging.DEBUG)
        if not is_logged and tracer is NO_TRACER:
            return
        end_ns = now_ns()
        for event in batch.events:
            trace_id = event.payload.get("trace_id")
            if not isinstance(trace_id, str):
                continue
            status = event.payload.get("status")
            if is_logged:
                logger.debug(
                    "ledger committed %s %s of %s (trace %s)",
                    event.type,
                    status,
                    event.account_id,
                    trace_id,
                    extra={
                        "event": "ledger.event_committed",
                        "trace_id": trace_id,
                        "ledger_event": event.type,
                        "status": status,
                        "account_id": event.account_id,
                        "event_id": event.event_id,
                    },
                )
            tracer.record(
                "tickgate.ledger.commit",
                trace_id,
                batch.ts_ns,
                end_ns,
                {"tickgate.event": event.type, "tickgate.account_id": event.account_id},
            )

    service.add_commit_listener(committed)


class _EntryEventLog:
    # Order entry's facts as logs, metrics and spans (the core does not log).

    def __init__(self, metrics: Metrics, tracer: Tracer, now_ns: Callable[[], int]) -> None:
        self._counters = metrics.counters
        self._tracer = tracer
        self._now_ns = now_ns

    def _accepted(self, command: Command) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s accepted for %s: transfer %s (trace %s)",
                command.type.value,
                command.account_id,
                command.transfer_id,
                command.trace_id,
                extra={
                    "event": "orders.accepted",
                    "trace_id": command.trace_id,
                    "transfer_id": command.transfer_id,
                    "account_id": command.account_id,
                    "command": command.type.value,
                },
            )
        self._tracer.record(
            "tickgate.order.accept",
            command.trace_id,
            command.ts_accepted,
            self._now_ns(),
            {"tickgate.command": command.type.value, "tickgate.account_id": command.account_id},
        )

    def __call__(self, event: entry_events.EntryEvent) -> None:
        counters = self._counters
        if isinstance(event, entry_events.CommandAccepted):
            self._accepted(event.command)
        elif isinstance(event, entry_events.RequestAnswered):
            counters.orders_requests[str(event.status)] += 1
        elif isinstance(event, entry_events.RequestReplayed):
            counters.orders_idempotent_replays[event.operation] += 1
            logger.info(
                "idempotent replay: principal=%s operation=%s transfer_id=%s status=%d",
                event.principal,
                event.operation,
                event.transfer_id,
                event.status,
                extra={"event": "orders.idempotent_replay"},
            )
        elif isinstance(event, entry_events.IdempotencyConflict):
            counters.orders_idempotency_conflicts[event.code] += 1
            logger.info(
                "idempotency conflict: principal=%s operation=%s transfer_id=%s code=%s",
                event.principal,
                event.operation,
                event.transfer_id,
                event.code,
                extra={"event": "orders.idempotency_conflict"},
            )
        elif isinstance(event, entry_events.LeaseReconciled):
            counters.orders_reconciliations[event.outcome.value] += 1
            logger.warning(
                "idempotency lease reconciled: transfer_id=%s outcome=%s",
                event.transfer_id,
                event.outcome.value,
                extra={"event": "orders.lease_reconciled"},
            )
        elif isinstance(event, entry_events.SubmitFailed):
            counters.orders_submit_failures += 1
            logger.warning(
                "command bus refused transfer %s: %s",
                event.transfer_id,
                event.reason,
                extra={"event": "orders.submit_failed"},
            )
        elif isinstance(
            event, entry_events.IdempotencyStoreFailed | entry_events.RecordNotCompleted
        ):
            logger.warning(
                "idempotency store failed: %s",
                event,
                extra={"event": "orders.idempotency_store_failed"},
            )
        elif isinstance(event, entry_events.TradingStateChanged):
            logger.warning(
                "trading state %s -> %s by %s (%s)",
                event.previous.state.value,
                event.current.state.value,
                event.current.changed_by,
                event.current.reason,
                extra={"event": "orders.trading_state_changed"},
            )
