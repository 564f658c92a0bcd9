"""Ledger events into the running gateway: positions and cash, the ``orders`` channel, order entry.

The ledger publishes each committed fact once or more (at least once: a
relay that crashed before marking events sent publishes them again), in
event-sequence order per account. ``LedgerEvents`` routes a batch of them:

- a ``fill`` becomes a portfolio ``Fill`` and a settled ``payment`` a
  ``CashMovement``; the engine applies each once, by the ledger sequence it
  carries (a replay changes nothing), pushes what changed on ``portfolio``
  and marks the accounts for the position cache. They are applied in event
  order (runs of fills and runs of movements, each run in one call): an
  account's version is the ledger sequence of the last change applied, so
  applying a later fill before an earlier deposit would skip the deposit;
- every event of an account goes to its ``orders`` subscribers;
- ``order`` and ``payment`` events tell order entry that the ledger has the
  transfer (its pending reservation and read-your-write entry go).

An event whose sequence is not above the last one seen for its account is a
duplicate and is dropped before any of this. After a restart the first
events may already be in the snapshot the accounts were loaded from: the
engine ignores those by version, and ``orders`` subscribers see them as
facts they may have seen (their ``event_id`` says so).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import orjson

from gateway.channels.orders import OrdersChannel
from gateway.metrics import Metrics
from gateway.tracing import NO_TRACER, Tracer
from ledger.store import OutboxEvent
from orders.types import TransferId
from portfolio.engine import PortfolioChange
from portfolio.types import AccountId, CashMovement, Fill
from pricing.instruments import InstrumentMaster

__all__ = [
    "AccountsSink",
    "LedgerEvent",
    "LedgerEvents",
    "event_from_outbox",
    "event_from_wire",
]

logger = logging.getLogger(__name__)

_ORDER_PREFIX = "ord_"


class AccountsSink(Protocol):
    """What the events change: ``gateway.accounts.runtime.Accounts``."""

    def has_account(self, account: str) -> bool: ...

    def apply_fills(self, fills: list[Fill], now_ns: int) -> PortfolioChange: ...

    def apply_cash(self, movements: list[CashMovement], now_ns: int) -> PortfolioChange: ...


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """One ledger event: its envelope and its fields (decimals as strings, times in ns)."""

    event_id: str
    event_seq: int
    ledger_seq: int
    type: str
    account_id: AccountId
    fields: dict[str, Any]


def event_from_outbox(event: OutboxEvent) -> LedgerEvent:
    """An event relayed in process (the embedded ledger)."""
    fields = orjson.loads(event.payload)
    return LedgerEvent(
        event.event_id,
        event.event_seq,
        event.ledger_seq,
        event.type,
        event.account_id,
        fields,
    )


def event_from_wire(raw: bytes) -> LedgerEvent:
    """An event as published on Kafka ``orders.events`` (``ledger.relay.event_wire``).

    Raises ``ValueError`` for anything else.
    """
    try:
        wire = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"event is not JSON: {e}") from e
    if not isinstance(wire, dict):
        raise ValueError("event must be a JSON object")
    try:
        event_id, event_seq = wire.pop("event_id"), wire.pop("seq")
        ledger_seq, kind, account = wire.pop("ledger_seq"), wire.pop("type"), wire.pop("account_id")
    except KeyError as e:
        raise ValueError(f"event lacks field {e}") from None
    if not (isinstance(event_seq, int) and isinstance(ledger_seq, int)):
        raise ValueError("event seq and ledger_seq must be integers")
    if not (isinstance(event_id, str) and isinstance(kind, str) and isinstance(account, str)):
        raise ValueError("event_id, type and account_id must be strings")
    return LedgerEvent(event_id, event_seq, ledger_seq, kind, AccountId(account), wire)


class LedgerEvents:
    """Route ledger events to the accounts, the ``orders`` channel and order entry."""

    def __init__(
        self,
        master: InstrumentMaster,
        *,
        accounts: AccountsSink | None,
        channel: OrdersChannel | None,
        note_transfer: Callable[[TransferId], None] | None,
        now_ns: Callable[[], int],
        metrics: Metrics,
        tracer: Tracer = NO_TRACER,
    ) -> None:
        self._master = master
        self._tracer = tracer
        self._accounts = accounts
        self._channel = channel
        self._note_transfer = note_transfer
        self._now_ns = now_ns
        self._metrics = metrics
        self._last_seq: dict[str, int] = {}

    def on_outbox(self, events: Sequence[OutboxEvent]) -> None:
        """The embedded relay's listener."""
        self.on_events([event_from_outbox(e) for e in events])

    def on_events(self, events: Iterable[LedgerEvent]) -> None:
        """Apply a batch of events, in order; duplicates are dropped."""
        fresh = [e for e in events if self._is_new(e)]
        if not fresh:
            return
        changes: list[Fill | CashMovement] = []
        counters = self._metrics.counters
        for event in fresh:
            counters.ledger_events += 1
            if event.type == "order":
                counters.order_updates[str(event.fields.get("status"))] += 1
            try:
                self._collect(event, changes)
            except (KeyError, ValueError) as e:
                # A malformed event is the ledger's bug, not the client's: log it and go on.
                logger.error(
                    "ledger event %s cannot be applied: %s",
                    event.event_id,
                    e,
                    extra={"event": "orders.event_unusable"},
                )
        now_ns = self._now_ns()
        if self._accounts is not None:
            for kind, run in itertools.groupby(changes, key=type):
                if kind is Fill:
                    self._accounts.apply_fills([c for c in run if isinstance(c, Fill)], now_ns)
                else:
                    movements = [c for c in run if isinstance(c, CashMovement)]
                    self._accounts.apply_cash(movements, now_ns)
        if self._channel is not None:
            self._channel.publish((e.account_id, e.type, _wire_fields(e)) for e in fresh)
        self._trace_pushes(fresh, now_ns)

    def _trace_pushes(self, events: list[LedgerEvent], now_ns: int) -> None:
        # Each traced event has reached the accounts and the orders channel.
        is_logged = logger.isEnabledFor(logging.DEBUG)
        if not is_logged and self._tracer is NO_TRACER:
            return
        for event in events:
            trace_id = event.fields.get("trace_id")
            if not isinstance(trace_id, str):
                continue
            status = event.fields.get("status")
            if is_logged:
                logger.debug(
                    "pushed %s %s of %s on orders (trace %s)",
                    event.type,
                    status,
                    event.account_id,
                    trace_id,
                    extra={
                        "event": "orders.event_pushed",
                        "trace_id": trace_id,
                        "ledger_event": event.type,
                        "status": status,
                        "account_id": event.account_id,
                        "event_id": event.event_id,
                    },
                )
            start_ns = event.fields.get("ts_event")
            self._tracer.record(
                "tickgate.orders.push",
                trace_id,
                start_ns if isinstance(start_ns, int) else now_ns,
                now_ns,
                {"tickgate.event": event.type, "tickgate.account_id": event.account_id},
            )

    def _is_new(self, event: LedgerEvent) -> bool:
        last = self._last_seq.get(event.account_id, 0)
        if event.event_seq <= last:
            self._metrics.counters.ledger_events_duplicate += 1
            return False
        self._last_seq[event.account_id] = event.event_seq
        return True

    def _collect(self, event: LedgerEvent, changes: list[Fill | CashMovement]) -> None:
        fields = event.fields
        known = self._accounts is not None and self._accounts.has_account(event.account_id)
        if event.type == "fill" and known:
            sign = 1.0 if fields["side"] == "buy" else -1.0
            changes.append(
                Fill(
                    account=event.account_id,
                    instrument_ix=self._master.ix(str(fields["symbol"])),
                    quantity=sign * float(Decimal(fields["quantity"])),
                    price=float(Decimal(fields["price"])),
                    ledger_seq=event.ledger_seq,
                    ts_event=int(fields.get("ts_event", 0)),
                    commission=float(Decimal(fields.get("fee") or "0")),
                    commission_currency=fields.get("currency"),
                )
            )
        elif event.type == "payment":
            if fields.get("status") == "settled" and known:
                amount = float(Decimal(fields["amount"]))
                sign = 1.0 if fields["kind"] == "deposit" else -1.0
                changes.append(
                    CashMovement(
                        event.account_id,
                        str(fields["currency"]),
                        sign * amount,
                        event.ledger_seq,
                        int(fields.get("ts_event", 0)),
                    )
                )
            self._note(fields.get("transfer_id"))
        elif event.type == "order":
            self._note(fields.get("transfer_id"))

    def _note(self, transfer_id: object) -> None:
        if self._note_transfer is not None and isinstance(transfer_id, str):
            self._note_transfer(TransferId(transfer_id))


def _wire_fields(event: LedgerEvent) -> dict[str, object]:
    # What an ``orders`` update carries beside its channel envelope.
    fields: dict[str, object] = {
        "event_id": event.event_id,
        "event_seq": event.event_seq,
        "ledger_seq": event.ledger_seq,
    }
    fields.update(event.fields)
    return fields
