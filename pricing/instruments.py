"""Reference data: the instrument master and its dense integer index.

Dimensions: M = instruments. Every array indexed by instrument uses the row
order of the master, so ``instrument_ix`` is a plain ``int`` in ``[0, M)``.

The master is parsed from CSV text (``parse_instrument_csv``); reading the
file is the caller's business, so this module does no I/O.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Final

import numpy as np

from pricing.errors import ReferenceDataError, UnknownInstrument
from pricing.types import F64Array1D, I64Array1D, InstrumentId, Symbol
from pricing.venues import VENUES, venue_code

__all__ = [
    "CSV_COLUMNS",
    "CURRENCIES",
    "FX_BASE_CURRENCIES",
    "Instrument",
    "InstrumentMaster",
    "InstrumentType",
    "OptionType",
    "parse_instrument_csv",
]

CURRENCIES: Final = ("USD", "EUR", "GBP", "JPY")
"""Currencies instruments are quoted in."""

FX_BASE_CURRENCIES: Final = (*CURRENCIES, "AUD", "NZD")
"""Currencies that may appear as the base of an FX pair."""

CSV_COLUMNS: Final = (
    "id",
    "symbol",
    "type",
    "currency",
    "tick_size",
    "lot_size",
    "multiplier",
    "sector",
    "underlying",
    "option_type",
    "strike",
    "expiry",
    "base_currency",
    "ref_price",
    "volatility",
    "weight",
    "dividend_yield",
)
"""Header of the instrument master CSV. A file whose header lacks the last
column, ``dividend_yield`` (the layout before it existed), is read with every
yield 0."""


class InstrumentType(StrEnum):
    EQUITY = "equity"
    FUTURE = "future"
    FX = "fx"
    OPTION = "option"


class OptionType(StrEnum):
    CALL = "C"
    PUT = "P"


@dataclass(frozen=True, slots=True)
class Instrument:
    """One row of the instrument master.

    ``ref_price`` is the previous close in ``currency``; ``volatility`` is
    annualised (a decimal, 0.25 = 25%) and seeds both the simulator and the
    per-instrument implied volatility. ``weight`` is the relative tick-arrival
    rate the simulator gives the instrument. ``dividend_yield`` is an
    equity's continuous dividend yield (annual, a decimal: 0.012 = 1.2%),
    which values the options on it; 0 for other types. Option fields are
    ``None`` for other types; ``base_currency`` is set for FX pairs only.
    """

    instrument_id: InstrumentId
    symbol: Symbol
    type: InstrumentType
    currency: str
    tick_size: Decimal
    lot_size: Decimal
    multiplier: Decimal
    sector: str
    ref_price: Decimal
    volatility: float
    weight: float
    underlying: Symbol | None = None
    option_type: OptionType | None = None
    strike: Decimal | None = None
    expiry: dt.date | None = None
    base_currency: str | None = None
    dividend_yield: float = 0.0

    @property
    def expires_at(self) -> dt.datetime | None:
        """When the instrument expires, in UTC: its venue's close on ``expiry``.

        ``None`` without an expiry. The venue is the last part of the id; the
        parser accepts an expiry only on a venue of ``pricing.venues.VENUES``.
        """
        if self.expiry is None:
            return None
        return VENUES[venue_code(self.instrument_id)].close_on(self.expiry)

    @property
    def price_decimals(self) -> int:
        """Number of decimal places a price on this instrument's tick grid needs."""
        exponent = self.tick_size.normalize().as_tuple().exponent
        assert isinstance(exponent, int)  # finite Decimals always have an int exponent
        return max(0, -exponent)


