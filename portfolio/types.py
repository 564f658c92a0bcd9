"""Identifiers and values of the portfolio domain.

Times are ``ts_event`` (when the fill happened at the venue) as UNIX ns.
Quantities are signed: positive is long or a buy, negative short or a sell.
Prices and money in analytics are float64 in the instrument's currency
unless a name says otherwise; the ledger keeps exact amounts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import NewType

__all__ = ["AccountId", "CashMovement", "Fill", "PositionState", "Status"]

AccountId = NewType("AccountId", str)


class Status(IntEnum):
    """How far a value can be trusted; larger is worse, and combining takes the max.

    ``STALE``: computed from a price or FX rate that is stale (old, or its
    feed is down). ``UNPRICED``: a price or FX rate is missing, so the value
    is unknown (NaN) and left out of totals, which then carry the flag.
    """

    OK = 0
    STALE = 1
    UNPRICED = 2

    @property
    def label(self) -> str:
        """Lower-case name used on the wire."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Fill:
    """An execution against an account (an event, immutable).

    ``commission`` is charged in ``commission_currency`` (the instrument's
    currency when None). ``commission_fx`` converts it into the instrument's
    currency at the fill (instrument-currency units per commission-currency
    unit), so the position can carry its commissions in one currency.
    ``ledger_seq`` is the ledger sequence number of the fill; a position
    store is versioned by the last one it reflects.
    """

    account: AccountId
    instrument_ix: int
    quantity: float
    price: float
    ledger_seq: int
    ts_event: int = 0
    commission: float = 0.0
    commission_currency: str | None = None
    commission_fx: float = 1.0

    def __post_init__(self) -> None:
        for name in ("quantity", "price", "commission", "commission_fx"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, was {value}")
        if self.quantity == 0:
            raise ValueError(f"quantity must be non-zero, was {self.quantity}")
        if self.price < 0:
            raise ValueError(f"price must be >= 0, was {self.price}")
        if self.commission < 0:
            raise ValueError(f"commission must be >= 0, was {self.commission}")
        if self.commission_fx <= 0:
            raise ValueError(f"commission_fx must be positive, was {self.commission_fx}")


@dataclass(frozen=True, slots=True)
class CashMovement:
    """Cash into (positive ``amount``) or out of an account: a settled payment (an event).

    ``ledger_seq`` is the ledger sequence of the movement, like a fill's.
    """

    account: AccountId
    currency: str
    amount: float
    ledger_seq: int
    ts_event: int = 0

    def __post_init__(self) -> None:
        if not math.isfinite(self.amount) or self.amount == 0:
            raise ValueError(f"amount must be finite and non-zero, was {self.amount}")


@dataclass(frozen=True, slots=True)
class PositionState:
    """One position under the average-cost method.

    ``avg_cost`` is the average price of the open quantity (0 when flat).
    ``realised_pnl`` and ``commission`` accumulate in the instrument's
    currency, multiplier included. ``day_open_quantity`` is the quantity at
    the start of the day and ``day_trade_value`` the sum of quantity x price
    of the day's fills, which together make day P&L exact with intraday
    trades.
    """

    quantity: float = 0.0
    avg_cost: float = 0.0
    realised_pnl: float = 0.0
    commission: float = 0.0
    day_open_quantity: float = 0.0
    day_trade_value: float = 0.0

    def __post_init__(self) -> None:
        values = (
            self.quantity,
            self.avg_cost,
            self.realised_pnl,
            self.commission,
            self.day_open_quantity,
            self.day_trade_value,
        )
        if all(map(math.isfinite, values)):  # the hot path: one call, no field lookups
            return
        for field in fields(self):
            value = getattr(self, field.name)
            if not math.isfinite(value):
                raise ValueError(f"{field.name} must be finite, was {value}")
