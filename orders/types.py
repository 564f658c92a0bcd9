"""Identifiers and vocabularies of order entry.

Every identifier is a ``NewType`` over ``str``. ``AccountId`` lives in
``portfolio.types`` (its one home) and is re-exported here for convenience.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Final, NewType

from portfolio.types import AccountId

__all__ = [
    "AccountId",
    "ClientOrderId",
    "IdempotencyKey",
    "OrderId",
    "OrderType",
    "PaymentId",
    "PaymentKind",
    "PrincipalId",
    "Side",
    "TimeInForce",
    "TraceId",
    "TransferId",
    "cancel_transfer_id_for",
    "order_id_for",
    "payment_id_for",
    "transfer_id_for",
]

OrderId = NewType("OrderId", str)
"""``ord_<transfer_id>``: derived from the transfer id, so a reconciliation can name it."""

PaymentId = NewType("PaymentId", str)
"""``pay_<transfer_id>``."""

TransferId = NewType("TransferId", str)
"""A UUID (canonical lower-case text) derived from (principal, idempotency key)."""

ClientOrderId = NewType("ClientOrderId", str)
IdempotencyKey = NewType("IdempotencyKey", str)
PrincipalId = NewType("PrincipalId", str)
"""The ``sub`` of the service token that submitted a request."""

TraceId = NewType("TraceId", str)
"""32 lower-case hex digits (a W3C trace-context trace id)."""

# A fixed namespace: transfer ids must be the same on every node and every version.
_TRANSFER_NAMESPACE: Final = uuid.UUID("6b1c1f0e-4a53-5d6e-9a43-7469636b6761")
# Cancels have a namespace of their own, so no (principal, key) can name a cancel's id.
_CANCEL_NAMESPACE: Final = uuid.UUID("0d7c5e1a-2f44-5b8e-8c1d-63616e63656c")


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class TimeInForce(StrEnum):
    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"


class PaymentKind(StrEnum):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"


def transfer_id_for(principal: PrincipalId, key: IdempotencyKey) -> TransferId:
    """Return the deterministic transfer id of the request ``key`` of ``principal``.

    A UUIDv5 over both, separated by a byte no key may contain (keys are
    printable ASCII), so ("a", "b\\nc") and ("a\\nb", "c") never collide.
    """
    return TransferId(str(uuid.uuid5(_TRANSFER_NAMESPACE, f"{principal}\n{key}")))


def order_id_for(transfer_id: TransferId) -> OrderId:
    """Return the order id of the order submitted as ``transfer_id``."""
    return OrderId(f"ord_{transfer_id}")


def payment_id_for(transfer_id: TransferId) -> PaymentId:
    """Return the payment id of the payment submitted as ``transfer_id``."""
    return PaymentId(f"pay_{transfer_id}")


def cancel_transfer_id_for(order_id: OrderId) -> TransferId:
    """Return the transfer id of cancelling ``order_id``: the same for every cancel of it.

    Any principal's cancel of the order carries this id, so the ledger
    applies it once however often it is sent (DELETE is idempotent).
    """
    return TransferId(str(uuid.uuid5(_CANCEL_NAMESPACE, order_id)))
