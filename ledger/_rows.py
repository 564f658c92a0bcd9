"""Row forms shared by the store adapters: batch contents to tuples, rows to records.

Decimals travel as their plain text (SQLite TEXT, PostgreSQL NUMERIC via
``Decimal``); the adapters differ only in their SQL and drivers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from ledger.journal import OrderRow, PaymentRow
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
from orders.views import OrderRecord, OrderStatus, PaymentRecord, PaymentStatus

__all__ = [
    "ORDER_COLUMNS",
    "OPEN_STATUSES",
    "PAYMENT_COLUMNS",
    "decimal_text",
    "order_from_row",
    "order_tuple",
    "payment_from_row",
    "payment_tuple",
]

ORDER_COLUMNS = (
    "order_id, transfer_id, account_id, symbol, side, quantity, order_type, limit_price, "
    "time_in_force, client_order_id, status, filled_quantity, average_price, reason, "
    "ts_accepted, ts_updated, worst_price, hold_account, hold_minor, fill_count, notional"
)
# An open order's columns and its command's wire, which holds its trace id.
OPEN_ORDER_COLUMNS = (
    "order_id, transfer_id, account_id, symbol, side, quantity, order_type, limit_price, "
    "time_in_force, client_order_id, status, filled_quantity, average_price, reason, "
    "ts_accepted, ts_updated, worst_price, hold_account, hold_minor, fill_count, notional, "
    "(SELECT c.wire FROM commands c WHERE c.transfer_id = orders.transfer_id)"
)
PAYMENT_COLUMNS = (
    "payment_id, transfer_id, account_id, kind, amount, amount_minor, currency, reference, "
    "status, reason, ts_accepted, ts_updated"
)
OPEN_STATUSES = ("accepted", "reserved", "partially_filled")


def decimal_text(value: Decimal | None) -> str | None:
    """Plain notation, no exponent."""
    return None if value is None else format(value, "f")


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _opt_dec(value: Any) -> Decimal | None:
    return None if value is None else _dec(value)


def order_tuple(row: OrderRow, *, as_text: bool) -> tuple[object, ...]:
    """The order's column values, decimals as text (SQLite) or Decimal (PostgreSQL)."""
    r = row.record
    d = decimal_text if as_text else (lambda v: v)
    return (
        r.order_id,
        r.transfer_id,
        r.account_id,
        r.symbol,
        r.side.value,
        d(r.quantity),
        r.order_type.value,
        d(r.limit_price),
        r.time_in_force.value,
        r.client_order_id,
        r.status.value,
        d(r.filled_quantity),
        d(r.average_price),
        r.reason,
        r.ts_accepted,
        r.ts_updated,
        d(row.worst_price),
        row.hold_account,
        row.hold_minor,
        row.fill_count,
        d(row.notional),
    )


def open_order_from_row(v: Sequence[Any]) -> OrderRow:
    """An open order from its columns in ``OPEN_ORDER_COLUMNS`` order, with its trace id."""
    trace_id = None
    if v[21] is not None:
        value = json.loads(v[21]).get("trace_id")
        trace_id = value if isinstance(value, str) else None
    return replace(order_from_row(v[:21]), trace_id=trace_id)


def order_from_row(v: Sequence[Any]) -> OrderRow:
    """An order row from its columns in ``ORDER_COLUMNS`` order."""
    record = OrderRecord(
        order_id=OrderId(v[0]),
        transfer_id=TransferId(v[1]),
        account_id=AccountId(v[2]),
        symbol=v[3],
        side=Side(v[4]),
        quantity=_dec(v[5]),
        order_type=OrderType(v[6]),
        limit_price=_opt_dec(v[7]),
        time_in_force=TimeInForce(v[8]),
        client_order_id=None if v[9] is None else ClientOrderId(v[9]),
        status=OrderStatus(v[10]),
        filled_quantity=_dec(v[11]),
        average_price=_opt_dec(v[12]),
        reason=v[13],
        ts_accepted=int(v[14]),
        ts_updated=int(v[15]),
    )
    return OrderRow(record, _opt_dec(v[16]), v[17], int(v[18]), int(v[19]), _dec(v[20]))


def payment_tuple(row: PaymentRow, *, as_text: bool) -> tuple[object, ...]:
    """The payment's column values."""
    r = row.record
    return (
        r.payment_id,
        r.transfer_id,
        r.account_id,
        r.kind.value,
        decimal_text(r.amount) if as_text else r.amount,
        row.amount_minor,
        r.currency,
        r.reference,
        r.status.value,
        r.reason,
        r.ts_accepted,
        r.ts_updated,
    )


def payment_from_row(v: Sequence[Any]) -> PaymentRow:
    """A payment row from its columns in ``PAYMENT_COLUMNS`` order."""
    record = PaymentRecord(
        payment_id=PaymentId(v[0]),
        transfer_id=TransferId(v[1]),
        account_id=AccountId(v[2]),
        kind=PaymentKind(v[3]),
        amount=_dec(v[4]),
        currency=v[6],
        reference=v[7],
        status=PaymentStatus(v[8]),
        reason=v[9],
        ts_accepted=int(v[10]),
        ts_updated=int(v[11]),
    )
    return PaymentRow(record, int(v[5]))
