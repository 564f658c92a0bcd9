"""The bodies of the order API's requests: their schemas and their validation.

Validation has two steps, both before any side effect and neither stored
by the idempotency layer (a corrected retry may reuse its key):

1. form, by the schema objects below (400 codes, ``orders.schema``);
2. meaning against reference data (422 codes): the symbol is in the
   instrument master, the quantity is positive and a whole number of lots,
   a limit order has a positive ``limit_price`` on the tick grid and a
   market order has none; a payment's currency is an ISO 4217 code and its
   positive amount has at most the currency's minor-unit decimals.

Live checks (tradable now, price band, buying power, limits, trading
state) are pre-trade risk (``orders.risk``), which runs after the claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from orders import problems
from orders.amounts import MINOR_UNITS, decimals_of, is_multiple
from orders.problems import Problem
from orders.schema import BodySchema, DecimalField, EnumField, TextField, ValidatedBody, pointer
from orders.trading import TradingState
from orders.types import (
    AccountId,
    ClientOrderId,
    OrderType,
    PaymentKind,
    Side,
    TimeInForce,
)
from pricing.instruments import Instrument, InstrumentMaster

__all__ = [
    "ORDER_SCHEMA",
    "PAYMENT_SCHEMA",
    "TRADING_STATE_SCHEMA",
    "OrderRequest",
    "PaymentRequest",
    "TradingStateRequest",
    "validate_order",
    "validate_payment",
    "validate_trading_state",
]

ACCOUNT_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
_PRINTABLE_ASCII: Final = r"^[!-~]+$"
_NO_CONTROLS: Final = r"^[^\x00-\x1f\x7f]+$"

_ACCOUNT = TextField(
    "account_id", "The account to act for (the token's accounts claim must cover it).", 64,
    ACCOUNT_ID_PATTERN,
)  # fmt: skip

ORDER_SCHEMA: Final = BodySchema(
    name="OrderRequest",
    description="The body of POST /v1/orders.",
    fields=(
        _ACCOUNT,
        TextField(
            "symbol",
            "An instrument symbol of the master (GET /v1/instruments).",
            32,
            r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$",
        ),
        EnumField.of("side", "buy or sell.", Side),
        DecimalField("quantity", "Units to trade: positive, a whole number of lots.", "100"),
        EnumField.of("type", "market or limit.", OrderType),
        DecimalField(
            "limit_price",
            "Limit orders only: a price on the instrument's tick grid, in its currency.",
            "187.25",
            required=False,
        ),
        EnumField.of("time_in_force", "day, gtc (good till cancelled) or ioc.", TimeInForce),
        TextField(
            "client_order_id",
            "The caller's own reference, echoed back.",
            64,
            _PRINTABLE_ASCII,
            required=False,
        ),
    ),
    example={
        "account_id": "DEMO-0001",
        "symbol": "AAPL",
        "side": "buy",
        "quantity": "100",
        "type": "limit",
        "limit_price": "187.25",
        "time_in_force": "day",
        "client_order_id": "oms-20260101-000042",
    },
)

PAYMENT_SCHEMA: Final = BodySchema(
    name="PaymentRequest",
    description="The body of POST /v1/payments.",
    fields=(
        _ACCOUNT,
        EnumField.of("kind", "deposit or withdrawal.", PaymentKind),
        DecimalField(
            "amount",
            "Positive, with at most the currency's ISO 4217 minor-unit decimals.",
            "2500.00",
        ),
        TextField("currency", "An ISO 4217 code.", 3, r"^[A-Z]{3}$"),
        TextField(
            "reference",
            "Free text for the payment rail, echoed back.",
            140,
            _NO_CONTROLS,
            required=False,
        ),
    ),
    example={
        "account_id": "DEMO-0001",
        "kind": "deposit",
        "amount": "2500.00",
        "currency": "USD",
        "reference": "wire 2026-01-02",
    },
)

TRADING_STATE_SCHEMA: Final = BodySchema(
    name="TradingStateRequest",
    description="The body of POST /admin/trading-state: the kill switch.",
    fields=(
        EnumField.of(
            "state",
            "ACTIVE: normal; HALTED: every order refused; REDUCING: only position-reducing "
            "orders accepted.",
            TradingState,
        ),
        TextField("reason", "Why, for the audit log.", 200, _NO_CONTROLS),
    ),
    example={"state": "HALTED", "reason": "exchange outage"},
)


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A validated order request; ``instrument`` is its row of the master."""

    account_id: AccountId
    instrument: Instrument
    side: Side
    quantity: Decimal
    order_type: OrderType
    limit_price: Decimal | None
    time_in_force: TimeInForce
    client_order_id: ClientOrderId | None

    @property
    def symbol(self) -> str:
        return self.instrument.symbol


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """A validated payment request."""

    account_id: AccountId
    kind: PaymentKind
    amount: Decimal
    currency: str
    reference: str | None


