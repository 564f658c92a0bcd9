"""The ledger store port, and the values it reads back.

Adapters: ``ledger.sqlite.SqliteLedgerStore`` (the embedded default, a file
under the data dir) and ``ledger.postgres.PostgresLedgerStore``. One
contract suite (``tests/contract/test_ledger_store.py``) runs against both.
Both apply their versioned migrations at ``start`` and implement
``orders.views.OrderView``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from ledger.journal import Batch, OrderRow, PaymentRow
from ledger.money import Asset
from ledger.state import Balance
from ledger.verify import VerifyReport
from orders.types import AccountId, OrderId, PaymentId
from orders.views import OrderPage, OrderRecord, OrderStatus, PaymentRecord

__all__ = [
    "CommitResult",
    "DeadLetter",
    "EntryPage",
    "InboxMessage",
    "LedgerStore",
    "OutboxEvent",
    "SnapshotRows",
    "StoredClient",
    "StoredEntry",
    "StoredPosition",
]


@dataclass(frozen=True, slots=True)
class CommitResult:
    """Where a committed batch landed: its number, and its transactions' seqs
    ``first_seq .. last_seq`` (``last_seq < first_seq`` when it posted none)."""

    batch_no: int
    first_seq: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class StoredPosition:
    """A position as stored: quantity in units, exact cost and P&L."""

    quantity_units: int
    avg_cost: Decimal
    realised_pnl: Decimal
    commission: Decimal
    last_seq: int


@dataclass(frozen=True, slots=True)
class StoredClient:
    """A client account with its ledger accounts and positions."""

    account_id: AccountId
    base_currency: str
    balances: Mapping[Asset, Balance] = field(default_factory=dict)
    positions: Mapping[str, StoredPosition] = field(default_factory=dict)
    last_seq: int = 0


@dataclass(frozen=True, slots=True)
class SnapshotRows:
    """A consistent read of every client, and the fills since a day start.

    ``day_fills`` are (account, symbol, signed units, price) in seq order.
    """

    clients: Sequence[StoredClient]
    day_fills: Sequence[tuple[AccountId, str, int, Decimal]]
    ledger_seq: int


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """One entry of a client's ledger account, with that account's balance just after it.

    ``amount`` and ``balance_after`` are minor units (cash) or quantity units
    (a position); ``leg`` is the entry's number within its transaction.
    """

    seq: int
    leg: int
    transfer_id: str
    kind: str
    asset: Asset
    amount: int
    balance_after: int
    ts_posted: int


@dataclass(frozen=True, slots=True)
class EntryPage:
    """One page of a client's entries, newest first; ``next_cursor`` is None on the last."""

    entries: Sequence[StoredEntry]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """An event in the outbox; ``payload`` is its JSON object's text without the envelope."""

    event_seq: int
    event_id: str
    account_id: AccountId
    type: str
    ledger_seq: int
    payload: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """A command submitted to the embedded inbox, as wire text."""

    inbox_id: int
    wire: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A command that was refused, with its stable reason."""

    dlq_id: int
    transfer_id: str | None
    account_id: str | None
    raw: str
    reason: str
    detail: str
    source: str
    ts_ns: int
    redriven_ns: int | None


class LedgerStore(Protocol):
    """Where the ledger is kept (port)."""

    async def start(self) -> None:
        """Connect and apply pending migrations; raises ``StoreUnavailable``."""
        ...

    async def stop(self) -> None:
        """Release connections."""
        ...

    async def commit(self, batch: Batch) -> CommitResult:
        """Write ``batch`` in one database transaction.

        Raises ``StaleState`` (an expected version moved), ``DuplicateTransfer``
        (a transfer id, client or command exists), ``FloorViolation``,
        ``UnbalancedTransaction`` or ``StoreUnavailable``; nothing is written then.
        """
        ...

    async def known_transfers(self, transfer_ids: Sequence[str]) -> set[str]:
        """Which of these command transfer ids were processed (or dead-lettered)."""
        ...

    async def load_clients(self, account_ids: Sequence[AccountId]) -> dict[AccountId, StoredClient]:
        """The clients that exist among ``account_ids``."""
        ...

    async def open_orders(self) -> list[OrderRow]:
        """Every order that is not final, oldest first."""
        ...

    async def pending_payments(self) -> list[PaymentRow]:
        """Every withdrawal waiting for the payment rail."""
        ...

    async def get_order(self, order_id: OrderId) -> OrderRecord | None: ...

    async def list_orders(
        self, account_id: AccountId, *, status: OrderStatus | None, cursor: str | None, limit: int
    ) -> OrderPage: ...

    async def get_payment(self, payment_id: PaymentId) -> PaymentRecord | None: ...

    async def account_entries(
        self, account_id: AccountId, *, asset: Asset | None, cursor: str | None, limit: int
    ) -> EntryPage | None:
        """The client's entries newest first, with running balances (``ledger.statement``).

        Every asset of the client, or only ``asset``; ``cursor`` is a previous
        page's ``next_cursor`` (``ValueError`` if no page handed it out). None
        when the ledger holds no client ``account_id``.
        """
        ...

    async def unsent_events(self, limit: int) -> list[OutboxEvent]:
        """The oldest events the relay has not marked sent."""
        ...

    async def mark_sent(self, event_seqs: Sequence[int], ts_ns: int) -> None:
        """Mark events published."""
        ...

    async def unsent_event_count(self) -> int:
        """How many events the relay has not marked sent (the outbox backlog)."""
        ...

    async def events_after(
        self, after_seq: int, limit: int, account_id: AccountId | None = None
    ) -> list[OutboxEvent]:
        """Events with ``event_seq > after_seq`` in order (of one account if given)."""
        ...

    async def inbox_append(self, wires: Sequence[str], ts_ns: int) -> None:
        """Commit commands to the embedded inbox."""
        ...

    async def inbox_read(self, limit: int) -> list[InboxMessage]:
        """The oldest inbox messages after the committed cursor."""
        ...

    async def find_command(self, transfer_id: str) -> str | None:
        """The wire text of a processed or queued command with this transfer id."""
        ...

    async def dead_letters(self, *, include_redriven: bool, limit: int) -> list[DeadLetter]:
        """Dead letters, oldest first."""
        ...

    async def mark_redriven(
        self, dlq_ids: Sequence[int], actor: str, ts_ns: int
    ) -> list[DeadLetter]:
        """Mark dead letters redriven (audit-logged); returns those that were not yet."""
        ...

    async def unpublished_dead_letters(self, limit: int) -> list[DeadLetter]:
        """Dead letters the relay has not published to the dead-letter topic."""
        ...

    async def mark_dead_letters_published(self, dlq_ids: Sequence[int], ts_ns: int) -> None: ...

    async def snapshot(self, day_start_ns: int) -> SnapshotRows:
        """A consistent read of every client, for ``ledger.accounts.load_accounts``."""
        ...

    async def verify(self) -> VerifyReport:
        """Check the hash chain, the balance of every transaction and the materialised state."""
        ...

    async def ensure_partitions(self, now_ns: int, months_ahead: int) -> list[str]:
        """Create the monthly entry partitions up to ``months_ahead``; names created."""
        ...
