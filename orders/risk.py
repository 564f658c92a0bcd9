"""Pre-trade risk: pure checks of an order or payment against live state and limits.

The live state comes through ``AccountView`` (port; the gateway implements
it over the PortfolioEngine and the PriceBook). The checks run in this
order and stop at the first failure, each with its own problem code (all
422, stored and replayed by the idempotency layer):

1. ``trading_halted``: the trading state (``orders.trading``) is HALTED.
2. ``unknown_account``: the view does not know the account.
3. ``trading_reducing_only``: in REDUCING, the order must shrink the
   position without flipping it, counting pending orders on its side.
4. ``instrument_not_tradable``: blocked by the operator, or past expiry.
5. ``no_reference_price`` / ``reference_price_stale``: the reference price
   is the last trade, else the bid/ask mid; fail closed without one.
6. ``price_outside_band``: a limit price more than ``price_band_bps`` away
   from the reference price.
7. ``notional_limit_exceeded``: quantity x price x multiplier over the
   limit of the instrument's currency (no limit for the currency: refused).
8. ``position_limit_exceeded``: position + pending orders on the same side
   + the order beyond the symbol's limit, in absolute units.
9. ``currency_not_held`` / ``insufficient_buying_power``: see below.

Buying power, and cross-currency orders: an order's cash moves in the
instrument's currency, and there is no implicit FX. A buy (and the part of
a sell that opens or extends a short, secured in full) needs cash in the
instrument's currency: its cash balance minus what pending commands
reserved there must cover quantity x price x multiplier. Base-currency cash
does not fund a foreign-currency order; the account must hold the
currency (a payment in it, or an FX trade, first). For a market order the
price is the ask for a buy (the bid for a sell), else the reference price.

A withdrawal needs the cash: balance minus reservations in its currency
(``insufficient_funds``). A deposit needs only a known account.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Protocol

from orders import problems
from orders.pending import PendingBook, Reservation
from orders.problems import Problem
from orders.requests import OrderRequest, PaymentRequest
from orders.settings import RiskLimits
from orders.trading import TradingState
from orders.types import AccountId, OrderType, PaymentKind, Side, TransferId

__all__ = [
    "AccountSnapshot",
    "AccountView",
    "MarketQuote",
    "check_order",
    "check_payment",
]

_ZERO: Final = Decimal(0)
_BPS: Final = Decimal(10_000)
_NS_PER_S: Final = 1_000_000_000


@dataclass(frozen=True, slots=True)
class MarketQuote:
    """The latest prices of an instrument, in its currency (None: not seen yet)."""

    last: Decimal | None
    bid: Decimal | None
    ask: Decimal | None
    is_stale: bool = False

    @property
    def reference_price(self) -> Decimal | None:
        """The last trade, else the bid/ask mid, else None."""
        if self.last is not None:
            return self.last
        if self.bid is not None and self.ask is not None:
            return (self.bid + self.ask) / 2
        return None


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """An account's cash by currency and signed positions by symbol (units)."""

    account_id: AccountId
    base_currency: str
    cash: Mapping[str, Decimal]
    positions: Mapping[str, Decimal]

    def position(self, symbol: str) -> Decimal:
        return self.positions.get(symbol, _ZERO)


class AccountView(Protocol):
    """Live account and market state for pre-trade checks (port).

    Both methods raise ``StateUnavailable`` when they cannot answer.
    """

    async def account(self, account_id: AccountId) -> AccountSnapshot | None:
        """Return the account's snapshot, or None for an unknown account."""
        ...

    async def quote(self, symbol: str) -> MarketQuote | None:
        """Return the instrument's latest prices, or None if it has none."""
        ...


