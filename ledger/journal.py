"""The double-entry journal: ledger accounts, postings, holds and the batch a store commits.

Sign convention: an entry's ``amount`` is signed and adds to its account's
balance. A transaction balances when its amounts sum to zero per asset
(what one account gains, others lose). Client accounts hold the client's
cash per currency (``client:<id>:cash:USD``) and positions per instrument
(``client:<id>:inst:AAPL``, in quantity units); house accounts are the
clearing counterparty per asset (``house:clearing:<asset>``), fee income
(``house:fees:<asset>``) and the payment rail's settlement account
(``house:rail:<asset>``).

A **hold** reserves part of an account's balance (positive) or releases it
(negative); ``pending`` is the sum of an account's holds, and its available
balance is ``balance - pending``. An account with a ``floor`` may never have
``balance - pending`` below it (the store enforces it in the database).

Everything the service decides for one batch of commands is a ``Batch``:
the store writes it in one database transaction and assigns the ledger
sequence numbers (one per transaction, gapless, in commit order).

**Hash chain.** Each committed batch stores ``sha256(previous hash ||
canonical text of its transactions and entries)`` (``chain_hash``). One
link per batch keeps hashing off the per-entry path, and ``verify``
recomputes every link from the stored rows.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Final

from ledger.errors import UnbalancedTransaction
from ledger.money import Asset
from orders.types import AccountId
from orders.views import OrderRecord, PaymentRecord

__all__ = [
    "GENESIS_HASH",
    "Batch",
    "CommandRow",
    "DeadLetterDraft",
    "EventDraft",
    "FillRow",
    "Hold",
    "HouseAccount",
    "LedgerAccountSpec",
    "OrderRow",
    "PaymentRow",
    "PositionRow",
    "Posting",
    "TransactionDraft",
    "Transition",
    "account_deltas",
    "chain_hash",
    "client_account",
    "entry_rows",
    "house_account",
]

GENESIS_HASH: Final = bytes(32)
"""The previous hash of the first batch."""


class HouseAccount(StrEnum):
    CLEARING = "clearing"
    FEES = "fees"
    RAIL = "rail"


def client_account(account_id: str, asset: Asset) -> str:
    """Name of a client's ledger account for ``asset``."""
    return f"client:{account_id}:{asset}"


def house_account(kind: HouseAccount, asset: Asset) -> str:
    """Name of a house ledger account for ``asset``."""
    return f"house:{kind.value}:{asset}"


@dataclass(frozen=True, slots=True)
class LedgerAccountSpec:
    """A ledger account to create if missing; ``owner`` is None for house accounts."""

    name: str
    asset: Asset
    owner: AccountId | None
    floor: int | None


@dataclass(frozen=True, slots=True)
class Posting:
    """One entry: ``amount`` (minor units or quantity units) added to ``account``."""

    account: str
    asset: Asset
    amount: int


@dataclass(frozen=True, slots=True)
class TransactionDraft:
    """A balanced transaction before the store gives it its sequence number.

    ``transfer_id`` is unique forever; ``kind`` says what it is (``deposit``,
    ``withdrawal``, ``fill``, ``reversal``, ``seed``). Raises
    ``UnbalancedTransaction`` when the postings do not sum to zero per asset.
    """

    transfer_id: str
    kind: str
    postings: tuple[Posting, ...]

    def __post_init__(self) -> None:
        if len(self.postings) < 2:
            raise ValueError(f"a transaction needs two postings, had {len(self.postings)}")
        totals: dict[str, int] = defaultdict(int)
        for posting in self.postings:
            if posting.amount == 0:
                raise ValueError(f"a posting amount must be non-zero in {self.transfer_id}")
            totals[posting.asset] += posting.amount
        for asset, total in totals.items():
            if total != 0:
                raise UnbalancedTransaction(self.transfer_id, asset, total)


@dataclass(frozen=True, slots=True)
class Hold:
    """Reserve (``amount`` > 0) or release (< 0) part of ``account`` for ``transfer_id``."""

    account: str
    transfer_id: str
    amount: int


