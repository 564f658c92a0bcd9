"""A synthetic universe and book at benchmark scale.

Dimensions: M instruments (equities in four currencies and sectors, futures,
FX pairs, and listed options on US equities), N accounts, about
``positions_per_account`` distinct positions each. Seeded, so every run
builds the same book.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from portfolio.fx import FxTable
from portfolio.positions import PositionBook
from portfolio.types import AccountId
from portfolio.valuation import InstrumentTerms
from pricing.instruments import Instrument, InstrumentMaster, InstrumentType, OptionType
from pricing.pricebook import PriceBook, TickBatch
from pricing.types import InstrumentId, Symbol

__all__ = ["Universe", "build_universe"]

_CURRENCIES = ("USD", "EUR", "GBP", "JPY")
_SECTORS = (
    "technology",
    "financials",
    "health_care",
    "energy",
    "industrials",
    "consumer_staples",
    "consumer_discretionary",
    "materials",
    "utilities",
    "communication",
    "real_estate",
)
_FX = (("EUR", "USD", 1.16), ("GBP", "USD", 1.31), ("USD", "JPY", 155.0), ("EUR", "GBP", 0.885))
_RATES = {"USD": 0.04, "EUR": 0.02, "GBP": 0.04, "JPY": 0.005}


@dataclass
class Universe:
    master: InstrumentMaster
    prices: PriceBook
    fx: FxTable
    terms: InstrumentTerms
    positions: PositionBook
    now_ns: int


# The venue of each type (an expiring instrument's venue fixes its expiry time).
_VENUE = {
    InstrumentType.EQUITY: "XNAS",
    InstrumentType.FUTURE: "XCME",
    InstrumentType.FX: "FX",
    InstrumentType.OPTION: "OPRA",
}


def _instrument(
    symbol: str, kind: InstrumentType, currency: str, price: float, **extra: Any
) -> Instrument:
    return Instrument(
        instrument_id=InstrumentId(f"{symbol}.{_VENUE[kind]}"),
        symbol=Symbol(symbol),
        type=kind,
        currency=currency,
        tick_size=Decimal("0.01"),
        lot_size=Decimal("1"),
        multiplier=Decimal(extra.pop("multiplier", "1")),
        sector=extra.pop("sector", "fx"),
        ref_price=Decimal(f"{price:.2f}"),
        volatility=extra.pop("volatility", 0.25),
        weight=1.0,
        **extra,
    )


def build_master(m: int, rng: np.random.Generator) -> InstrumentMaster:
    """About ``m`` instruments: 5 FX pairs, 1% futures, 11% options, the rest equities."""
    instruments = [
        _instrument(f"{b}{q}", InstrumentType.FX, q, p, base_currency=b, volatility=0.08)
        for b, q, p in _FX
    ]
    n_futures = m // 100
    n_options = (m * 11) // 100
    n_equities = m - len(instruments) - n_futures - n_options
    equity_ccy = rng.choice(_CURRENCIES, size=n_equities, p=(0.5, 0.2, 0.15, 0.15))
    for k in range(n_equities):
        ccy = str(equity_ccy[k])
        price = float(np.exp(rng.normal(np.log(80.0), 0.8))) * (100.0 if ccy == "JPY" else 1.0)
        sector = _SECTORS[k % len(_SECTORS)]
        instruments.append(
            _instrument(
                f"EQ{k:05d}",
                InstrumentType.EQUITY,
                ccy,
                price,
                sector=sector,
                volatility=0.3,
                dividend_yield=0.015,
            )
        )
    for k in range(n_futures):
        ccy = _CURRENCIES[k % 4]
        instruments.append(
            _instrument(
                f"FUT{k:04d}",
                InstrumentType.FUTURE,
                ccy,
                5000.0,
                multiplier="50",
                sector="equity_index",
            )
        )
    underlyings = [
        i for i in instruments if i.type is InstrumentType.EQUITY and i.currency == "USD"
    ][:50]
    expiry = dt.date(2027, 3, 19)
    for k in range(n_options):
        under = underlyings[k % len(underlyings)]
        strike = round(float(under.ref_price) * (0.8 + 0.05 * ((k // len(underlyings)) % 9)), 2)
        kind = OptionType.CALL if k % 2 == 0 else OptionType.PUT
        instruments.append(
            _instrument(
                f"OPT{k:05d}",
                InstrumentType.OPTION,
                "USD",
                max(0.05, float(under.ref_price) * 0.05),
                multiplier="100",
                sector=under.sector,
                underlying=under.symbol,
                option_type=kind,
                strike=Decimal(f"{strike:.2f}"),
                expiry=expiry,
            )
        )
    return InstrumentMaster(instruments)


def build_universe(
    *, accounts: int, instruments: int, positions_per_account: int, seed: int
) -> Universe:
    """Build prices, terms and a position book of ``accounts`` accounts."""
    rng = np.random.default_rng(seed)
    master = build_master(instruments, rng)
    m = len(master)
    now_ns = int(dt.datetime(2026, 11, 21, 15, tzinfo=dt.UTC).timestamp()) * 1_000_000_000
    prices = PriceBook(master.ref_price, stale_after_ns=10**18)
    mid = master.ref_price * np.exp(rng.normal(0.0, 0.01, m))
    quoted = np.flatnonzero(~master.mask_of(InstrumentType.OPTION))
    ts = np.full(quoted.size, now_ns)
    prices.apply(
        TickBatch.from_columns(
            quoted,
            mid[quoted] * 0.9999,
            mid[quoted] * 1.0001,
            mid[quoted],
            np.ones(quoted.size),
            ts,
            ts,
        )
    )
    fx = FxTable(master)
    terms = InstrumentTerms.from_master(master, fx.currencies, _RATES)
    book = PositionBook(
        fx.currencies,
        currency_ix=terms.currency_ix,
        multiplier=terms.multiplier,
        is_margined=terms.is_margined,
    )
    base_ix = rng.choice(4, size=accounts, p=(0.55, 0.2, 0.15, 0.1)).astype(np.int64)
    cash = np.zeros((accounts, len(fx.currencies)))
    cash[np.arange(accounts), base_ix] = rng.lognormal(np.log(1e6), 0.5, accounts)
    rows = book.add_accounts(
        [AccountId(f"BENCH-{n:06d}") for n in range(accounts)],
        base_ix,
        cash,
        np.zeros(accounts, np.int64),
    )
    popularity = 1.0 / (np.arange(m) + 10.0) ** 0.8
    popularity = popularity[rng.permutation(m)]
    draws = rng.choice(m, size=(accounts, positions_per_account), p=popularity / popularity.sum())
    keys = np.unique(rows[:, None] * m + draws)
    account_ix, instrument_ix = keys // m, keys % m
    k = keys.size
    quantity = rng.integers(1, 200, k).astype(np.float64) * np.where(
        rng.random(k) < 0.85, 1.0, -1.0
    )
    cost = master.ref_price[instrument_ix] * np.exp(rng.normal(0.0, 0.05, k))
    book.add_positions(
        account_ix,
        instrument_ix,
        {"quantity": quantity, "avg_cost": cost, "day_open_quantity": quantity},
    )
    return Universe(master, prices, fx, terms, book, now_ns)
