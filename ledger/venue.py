"""The simulated venue: fill prices, fees and liquidity, as pure functions.

- A **market** order fills at the ask (buy) or the bid (sell) moved
  against the client by ``slippage_bps``, rounded to the tick grid against
  the client (up for a buy, down for a sell). It is protected by a collar:
  at acceptance its worst price is the slipped price moved a further
  ``market_collar_bps``, and it never fills beyond it (the remainder rests
  as if it were a limit order at the collar, and its reservation is sized
  at the collar).
- A **limit** order is marketable when the ask is at or below its limit
  (buy) or the bid at or above it (sell). It fills at the slipped price,
  capped at the limit.
- **Liquidity**: one order fills at most ``max_fill_lots`` lots per fill,
  and one fill per order per tick batch (None: no limit).
- **Fees**: ``fee_per_unit`` per quantity unit (share, contract, FX unit)
  plus ``fee_bps`` of the notional, in the instrument's currency, rounded to
  the minor unit half to even.

Book prices are float64 (the PriceBook's); they are turned into exact
decimals on the tick grid first, so nothing after that is a float.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Final

from ledger.money import to_minor
from orders.types import OrderType, Side
from pricing.instruments import Instrument

__all__ = [
    "ExecutionSettings",
    "book_price",
    "collar_price",
    "executable_price",
    "fee_minor",
    "notional_minor",
    "slipped_price",
]

_BPS: Final = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class ExecutionSettings:
    """How the simulated venue fills orders (see the module docstring)."""

    slippage_bps: Decimal = Decimal(0)
    fee_per_unit: Decimal = Decimal(0)
    fee_bps: Decimal = Decimal(0)
    max_fill_lots: int | None = None
    market_collar_bps: Decimal = Decimal(500)
    allow_short_sales: bool = True

    def __post_init__(self) -> None:
        for name in ("slippage_bps", "fee_per_unit", "fee_bps", "market_collar_bps"):
            value = getattr(self, name)
            if not value.is_finite() or value < 0:
                raise ValueError(f"{name} must be a finite decimal >= 0, was {value}")
        if self.max_fill_lots is not None and self.max_fill_lots <= 0:
            raise ValueError(f"max_fill_lots must be positive, was {self.max_fill_lots}")


def book_price(value: float, instrument: Instrument) -> Decimal | None:
    """A PriceBook price as an exact decimal on the tick grid; None when NaN or <= 0."""
    if not math.isfinite(value) or value <= 0:
        return None
    tick = instrument.tick_size
    return (Decimal(repr(value)) / tick).quantize(Decimal(1), rounding=ROUND_HALF_EVEN) * tick


def _to_tick(price: Decimal, instrument: Instrument, *, up: bool) -> Decimal:
    tick = instrument.tick_size
    steps = (price / tick).quantize(Decimal(1), rounding=ROUND_CEILING if up else ROUND_FLOOR)
    return max(steps, Decimal(1)) * tick


def slipped_price(
    side: Side, bid: Decimal, ask: Decimal, instrument: Instrument, settings: ExecutionSettings
) -> Decimal:
    """The price a market order gets now: ask (buy) or bid (sell), moved by the slippage."""
    if side is Side.BUY:
        return _to_tick(ask * (1 + settings.slippage_bps / _BPS), instrument, up=True)
    return _to_tick(bid * (1 - settings.slippage_bps / _BPS), instrument, up=False)


def collar_price(
    side: Side, bid: Decimal, ask: Decimal, instrument: Instrument, settings: ExecutionSettings
) -> Decimal:
    """The worst price a market order accepted now may fill at."""
    slipped = slipped_price(side, bid, ask, instrument, settings)
    if side is Side.BUY:
        return _to_tick(slipped * (1 + settings.market_collar_bps / _BPS), instrument, up=True)
    return _to_tick(slipped * (1 - settings.market_collar_bps / _BPS), instrument, up=False)


def executable_price(
    side: Side,
    order_type: OrderType,
    limit: Decimal,
    bid: Decimal | None,
    ask: Decimal | None,
    instrument: Instrument,
    settings: ExecutionSettings,
) -> Decimal | None:
    """The fill price now for an order with worst price ``limit``, or None if not marketable.

    ``limit`` is the limit price, or a market order's collar.
    """
    if bid is None or ask is None:
        return None
    if side is Side.BUY:
        if ask > limit:
            return None
    elif bid < limit:
        return None
    price = slipped_price(side, bid, ask, instrument, settings)
    if order_type is OrderType.MARKET:
        return price if (price <= limit if side is Side.BUY else price >= limit) else None
    return min(price, limit) if side is Side.BUY else max(price, limit)


def notional_minor(quantity: Decimal, price: Decimal, instrument: Instrument) -> int:
    """``|quantity| x price x multiplier`` in the instrument currency's minor units."""
    return to_minor(abs(quantity) * price * instrument.multiplier, instrument.currency)


def fee_minor(
    units: int,
    quantity: Decimal,
    price: Decimal,
    instrument: Instrument,
    settings: ExecutionSettings,
) -> int:
    """The fee of a fill of ``units`` quantity units (``quantity``) at ``price``."""
    notional = abs(quantity) * price * instrument.multiplier
    fee = settings.fee_per_unit * abs(units) + settings.fee_bps * notional / _BPS
    return to_minor(fee, instrument.currency)
