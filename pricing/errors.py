"""Exceptions raised by the pricing core.

::

    PricingError
     +-- ShapeError              arrays whose shapes do not fit together
     +-- ReferenceDataError      an instrument master that cannot be loaded
     +-- UnknownInstrument       a symbol that is not in the master
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["PricingError", "ReferenceDataError", "ShapeError", "UnknownInstrument"]


class PricingError(Exception):
    """Root of every error raised by ``pricing``."""

    retriable: ClassVar[bool] = False


class ShapeError(PricingError, ValueError):
    """Arrays passed together do not have matching shapes."""

    def __init__(self, name: str, expected: tuple[int, ...], actual: tuple[int, ...]) -> None:
        super().__init__(f"{name} must have shape {expected}, was {actual}")
        self.name = name
        self.expected = expected
        self.actual = actual


class ReferenceDataError(PricingError, ValueError):
    """The instrument master has a row that cannot be used."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"instrument master line {line}: {message}")
        self.line = line


class UnknownInstrument(PricingError, KeyError):
    """A symbol is not in the instrument master."""

    def __init__(self, symbol: str) -> None:
        super().__init__(f"unknown instrument {symbol!r}")
        self.symbol = symbol
