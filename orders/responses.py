"""The JSON objects the API answers with, and their JSON Schemas.

Each builder is a pure function of its input. The 202 body of a submit is a
function of the command alone, so an attempt that completes a record from
the ledger after a takeover rebuilds the very bytes the first attempt sent.

Times are RFC 3339 UTC with nanosecond precision, always nine fraction
digits: ``2026-01-02T14:30:05.123456789Z``. Decimals are strings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Final

from orders.commands import CancelOrder, SubmitOrder, SubmitPayment
from orders.problems import PROBLEM_TYPES
from orders.trading import TradingState, TradingStatus
from orders.views import OrderRecord, OrderStatus, PaymentRecord, PaymentStatus

__all__ = [
    "CANCEL_SCHEMA",
    "ORDER_ACCEPTED_SCHEMA",
    "ORDER_PAGE_SCHEMA",
    "ORDER_SCHEMA",
    "PAYMENT_ACCEPTED_SCHEMA",
    "PAYMENT_SCHEMA",
    "PROBLEM_SCHEMA",
    "TRADING_STATUS_SCHEMA",
    "cancel_body",
    "order_accepted_body",
    "order_body",
    "order_page_body",
    "payment_accepted_body",
    "payment_body",
    "rfc3339",
    "trading_status_body",
]

_NS_PER_S: Final = 1_000_000_000


def rfc3339(ts_ns: int) -> str:
    """Return UNIX ns as RFC 3339 UTC with nine fraction digits."""
    seconds, nanos = divmod(ts_ns, _NS_PER_S)
    moment = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def order_accepted_body(command: SubmitOrder) -> dict[str, object]:
    """The 202 body of POST /v1/orders."""
    return {
        "order_id": command.order_id,
        "status": OrderStatus.ACCEPTED.value,
        "account_id": command.account_id,
        "symbol": command.symbol,
        "side": command.side.value,
        "quantity": _decimal(command.quantity),
        "type": command.order_type.value,
        "limit_price": _decimal(command.limit_price),
        "time_in_force": command.time_in_force.value,
        "client_order_id": command.client_order_id,
        "transfer_id": command.transfer_id,
        "accepted_at": rfc3339(command.ts_accepted),
        "trace_id": command.trace_id,
    }


def payment_accepted_body(command: SubmitPayment) -> dict[str, object]:
    """The 202 body of POST /v1/payments."""
    return {
        "payment_id": command.payment_id,
        "status": PaymentStatus.ACCEPTED.value,
        "account_id": command.account_id,
        "kind": command.kind.value,
        "amount": _decimal(command.amount),
        "currency": command.currency,
        "reference": command.reference,
        "transfer_id": command.transfer_id,
        "accepted_at": rfc3339(command.ts_accepted),
        "trace_id": command.trace_id,
    }


def cancel_body(command: CancelOrder) -> dict[str, object]:
    """The 202 body of DELETE /v1/orders/{order_id}."""
    return {
        "order_id": command.order_id,
        "status": "cancel_requested",
        "transfer_id": command.transfer_id,
        "requested_at": rfc3339(command.ts_accepted),
        "trace_id": command.trace_id,
    }


def order_body(record: OrderRecord) -> dict[str, object]:
    """An order as GET /v1/orders/{order_id} answers it."""
    return {
        "order_id": record.order_id,
        "status": record.status.value,
        "account_id": record.account_id,
        "symbol": record.symbol,
        "side": record.side.value,
        "quantity": _decimal(record.quantity),
        "type": record.order_type.value,
        "limit_price": _decimal(record.limit_price),
        "time_in_force": record.time_in_force.value,
        "client_order_id": record.client_order_id,
        "transfer_id": record.transfer_id,
        "filled_quantity": _decimal(record.filled_quantity),
        "average_price": _decimal(record.average_price),
        "reason": record.reason,
        "accepted_at": rfc3339(record.ts_accepted),
        "updated_at": rfc3339(record.ts_updated),
    }


def order_page_body(orders: Sequence[OrderRecord], next_cursor: str | None) -> dict[str, object]:
    """The body of GET /v1/orders."""
    return {"data": [order_body(o) for o in orders], "next_cursor": next_cursor}


def payment_body(record: PaymentRecord) -> dict[str, object]:
    """A payment as GET /v1/payments/{payment_id} answers it."""
    return {
        "payment_id": record.payment_id,
        "status": record.status.value,
        "account_id": record.account_id,
        "kind": record.kind.value,
        "amount": _decimal(record.amount),
        "currency": record.currency,
        "reference": record.reference,
        "transfer_id": record.transfer_id,
        "reason": record.reason,
        "accepted_at": rfc3339(record.ts_accepted),
        "updated_at": rfc3339(record.ts_updated),
    }


def trading_status_body(status: TradingStatus) -> dict[str, object]:
    """The body of GET and POST /admin/trading-state."""
    return {
        "state": status.state.value,
        "reason": status.reason,
        "changed_by": status.changed_by,
        "changed_at": None if status.ts_changed == 0 else rfc3339(status.ts_changed),
    }


# --- JSON Schemas of the bodies above (for the OpenAPI document) ------------------------

_STRING: Final = {"type": "string"}
_NULLABLE_STRING: Final = {"type": ["string", "null"]}
_DECIMAL: Final = {"type": "string", "description": "A decimal string."}
_NULLABLE_DECIMAL: Final = {"type": ["string", "null"], "description": "A decimal string."}
_TIME: Final = {"type": "string", "format": "date-time", "description": "RFC 3339 UTC, ns."}
_TRACE: Final = {"type": "string", "pattern": "^[0-9a-f]{32}$"}


def _object(properties: dict[str, object]) -> dict[str, object]:
    return {
        "type": "object",
        "required": list(properties),
        "properties": properties,
    }


def _enum(values: Sequence[str]) -> dict[str, object]:
    return {"type": "string", "enum": list(values)}


_ORDER_FIELDS: Final = {
    "order_id": _STRING,
    "account_id": _STRING,
    "symbol": _STRING,
    "side": _enum(["buy", "sell"]),
    "quantity": _DECIMAL,
    "type": _enum(["market", "limit"]),
    "limit_price": _NULLABLE_DECIMAL,
    "time_in_force": _enum(["day", "gtc", "ioc"]),
    "client_order_id": _NULLABLE_STRING,
    "transfer_id": _STRING,
}
_PAYMENT_FIELDS: Final = {
    "payment_id": _STRING,
    "account_id": _STRING,
    "kind": _enum(["deposit", "withdrawal"]),
    "amount": _DECIMAL,
    "currency": _STRING,
    "reference": _NULLABLE_STRING,
    "transfer_id": _STRING,
}

ORDER_ACCEPTED_SCHEMA: Final = _object(
    {
        **_ORDER_FIELDS,
        "status": {"const": "accepted"},
        "accepted_at": _TIME,
        "trace_id": _TRACE,
    }
)
ORDER_SCHEMA: Final = _object(
    {
        **_ORDER_FIELDS,
        "status": _enum([s.value for s in OrderStatus]),
        "filled_quantity": _DECIMAL,
        "average_price": _NULLABLE_DECIMAL,
        "reason": _NULLABLE_STRING,
        "accepted_at": _TIME,
        "updated_at": _TIME,
    }
)
ORDER_PAGE_SCHEMA: Final = _object(
    {
        "data": {"type": "array", "items": {"$ref": "#/components/schemas/Order"}},
        "next_cursor": _NULLABLE_STRING,
    }
)
PAYMENT_ACCEPTED_SCHEMA: Final = _object(
    {
        **_PAYMENT_FIELDS,
        "status": {"const": "accepted"},
        "accepted_at": _TIME,
        "trace_id": _TRACE,
    }
)
PAYMENT_SCHEMA: Final = _object(
    {
        **_PAYMENT_FIELDS,
        "status": _enum([s.value for s in PaymentStatus]),
        "reason": _NULLABLE_STRING,
        "accepted_at": _TIME,
        "updated_at": _TIME,
    }
)
CANCEL_SCHEMA: Final = _object(
    {
        "order_id": _STRING,
        "status": {"const": "cancel_requested"},
        "transfer_id": _STRING,
        "requested_at": _TIME,
        "trace_id": _TRACE,
    }
)
TRADING_STATUS_SCHEMA: Final = _object(
    {
        "state": _enum([s.value for s in TradingState]),
        "reason": _STRING,
        "changed_by": _NULLABLE_STRING,
        "changed_at": {**_TIME, "type": ["string", "null"]},
    }
)
PROBLEM_SCHEMA: Final = {
    "type": "object",
    "description": "RFC 9457 problem details; extension members depend on the code.",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": _STRING,
        "status": {"type": "integer"},
        "code": _enum([p.code for p in PROBLEM_TYPES]),
        "detail": _STRING,
        "field": {"type": "string", "description": "JSON Pointer of the offending field."},
        "retry_after_s": {"type": "integer", "description": "Also sent as Retry-After."},
    },
}
