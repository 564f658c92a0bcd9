"""What the ledger service keeps in memory between batches: clients, open orders, payments.

It is a cache of the store: loaded at start (open orders, pending
payments) and per account on first use (balances and positions), and
changed only by applying the ``Plan`` of a batch the store committed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ledger.journal import OrderRow, PaymentRow
from ledger.money import Asset
from ledger.positions import ExactPosition
from orders.types import AccountId, OrderId, PaymentId
from orders.views import FINAL_ORDER_STATUSES, PaymentStatus

__all__ = ["Balance", "ClientState", "LedgerState"]


@dataclass(frozen=True, slots=True)
class Balance:
    """A ledger account's materialised balance, pending holds, version and floor."""

    balance: int = 0
    pending: int = 0
    version: int = 0
    floor: int | None = None

    @property
    def available(self) -> int:
        """What may still be spent or reserved: balance less pending holds."""
        return self.balance - self.pending

    def allows(self, balance_delta: int, pending_delta: int) -> bool:
        """Whether the change keeps the account at or above its floor."""
        if self.floor is None:
            return True
        return (self.balance + balance_delta) - (self.pending + pending_delta) >= self.floor


@dataclass(frozen=True, slots=True)
class ClientState:
    """A client account: its ledger accounts by asset, and its exact positions by symbol."""

    account_id: AccountId
    base_currency: str
    balances: Mapping[Asset, Balance] = field(default_factory=dict)
    positions: Mapping[str, ExactPosition] = field(default_factory=dict)


class LedgerState:
    """The service's cache of clients, open orders and pending withdrawals."""

    def __init__(self) -> None:
        self.clients: dict[AccountId, ClientState] = {}
        self.open_orders: dict[OrderId, OrderRow] = {}
        self.pending_payments: dict[PaymentId, PaymentRow] = {}

    def apply(
        self,
        clients: Mapping[AccountId, ClientState],
        orders: Mapping[OrderId, OrderRow],
        payments: Mapping[PaymentId, PaymentRow],
    ) -> None:
        """Take the states a committed batch produced."""
        self.clients.update(clients)
        for order_id, row in orders.items():
            if row.record.status in FINAL_ORDER_STATUSES:
                self.open_orders.pop(order_id, None)
            else:
                self.open_orders[order_id] = row
        for payment_id, payment in payments.items():
            if payment.record.status is PaymentStatus.PENDING:
                self.pending_payments[payment_id] = payment
            else:
                self.pending_payments.pop(payment_id, None)

    def forget_clients(self) -> None:
        """Drop cached balances (after a conflict): they are read again on next use."""
        self.clients.clear()
