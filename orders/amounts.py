"""Decimal strings on the wire: strict parsing, grids and ISO 4217 minor units.

Quantities, prices and amounts travel as JSON strings in plain decimal
notation: ``"100"``, ``"187.25"``, ``"0.00005"``. Refused: JSON numbers,
signs, exponents (``"1e3"``), ``NaN``/``Infinity``, spaces, a bare or
trailing point (``".5"``, ``"5."``), more than ``MAX_INTEGER_DIGITS``
digits before the point or ``MAX_FRACTION_DIGITS`` after it. Values are
``Decimal`` and never touch a float.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final

__all__ = [
    "DECIMAL_PATTERN",
    "MAX_FRACTION_DIGITS",
    "MAX_INTEGER_DIGITS",
    "MINOR_UNITS",
    "DecimalTextError",
    "decimals_of",
    "is_multiple",
    "parse_decimal_text",
]

MAX_INTEGER_DIGITS: Final = 15
"""Digits before the point: 10^15 covers any order or payment."""

MAX_FRACTION_DIGITS: Final = 12
"""Digits after the point: finer than any tick size in the master."""

DECIMAL_PATTERN: Final = r"^[0-9]+(\.[0-9]+)?$"
"""The syntax of a decimal string (also published in the OpenAPI document)."""

_SYNTAX: Final = re.compile(r"([0-9]+)(?:\.([0-9]+))?")

MINOR_UNITS: Final[dict[str, int]] = {
    # ISO 4217 exponents: decimals a payment amount may have in each currency.
    "AED": 2,
    "AUD": 2,
    "BHD": 3,
    "BRL": 2,
    "CAD": 2,
    "CHF": 2,
    "CLP": 0,
    "CNY": 2,
    "CZK": 2,
    "DKK": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "HUF": 2,
    "IDR": 2,
    "ILS": 2,
    "INR": 2,
    "ISK": 0,
    "JOD": 3,
    "JPY": 0,
    "KRW": 0,
    "KWD": 3,
    "MXN": 2,
    "NOK": 2,
    "NZD": 2,
    "OMR": 3,
    "PLN": 2,
    "SAR": 2,
    "SEK": 2,
    "SGD": 2,
    "THB": 2,
    "TND": 3,
    "TRY": 2,
    "TWD": 2,
    "USD": 2,
    "VND": 0,
    "ZAR": 2,
}


class DecimalTextError(ValueError):
    """A decimal string was refused; ``is_range`` tells a too-long one from a malformed one."""

    def __init__(self, message: str, *, is_range: bool) -> None:
        super().__init__(message)
        self.is_range = is_range


def parse_decimal_text(text: str) -> Decimal:
    """Return the value of a plain decimal string; raise ``DecimalTextError``."""
    match = _SYNTAX.fullmatch(text)
    if match is None:
        raise DecimalTextError(
            f"must be a plain decimal string such as '187.25', was {text!r:.40}", is_range=False
        )
    integer, fraction = match.group(1), match.group(2) or ""
    if len(integer.lstrip("0")) > MAX_INTEGER_DIGITS:
        raise DecimalTextError(
            f"must have at most {MAX_INTEGER_DIGITS} integer digits, was {text:.40}",
            is_range=True,
        )
    if len(fraction) > MAX_FRACTION_DIGITS:
        raise DecimalTextError(
            f"must have at most {MAX_FRACTION_DIGITS} decimals, was {text:.40}", is_range=True
        )
    return Decimal(text)


def decimals_of(value: Decimal) -> int:
    """Return the decimal places ``value`` needs (trailing zeros do not count)."""
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # finite Decimals have an int exponent
    return max(0, -exponent)


def is_multiple(value: Decimal, step: Decimal) -> bool:
    """Return whether ``value`` is a whole multiple of ``step`` (exact, no float)."""
    return value % step == 0