def check_order(
    order: OrderRequest,
    transfer_id: TransferId,
    account: AccountSnapshot | None,
    quote: MarketQuote | None,
    *,
    state: TradingState,
    limits: RiskLimits,
    pending: PendingBook,
    now_ns: int,
) -> Reservation | Problem:
    """Return the reservation of an allowed order, or the problem of the first failed check."""
    symbol, instrument = order.symbol, order.instrument
    if state is TradingState.HALTED:
        return problems.TRADING_HALTED("trading is halted: no order is accepted")
    if account is None:
        return _unknown_account(order.account_id)
    position = account.position(symbol)
    pending_same_side = pending.quantity(order.account_id, symbol, order.side, now_ns)
    signed = order.quantity if order.side is Side.BUY else -order.quantity
    # Worst case: every pending order on this side fills before this one.
    before = position + (pending_same_side if order.side is Side.BUY else -pending_same_side)
    after = before + signed
    if state is TradingState.REDUCING and not (abs(after) < abs(before) and after * before >= 0):
        return problems.TRADING_REDUCING_ONLY(
            f"trading is reducing-only: the order would take {symbol} from {before} to {after}"
        )
    if symbol in limits.blocked_symbols or _is_expired(instrument.expiry, now_ns):
        return problems.INSTRUMENT_NOT_TRADABLE(f"{symbol} cannot be traded now")
    reference = None if quote is None else quote.reference_price
    if quote is None or reference is None:
        return problems.NO_REFERENCE_PRICE(f"{symbol} has no price to check the order against")
    if quote.is_stale:
        return problems.REFERENCE_PRICE_STALE(f"the price of {symbol} is stale")
    if order.order_type is OrderType.LIMIT:
        assert order.limit_price is not None  # validation requires it for limit orders
        band = reference * limits.price_band_bps / _BPS
        if abs(order.limit_price - reference) > band:
            return problems.PRICE_OUTSIDE_BAND(
                f"limit_price {order.limit_price} is more than {limits.price_band_bps} bps "
                f"from the reference price {reference} of {symbol}"
            )
        price = order.limit_price
    else:
        side_price = quote.ask if order.side is Side.BUY else quote.bid
        price = side_price if side_price is not None else reference
    currency = instrument.currency
    notional = order.quantity * price * instrument.multiplier
    notional_limit = limits.max_order_notional.get(currency)
    if notional_limit is None or notional > notional_limit:
        return problems.NOTIONAL_LIMIT_EXCEEDED(
            f"the order's notional {notional} {currency} exceeds the limit "
            f"{notional_limit if notional_limit is not None else 'none set'} {currency}"
        )
    position_limit = limits.position_limit(symbol)
    if abs(after) > position_limit and abs(after) > abs(before):
        return problems.POSITION_LIMIT_EXCEEDED(
            f"the position in {symbol} would reach {after}, beyond the limit {position_limit}"
        )
    # The part that opens or extends a short is secured in full, like a buy.
    opening = order.quantity if order.side is Side.BUY else max(_ZERO, -after) - max(_ZERO, -before)
    needed = opening * price * instrument.multiplier
    if needed > 0:
        if currency not in account.cash:
            return problems.CURRENCY_NOT_HELD(
                f"the account holds no {currency}, the currency of {symbol} "
                "(no implicit FX: fund the account in that currency first)"
            )
        available = account.cash[currency] - pending.cash(order.account_id, currency, now_ns)
        if needed > available:
            return problems.INSUFFICIENT_BUYING_POWER(
                f"the order needs {needed} {currency}, the account has {available} available"
            )
    return Reservation(
        transfer_id=transfer_id,
        account_id=order.account_id,
        currency=currency,
        cash=needed,
        symbol=symbol,
        side=order.side,
        quantity=order.quantity,
    )


def check_payment(
    payment: PaymentRequest,
    transfer_id: TransferId,
    account: AccountSnapshot | None,
    *,
    pending: PendingBook,
    now_ns: int,
) -> Reservation | Problem:
    """Return the reservation of an allowed payment (zero for a deposit), or its problem."""
    if account is None:
        return _unknown_account(payment.account_id)
    if payment.kind is PaymentKind.DEPOSIT:
        return Reservation(transfer_id, payment.account_id, payment.currency, _ZERO)
    balance = account.cash.get(payment.currency, _ZERO)
    available = balance - pending.cash(payment.account_id, payment.currency, now_ns)
    if payment.amount > available:
        return problems.INSUFFICIENT_FUNDS(
            f"the withdrawal of {payment.amount} {payment.currency} exceeds the "
            f"{available} {payment.currency} available"
        )
    return Reservation(transfer_id, payment.account_id, payment.currency, payment.amount)


def _unknown_account(account_id: AccountId) -> Problem:
    return problems.UNKNOWN_ACCOUNT(f"account {account_id} is unknown")


def _is_expired(expiry: dt.date | None, now_ns: int) -> bool:
    if expiry is None:
        return False
    today = dt.datetime.fromtimestamp(now_ns // _NS_PER_S, tz=dt.UTC).date()
    return today > expiry
