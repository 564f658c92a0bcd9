"""Exact amounts: currency minor units, instrument quantity units, assets and rounding.

Cash is an ``int`` of the currency's minor unit (cents; yen have none).
A position is an ``int`` of the instrument's smallest quantity unit: one
unit is ``10**-d`` where ``d`` is the number of decimals of the lot size
(every instrument of the master has an integer lot size, so one unit is one
share, contract or FX base unit). Floats never enter these functions.

**Rounding.** An amount computed from a price (a fill's notional, a fee,
realised P&L posted as cash) is rounded to the minor unit once per fill,
half to even (banker's rounding), so rounding errors do not drift in one
direction over many fills.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final, NewType

from pricing.instruments import Instrument

__all__ = [
    "MINOR_DIGITS",
    "Asset",
    "cash_asset",
    "from_minor",
    "from_units",
    "instrument_asset",
    "is_cash_asset",
    "minor_digits",
    "quantity_digits",
    "to_minor",
    "to_minor_exact",
    "to_units",
]

Asset = NewType("Asset", str)
"""What a ledger account holds: ``cash:USD`` or ``inst:AAPL`` (by symbol)."""

MINOR_DIGITS: Final = {"USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "AUD": 2, "NZD": 2}
"""Decimal places of each currency's minor unit (ISO 4217)."""


def minor_digits(currency: str) -> int:
    """Decimal places of ``currency``'s minor unit; raises ``ValueError`` if unknown."""
    try:
        return MINOR_DIGITS[currency]
    except KeyError:
        raise ValueError(
            f"currency must be one of {sorted(MINOR_DIGITS)}, was {currency!r}"
        ) from None


def cash_asset(currency: str) -> Asset:
    """The asset of cash in ``currency``."""
    minor_digits(currency)
    return Asset(f"cash:{currency}")


def instrument_asset(symbol: str) -> Asset:
    """The asset of a position in the instrument ``symbol``."""
    return Asset(f"inst:{symbol}")


def is_cash_asset(asset: str) -> bool:
    """Whether ``asset`` is cash (else it is a position)."""
    return asset.startswith("cash:")


def to_minor(amount: Decimal, currency: str) -> int:
    """Round ``amount`` to ``currency``'s minor unit, half to even, as an integer."""
    digits = minor_digits(currency)
    return int(amount.scaleb(digits).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def to_minor_exact(amount: Decimal, currency: str) -> int:
    """Convert ``amount`` to minor units; raises ``ValueError`` if it needs rounding."""
    scaled = amount.scaleb(minor_digits(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"amount must have at most the {currency} minor digits, was {amount}")
    return int(scaled)


def from_minor(amount_minor: int, currency: str) -> Decimal:
    """The decimal amount of ``amount_minor`` minor units."""
    return Decimal(amount_minor).scaleb(-minor_digits(currency))


def quantity_digits(instrument: Instrument) -> int:
    """Decimal places of ``instrument``'s smallest quantity unit (from its lot size)."""
    exponent = instrument.lot_size.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # a finite Decimal has an int exponent
    return max(0, -exponent)


def to_units(quantity: Decimal, instrument: Instrument) -> int:
    """Quantity in the instrument's smallest unit; ``ValueError`` if not a whole unit."""
    scaled = quantity.scaleb(quantity_digits(instrument))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"quantity must be whole units of {instrument.symbol}, was {quantity}")
    return int(scaled)


def from_units(units: int, instrument: Instrument) -> Decimal:
    """The quantity of ``units`` smallest units."""
    return Decimal(units).scaleb(-quantity_digits(instrument))