class InstrumentMaster(Sequence[Instrument]):
    """The instruments in dense index order, with symbol lookups and column arrays.

    Attributes
    ----------
    ref_price : ndarray, shape (M,), float64
        Previous close per instrument.
    tick_size, lot_size, multiplier : ndarray, shape (M,), float64
        Contract terms per instrument.
    volatility, weight : ndarray, shape (M,), float64
        Annualised volatility and relative tick-arrival weight.
    dividend_yield : ndarray, shape (M,), float64
        Continuous dividend yield (0 except equities).
    price_decimals : ndarray, shape (M,), int64
        Decimal places of each instrument's tick grid.
    underlying_ix : ndarray, shape (M,), int64
        Row of an option's underlying; -1 for other types.
    """

    def __init__(self, instruments: Sequence[Instrument]) -> None:
        self._instruments = tuple(instruments)
        self._ix_by_symbol: dict[str, int] = {}
        for ix, instrument in enumerate(self._instruments):
            if instrument.symbol in self._ix_by_symbol:
                raise ReferenceDataError(ix + 2, f"duplicate symbol {instrument.symbol!r}")
            self._ix_by_symbol[instrument.symbol] = ix
        self.symbols: tuple[Symbol, ...] = tuple(i.symbol for i in self._instruments)
        self.ref_price = self._column(lambda i: float(i.ref_price))
        self.tick_size = self._column(lambda i: float(i.tick_size))
        self.lot_size = self._column(lambda i: float(i.lot_size))
        self.multiplier = self._column(lambda i: float(i.multiplier))
        self.volatility = self._column(lambda i: i.volatility)
        self.weight = self._column(lambda i: i.weight)
        self.dividend_yield = self._column(lambda i: i.dividend_yield)
        self.price_decimals: I64Array1D = np.array(
            [i.price_decimals for i in self._instruments], dtype=np.int64
        )
        self.underlying_ix: I64Array1D = np.array(
            [
                self._ix_by_symbol[i.underlying] if i.underlying is not None else -1
                for i in self._instruments
            ],
            dtype=np.int64,
        )

    def _column(self, get: Callable[[Instrument], float]) -> F64Array1D:
        return np.array([get(i) for i in self._instruments], dtype=np.float64)

    def __len__(self) -> int:
        return len(self._instruments)

    def __getitem__(self, ix: int) -> Instrument:  # type: ignore[override]
        return self._instruments[ix]

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._instruments)

    def __contains__(self, instrument: object) -> bool:
        # The Sequence contract: membership of an Instrument, not of a symbol
        # (symbols are looked up in ``symbol_index``).
        if not isinstance(instrument, Instrument):
            return False
        ix = self._ix_by_symbol.get(instrument.symbol)
        return ix is not None and self._instruments[ix] == instrument

    @property
    def symbol_index(self) -> Mapping[str, int]:
        """Symbol to ``instrument_ix``; read-only view."""
        return self._ix_by_symbol

    def ix(self, symbol: str) -> int:
        """Return the dense index of ``symbol``; raise ``UnknownInstrument``."""
        try:
            return self._ix_by_symbol[symbol]
        except KeyError:
            raise UnknownInstrument(symbol) from None

    def ix_or_missing(self, symbols: Sequence[str]) -> I64Array1D:
        """Map symbols to indices, with -1 for unknown symbols.

        Returns
        -------
        ndarray, shape (len(symbols),), int64
        """
        get = self._ix_by_symbol.get
        return np.fromiter((get(s, -1) for s in symbols), dtype=np.int64, count=len(symbols))

    def mask_of(self, kind: InstrumentType) -> np.ndarray[tuple[int], np.dtype[np.bool_]]:
        """Boolean mask, shape (M,), of the instruments of one type."""
        return np.array([i.type is kind for i in self._instruments], dtype=np.bool_)


def parse_instrument_csv(text: str) -> InstrumentMaster:
    """Parse the instrument master from CSV text with the ``CSV_COLUMNS`` header.

    Raises ``ReferenceDataError`` naming the line of the first bad row.
    """
    reader = csv.DictReader(io.StringIO(text))
    header = None if reader.fieldnames is None else tuple(reader.fieldnames)
    if header not in (CSV_COLUMNS, CSV_COLUMNS[:-1]):
        raise ReferenceDataError(1, f"header must be {','.join(CSV_COLUMNS)}")
    rows = [(line, row) for line, row in enumerate(reader, start=2)]
    instruments = [_parse_row(line, row) for line, row in rows]
    by_symbol = {i.symbol: i for i in instruments}
    for line, instrument in zip((line for line, _ in rows), instruments, strict=True):
        if instrument.underlying is None:
            continue
        underlying = by_symbol.get(instrument.underlying)
        if underlying is None or underlying.type is InstrumentType.OPTION:
            raise ReferenceDataError(
                line, f"underlying must be a listed non-option, was {instrument.underlying!r}"
            )
    return InstrumentMaster(instruments)


