"""Read models of orders and payments, and the port the API reads them through.

The ledger owns the state of every order and payment (its saga records each
transition); the order API reads it through ``OrderView``, which the ledger's
store implements. Values are exact (``Decimal``); times are UNIX ns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from orders.types import (
    AccountId,
    ClientOrderId,
    OrderId,
    OrderType,
    PaymentId,
    PaymentKind,
    Side,
    TimeInForce,
    TransferId,
)

__all__ = [
    "FINAL_ORDER_STATUSES",
    "OrderPage",
    "OrderRecord",
    "OrderStatus",
    "OrderView",
    "PaymentRecord",
    "PaymentStatus",
]


class OrderStatus(StrEnum):
    ACCEPTED = "accepted"
    RESERVED = "reserved"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


FINAL_ORDER_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.EXPIRED}
)


class PaymentStatus(StrEnum):
    ACCEPTED = "accepted"
    PENDING = "pending"  # a withdrawal whose cash is reserved while the rail decides
    SETTLED = "settled"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """An order as the ledger knows it.

    ``filled_quantity`` and ``average_price`` (None before the first fill)
    are exact; ``reason`` is a stable code for ``rejected``, ``cancelled``
    and ``expired`` orders.
    """

    order_id: OrderId
    transfer_id: TransferId
    account_id: AccountId
    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType
    limit_price: Decimal | None
    time_in_force: TimeInForce
    client_order_id: ClientOrderId | None
    status: OrderStatus
    filled_quantity: Decimal
    average_price: Decimal | None
    reason: str | None
    ts_accepted: int
    ts_updated: int


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """A payment as the ledger knows it."""

    payment_id: PaymentId
    transfer_id: TransferId
    account_id: AccountId
    kind: PaymentKind
    amount: Decimal
    currency: str
    reference: str | None
    status: PaymentStatus
    reason: str | None
    ts_accepted: int
    ts_updated: int


@dataclass(frozen=True, slots=True)
class OrderPage:
    """One page of orders, newest first; ``next_cursor`` is None on the last page."""

    orders: Sequence[OrderRecord]
    next_cursor: str | None


class OrderView(Protocol):
    """Read access to orders and payments (port; the ledger store implements it)."""

    async def get_order(self, order_id: OrderId) -> OrderRecord | None: ...

    async def list_orders(
        self,
        account_id: AccountId,
        *,
        status: OrderStatus | None,
        cursor: str | None,
        limit: int,
    ) -> OrderPage:
        """Orders of ``account_id`` newest first; ``cursor`` is opaque, from a previous page."""
        ...

    async def get_payment(self, payment_id: PaymentId) -> PaymentRecord | None: ...
