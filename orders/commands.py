"""Commands handed from order entry to the ledger: the versioned hand-off schema.

A command is what a ``202`` promises: it is durable on the command bus
(Kafka ``orders.submitted``, key ``account_id``, or the embedded inbox)
before the API answers. The ledger consumes it exactly once in effect: it
dedupes on ``transfer_id`` forever, and "already exists" is a success.

Wire form (schema version 1), a JSON object; decimals are strings, times are
UNIX nanoseconds::

    {"v": 1, "type": "order.submit", "transfer_id": "...", "trace_id": "...",
     "principal": "svc-oms", "account_id": "DEMO-0001", "ts_accepted": 17...,
     "order_id": "ord_...", "symbol": "AAPL", "side": "buy", "quantity": "100",
     "order_type": "limit", "limit_price": "187.25", "time_in_force": "day",
     "client_order_id": null}

    {"v": 1, "type": "payment.submit", ..., "payment_id": "pay_...",
     "kind": "withdrawal", "amount": "2500.00", "currency": "USD", "reference": null}

    {"v": 1, "type": "order.cancel", ..., "order_id": "ord_..."}

The types here are plain values: encoding to bytes (orjson) is the bus
adapter's job, so this module stays pure. ``docs/api.md`` documents the
schema; a consumer refuses a version it does not know (``unsupported_version``)
and dead-letters it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Final, TypeAlias, TypeVar

from orders.errors import CommandDecodeError
from orders.types import (
    AccountId,
    ClientOrderId,
    OrderId,
    OrderType,
    PaymentId,
    PaymentKind,
    PrincipalId,
    Side,
    TimeInForce,
    TraceId,
    TransferId,
)

__all__ = [
    "SCHEMA_VERSION",
    "CancelOrder",
    "Command",
    "CommandType",
    "SubmitOrder",
    "SubmitPayment",
    "command_from_wire",
    "command_to_wire",
]

SCHEMA_VERSION: Final = 1


class CommandType(StrEnum):
    SUBMIT_ORDER = "order.submit"
    SUBMIT_PAYMENT = "payment.submit"
    CANCEL_ORDER = "order.cancel"


@dataclass(frozen=True, slots=True)
class SubmitOrder:
    """Place an order (validated and risk-checked by the API before it is sent).

    ``quantity`` is positive (the side gives the direction) and a whole
    number of lots; ``limit_price`` is on the tick grid, and set exactly when
    ``order_type`` is ``limit``. ``ts_accepted`` is when the API accepted it.
    """

    transfer_id: TransferId
    trace_id: TraceId
    principal: PrincipalId
    account_id: AccountId
    ts_accepted: int
    order_id: OrderId
    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType
    limit_price: Decimal | None
    time_in_force: TimeInForce
    client_order_id: ClientOrderId | None = None

    @property
    def type(self) -> CommandType:
        return CommandType.SUBMIT_ORDER


@dataclass(frozen=True, slots=True)
class SubmitPayment:
    """Move cash into (deposit) or out of (withdrawal) an account.

    ``amount`` is positive with at most the currency's minor-unit decimals.
    """

    transfer_id: TransferId
    trace_id: TraceId
    principal: PrincipalId
    account_id: AccountId
    ts_accepted: int
    payment_id: PaymentId
    kind: PaymentKind
    amount: Decimal
    currency: str
    reference: str | None = None

    @property
    def type(self) -> CommandType:
        return CommandType.SUBMIT_PAYMENT


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """Cancel what rests of an order; a no-op once the order is final."""

    transfer_id: TransferId
    trace_id: TraceId
    principal: PrincipalId
    account_id: AccountId
    ts_accepted: int
    order_id: OrderId

    @property
    def type(self) -> CommandType:
        return CommandType.CANCEL_ORDER


Command: TypeAlias = SubmitOrder | SubmitPayment | CancelOrder


def command_to_wire(command: Command) -> dict[str, object]:
    """Return the JSON-ready wire object of ``command`` (decimals as strings)."""
    wire: dict[str, object] = {
        "v": SCHEMA_VERSION,
        "type": command.type.value,
        "transfer_id": command.transfer_id,
        "trace_id": command.trace_id,
        "principal": command.principal,
        "account_id": command.account_id,
        "ts_accepted": command.ts_accepted,
    }
    if isinstance(command, SubmitOrder):
        wire.update(
            order_id=command.order_id,
            symbol=command.symbol,
            side=command.side.value,
            quantity=_decimal_text(command.quantity),
            order_type=command.order_type.value,
            limit_price=None if command.limit_price is None else _decimal_text(command.limit_price),
            time_in_force=command.time_in_force.value,
            client_order_id=command.client_order_id,
        )
    elif isinstance(command, SubmitPayment):
        wire.update(
            payment_id=command.payment_id,
            kind=command.kind.value,
            amount=_decimal_text(command.amount),
            currency=command.currency,
            reference=command.reference,
        )
    else:
        wire.update(order_id=command.order_id)
    return wire


def command_from_wire(wire: object) -> Command:
    """Decode a wire object (already parsed from JSON) into a command.

    Raises ``CommandDecodeError`` with a stable ``reason`` for anything that
    is not a valid version-1 command. Only structure and types are checked
    here; business validation (known symbol, tick grid) happened at the API
    and is repeated by the ledger against its own reference data.
    """
    if not isinstance(wire, Mapping):
        raise CommandDecodeError("not_an_object", f"command must be an object, was {wire!r:.80}")
    reader = _Reader(wire)
    version = reader.get("v", int)
    if version != SCHEMA_VERSION:
        raise CommandDecodeError(
            "unsupported_version", f"command version must be {SCHEMA_VERSION}, was {version}"
        )
    kind = reader.enum("type", CommandType)
    head = (
        TransferId(reader.get("transfer_id", str)),
        TraceId(reader.get("trace_id", str)),
        PrincipalId(reader.get("principal", str)),
        AccountId(reader.get("account_id", str)),
        reader.get("ts_accepted", int),
    )
    if kind is CommandType.SUBMIT_ORDER:
        limit_text = reader.optional("limit_price", str)
        client_order_id = reader.optional("client_order_id", str)
        return SubmitOrder(
            *head,
            order_id=OrderId(reader.get("order_id", str)),
            symbol=reader.get("symbol", str),
            side=reader.enum("side", Side),
            quantity=reader.decimal("quantity"),
            order_type=reader.enum("order_type", OrderType),
            limit_price=None if limit_text is None else reader.decimal("limit_price"),
            time_in_force=reader.enum("time_in_force", TimeInForce),
            client_order_id=None if client_order_id is None else ClientOrderId(client_order_id),
        )
    if kind is CommandType.SUBMIT_PAYMENT:
        return SubmitPayment(
            *head,
            payment_id=PaymentId(reader.get("payment_id", str)),
            kind=reader.enum("kind", PaymentKind),
            amount=reader.decimal("amount"),
            currency=reader.get("currency", str),
            reference=reader.optional("reference", str),
        )
    return CancelOrder(*head, order_id=OrderId(reader.get("order_id", str)))


def _decimal_text(value: Decimal) -> str:
    # Plain notation, never exponents ("1E+2"): consumers in other languages parse it as is.
    return format(value, "f")


_T = TypeVar("_T")
_E = TypeVar("_E", bound=StrEnum)


class _Reader:
    # Typed field access that turns every structural problem into a CommandDecodeError.

    def __init__(self, wire: Mapping[object, object]) -> None:
        self._wire = wire

    def get(self, name: str, kind: type[_T]) -> _T:
        if name not in self._wire:
            raise CommandDecodeError("missing_field", f"command lacks field {name}")
        value = self._wire[name]
        # bool is an int subclass; a JSON true is never a valid integer field.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise CommandDecodeError(
                "bad_field", f"{name} must be {kind.__name__}, was {type(value).__name__}"
            )
        return value

    def optional(self, name: str, kind: type[_T]) -> _T | None:
        if self._wire.get(name) is None:
            return None
        return self.get(name, kind)

    def enum(self, name: str, kind: type[_E]) -> _E:
        return _parse(name, self.get(name, str), kind)

    def decimal(self, name: str) -> Decimal:
        text = self.get(name, str)
        try:
            value = Decimal(text)
        except InvalidOperation as e:
            raise CommandDecodeError("bad_field", f"{name} must be a decimal, was {text!r}") from e
        if not value.is_finite():
            raise CommandDecodeError("bad_field", f"{name} must be finite, was {text!r}")
        return value


def _parse(name: str, text: str, kind: Callable[[str], _E]) -> _E:
    try:
        return kind(text)
    except ValueError as e:
        raise CommandDecodeError("bad_field", f"{name} has an unknown value {text!r}") from e