def _parse_row(line: int, row: dict[str, str]) -> Instrument:
    try:
        kind = InstrumentType(row["type"])
    except ValueError:
        raise ReferenceDataError(line, f"type must be one of {list(InstrumentType)}") from None
    currency = row["currency"]
    if currency not in CURRENCIES:
        raise ReferenceDataError(line, f"currency must be one of {CURRENCIES}, was {currency!r}")
    symbol = row["symbol"]
    if not symbol or symbol != symbol.strip() or " " in symbol:
        raise ReferenceDataError(line, f"symbol must be non-empty without spaces, was {symbol!r}")
    is_option = kind is InstrumentType.OPTION
    is_fx = kind is InstrumentType.FX
    instrument = Instrument(
        instrument_id=InstrumentId(row["id"]),
        symbol=Symbol(symbol),
        type=kind,
        currency=currency,
        tick_size=_positive_decimal(line, row, "tick_size"),
        lot_size=_positive_decimal(line, row, "lot_size"),
        multiplier=_positive_decimal(line, row, "multiplier"),
        sector=row["sector"],
        ref_price=_positive_decimal(line, row, "ref_price"),
        volatility=float(_positive_decimal(line, row, "volatility")),
        weight=float(_positive_decimal(line, row, "weight")),
        underlying=Symbol(row["underlying"]) if is_option else None,
        option_type=OptionType(row["option_type"]) if is_option else None,
        strike=_positive_decimal(line, row, "strike") if is_option else None,
        expiry=_date(line, row["expiry"]) if row["expiry"] else None,
        base_currency=row["base_currency"] if is_fx else None,
        dividend_yield=_dividend_yield(line, row.get("dividend_yield") or "", kind),
    )
    if is_option and instrument.expiry is None:
        raise ReferenceDataError(line, "an option needs an expiry")
    if instrument.expiry is not None and venue_code(instrument.instrument_id) not in VENUES:
        raise ReferenceDataError(
            line,
            "an expiring instrument's id must end in a known venue "
            f"({', '.join(VENUES)}), was {instrument.instrument_id!r}",
        )
    if is_fx and instrument.base_currency not in FX_BASE_CURRENCIES:
        raise ReferenceDataError(line, f"fx base_currency unknown, was {row['base_currency']!r}")
    return instrument


def _positive_decimal(line: int, row: dict[str, str], name: str) -> Decimal:
    raw = row[name]
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ReferenceDataError(line, f"{name} must be a number, was {raw!r}") from None
    if not value.is_finite() or value <= 0 or not math.isfinite(float(value)):
        raise ReferenceDataError(line, f"{name} must be positive, was {raw!r}")
    return value


def _dividend_yield(line: int, raw: str, kind: InstrumentType) -> float:
    # Empty is 0. Only an equity pays dividends (an option's yield is its
    # underlying's), and a yield is a fraction of the price a year.
    if not raw:
        return 0.0
    if kind is not InstrumentType.EQUITY:
        raise ReferenceDataError(
            line, f"dividend_yield must be empty except for equities, was {raw!r} ({kind})"
        )
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = Decimal("NaN")
    if not (value.is_finite() and 0 <= value < 1):
        raise ReferenceDataError(line, f"dividend_yield must be within [0, 1), was {raw!r}")
    return float(value)


def _date(line: int, raw: str) -> dt.date:
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ReferenceDataError(line, f"expiry must be YYYY-MM-DD, was {raw!r}") from None