@dataclass(frozen=True, slots=True)
class TradingStateRequest:
    state: TradingState
    reason: str


def validate_order(body: object, master: InstrumentMaster) -> OrderRequest | Problem:
    """Return the order of a parsed body, or the problem of its first bad field."""
    checked = ORDER_SCHEMA.validate(body)
    if isinstance(checked, Problem):
        return checked
    symbol = checked.text("symbol")
    if symbol not in master.symbol_index:
        return problems.UNKNOWN_SYMBOL(
            f"symbol must be in the instrument master, was {symbol!r}", field=pointer("symbol")
        )
    instrument = master[master.ix(symbol)]
    quantity = checked.decimal("quantity")
    order_type = checked.enum("type", OrderType)
    limit_price = checked.optional_decimal("limit_price")
    problem = (
        _positive("quantity", quantity)
        or _lots(instrument, quantity)
        or _limit_price(instrument, order_type, limit_price)
    )
    if problem is not None:
        return problem
    client_order_id = checked.optional_text("client_order_id")
    return OrderRequest(
        account_id=AccountId(checked.text("account_id")),
        instrument=instrument,
        side=checked.enum("side", Side),
        quantity=quantity,
        order_type=order_type,
        limit_price=limit_price,
        time_in_force=checked.enum("time_in_force", TimeInForce),
        client_order_id=None if client_order_id is None else ClientOrderId(client_order_id),
    )


def validate_payment(body: object) -> PaymentRequest | Problem:
    """Return the payment of a parsed body, or the problem of its first bad field."""
    checked = PAYMENT_SCHEMA.validate(body)
    if isinstance(checked, Problem):
        return checked
    currency = checked.text("currency")
    amount = checked.decimal("amount")
    minor_unit = MINOR_UNITS.get(currency)
    if minor_unit is None:
        return problems.UNKNOWN_CURRENCY(
            f"currency must be a known ISO 4217 code, was {currency!r}", field=pointer("currency")
        )
    problem = _positive("amount", amount)
    if problem is not None:
        return problem
    if decimals_of(amount) > minor_unit:
        return problems.TOO_MANY_DECIMALS(
            f"amount in {currency} must have at most {minor_unit} decimals, was {amount}",
            field=pointer("amount"),
        )
    return PaymentRequest(
        account_id=AccountId(checked.text("account_id")),
        kind=checked.enum("kind", PaymentKind),
        amount=amount,
        currency=currency,
        reference=checked.optional_text("reference"),
    )


def validate_trading_state(body: object) -> TradingStateRequest | Problem:
    """Return the requested trading state, or the problem of the body."""
    checked: ValidatedBody | Problem = TRADING_STATE_SCHEMA.validate(body)
    if isinstance(checked, Problem):
        return checked
    return TradingStateRequest(checked.enum("state", TradingState), checked.text("reason"))


def _positive(name: str, value: Decimal) -> Problem | None:
    if value > 0:
        return None
    return problems.NOT_POSITIVE(f"{name} must be positive, was {value}", field=pointer(name))


def _lots(instrument: Instrument, quantity: Decimal) -> Problem | None:
    if is_multiple(quantity, instrument.lot_size):
        return None
    return problems.QUANTITY_NOT_LOT_MULTIPLE(
        f"quantity must be a multiple of the lot size {instrument.lot_size} of "
        f"{instrument.symbol}, was {quantity}",
        field=pointer("quantity"),
    )


def _limit_price(
    instrument: Instrument, order_type: OrderType, limit_price: Decimal | None
) -> Problem | None:
    if order_type is OrderType.MARKET:
        if limit_price is None:
            return None
        return problems.LIMIT_PRICE_FORBIDDEN(
            "a market order must not have a limit_price", field=pointer("limit_price")
        )
    if limit_price is None:
        return problems.LIMIT_PRICE_REQUIRED(
            "a limit order needs a limit_price", field=pointer("limit_price")
        )
    problem = _positive("limit_price", limit_price)
    if problem is not None:
        return problem
    if is_multiple(limit_price, instrument.tick_size):
        return None
    return problems.PRICE_OFF_TICK(
        f"limit_price must be a multiple of the tick size {instrument.tick_size} of "
        f"{instrument.symbol}, was {limit_price}",
        field=pointer("limit_price"),
    )