@dataclass(frozen=True, slots=True)
class OrderRow:
    """An order's current state as stored.

    ``worst_price`` is the limit price, or a market order's collar;
    ``hold_minor`` is what the order still reserves on ``hold_account``;
    ``trace_id`` is its command's (W3C trace id), carried by its events.
    """

    record: OrderRecord
    worst_price: Decimal | None
    hold_account: str | None
    hold_minor: int
    fill_count: int
    notional: Decimal  # sum of quantity x price of its fills, for the average price
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentRow:
    """A payment's current state as stored."""

    record: PaymentRecord
    amount_minor: int


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change of an order or payment (``subject`` is its id), with its cause."""

    subject: str
    status: str
    cause: str
    ts: int


@dataclass(frozen=True, slots=True)
class FillRow:
    """An execution, posted by the transaction at ``txn_index`` of the batch.

    ``quantity_units`` is signed (a sell is negative). ``realised_pnl`` is
    exact, in the instrument's currency (multiplier included).
    """

    fill_id: str
    order_id: str
    account_id: AccountId
    symbol: str
    quantity_units: int
    price: Decimal
    notional_minor: int
    fee_minor: int
    currency: str
    realised_pnl: Decimal
    ts_event: int
    txn_index: int


@dataclass(frozen=True, slots=True)
class PositionRow:
    """A position's exact state after the batch; ``txn_index`` is its last fill."""

    account_id: AccountId
    symbol: str
    quantity_units: int
    avg_cost: Decimal
    realised_pnl: Decimal
    commission: Decimal
    txn_index: int


@dataclass(frozen=True, slots=True)
class EventDraft:
    """An outbox event. The store gives it its event sequence; ``ledger_seq`` is the
    sequence of the transaction at ``txn_index`` (or the batch's last one when None)."""

    event_id: str
    account_id: AccountId
    type: str
    payload: Mapping[str, object]
    txn_index: int | None = None


@dataclass(frozen=True, slots=True)
class DeadLetterDraft:
    """A command that could not be processed, with its stable ``reason``."""

    transfer_id: str | None
    account_id: str | None
    raw: str
    reason: str
    detail: str
    source: str


@dataclass(frozen=True, slots=True)
class CommandRow:
    """A processed command: its transfer id is never processed again."""

    transfer_id: str
    type: str
    account_id: AccountId
    wire: str


@dataclass(slots=True)
class Batch:
    """Everything one unit of work writes, in one database transaction."""

    ts_ns: int
    accounts: list[LedgerAccountSpec] = field(default_factory=list)
    clients: list[tuple[AccountId, str]] = field(default_factory=list)
    transactions: list[TransactionDraft] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    commands: list[CommandRow] = field(default_factory=list)
    orders: list[OrderRow] = field(default_factory=list)
    payments: list[PaymentRow] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    fills: list[FillRow] = field(default_factory=list)
    positions: list[PositionRow] = field(default_factory=list)
    events: list[EventDraft] = field(default_factory=list)
    dead_letters: list[DeadLetterDraft] = field(default_factory=list)
    expected_versions: dict[str, int] = field(default_factory=dict)
    inbox_cursor: int | None = None

    @property
    def is_empty(self) -> bool:
        """Whether committing would write nothing at all."""
        return not (
            self.accounts
            or self.clients
            or self.transactions
            or self.holds
            or self.commands
            or self.orders
            or self.payments
            or self.events
            or self.dead_letters
            or self.inbox_cursor is not None
        )


def account_deltas(batch: Batch) -> dict[str, tuple[int, int]]:
    """Net (balance, pending) change per ledger account touched by ``batch``."""
    deltas: dict[str, list[int]] = {}
    for txn in batch.transactions:
        for posting in txn.postings:
            deltas.setdefault(posting.account, [0, 0])[0] += posting.amount
    for hold in batch.holds:
        deltas.setdefault(hold.account, [0, 0])[1] += hold.amount
    return {name: (d[0], d[1]) for name, d in deltas.items()}


def chain_hash(
    previous: bytes,
    transactions: Iterable[tuple[int, str, str, int]],
    entries: Iterable[tuple[int, int, str, str, int]],
) -> bytes:
    """The hash of a batch: previous hash, then its transactions and entries in order.

    ``transactions`` are (seq, transfer_id, kind, ts_posted) and ``entries``
    (seq, n, account name, asset, amount), both sorted by seq (and n).
    """
    h = hashlib.sha256(previous)
    for seq, transfer_id, kind, ts in transactions:
        h.update(f"T|{seq}|{transfer_id}|{kind}|{ts}\n".encode())
    for seq, n, account, asset, amount in entries:
        h.update(f"E|{seq}|{n}|{account}|{asset}|{amount}\n".encode())
    return h.digest()


def entry_rows(
    transactions: Sequence[TransactionDraft], first_seq: int
) -> list[tuple[int, int, str, str, int]]:
    """(seq, n, account, asset, amount) of every posting, numbering from ``first_seq``."""
    return [
        (first_seq + i, n, p.account, p.asset, p.amount)
        for i, txn in enumerate(transactions)
        for n, p in enumerate(txn.postings)
    ]
