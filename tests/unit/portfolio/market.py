"""A small hand-made market for the portfolio tests, wired like ``gateway/app.py``.

Ten instruments: USD, EUR and JPY equities (AAA pays a 1.5% dividend
yield), an equity-index future, the three FX pairs against USD (EURUSD,
GBPUSD and the inverted USDJPY), and a call and a put on AAA. ``NOW_NS`` is
fixed, so option values never drift.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Mapping, Sequence

import numpy as np

from portfolio.engine import PortfolioEngine
from portfolio.fx import FxTable
from portfolio.positions import PositionBook
from portfolio.types import AccountId, PositionState
from portfolio.valuation import InstrumentTerms
from pricing.instruments import CSV_COLUMNS, CURRENCIES, parse_instrument_csv
from pricing.pricebook import PriceBook, TickBatch
from tests.builders import NS
from tests.reference.portfolio import (
    RefAccount,
    RefTotals,
    reference_account_totals,
    reference_instruments,
    reference_mark,
    reference_prev_mark,
    reference_usd_per,
)

MASTER_CSV = "\n".join(
    [
        ",".join(CSV_COLUMNS),
        "AAA.T,AAA,equity,USD,0.01,1,1,technology,,,,,,100,0.30,1,0.015",
        "BBB.T,BBB,equity,USD,0.01,1,1,energy,,,,,,50,0.25,1",
        "EEE.T,EEE,equity,EUR,0.01,1,1,technology,,,,,,80,0.20,1",
        "JJJ.T,JJJ,equity,JPY,1,100,1,industrials,,,,,,3000,0.25,1",
        "ESZ6.XCME,ESZ6,future,USD,0.25,1,50,equity_index,,,,2026-12-18,,7000,0.17,1",
        "EURUSD.FX,EURUSD,fx,USD,0.00001,1000,1,fx,,,,,EUR,1.165,0.07,1",
        "GBPUSD.FX,GBPUSD,fx,USD,0.00001,1000,1,fx,,,,,GBP,1.315,0.08,1",
        "USDJPY.FX,USDJPY,fx,JPY,0.001,1000,1,fx,,,,,USD,154.25,0.10,1",
        "AAAC.OPRA,AAA261218C100,option,USD,0.01,1,100,technology,AAA,C,100,2026-12-18,,10,0.30,1",
        "AAAP.OPRA,AAA261218P95,option,USD,0.01,1,100,technology,AAA,P,95,2026-12-18,,6,0.32,1",
    ]
)
MASTER = parse_instrument_csv(MASTER_CSV)
AAA, BBB, EEE, JJJ, ESZ6, EURUSD, GBPUSD, USDJPY, CALL, PUT = range(10)
PLAIN = (AAA, BBB, EEE, JJJ, ESZ6, EURUSD, GBPUSD, USDJPY)
RATES = {"USD": 0.04, "EUR": 0.02, "GBP": 0.045, "JPY": 0.005}
NOW_NS = calendar.timegm(dt.date(2026, 6, 1).timetuple()) * NS
MAX_LEVERAGE = 4.0
STALE_AFTER_NS = 5 * NS
REF = reference_instruments(MASTER, RATES)
FX = FxTable(MASTER)
TERMS = InstrumentTerms.from_master(MASTER, FX.currencies, RATES)


def new_prices() -> PriceBook:
    return PriceBook(MASTER.ref_price, stale_after_ns=STALE_AFTER_NS)


def quote(prices: PriceBook, mids: Mapping[int, float], *, ts_ns: int = NOW_NS) -> np.ndarray:
    """Quote bid = ask = mid (so the book's mid is exact); returns the changed rows."""
    ix = sorted(mids)
    values = [mids[i] for i in ix]
    n = len(ix)
    batch = TickBatch.from_columns(
        ix, values, values, [np.nan] * n, [np.nan] * n, [ts_ns] * n, [ts_ns] * n
    )
    return prices.apply(batch).changed_ix


def new_engine(prices: PriceBook, book: PositionBook) -> PortfolioEngine:
    return PortfolioEngine(prices, book, FX, TERMS, max_leverage=MAX_LEVERAGE, now_ns=NOW_NS)


def new_book(accounts: Sequence[RefAccount] = ()) -> PositionBook:
    """A PositionBook built as ``_start_portfolio`` builds it, holding ``accounts``."""
    book = PositionBook(
        FX.currencies,
        currency_ix=TERMS.currency_ix,
        multiplier=TERMS.multiplier,
        is_margined=TERMS.is_margined,
    )
    for n, account in enumerate(accounts):
        row = book.add_account(AccountId(f"ACC-{n}"), account.base, account.cash)
        for ix, state in account.positions:
            book.set_position(row, ix, state)
    return book


def held(quantity: float, avg_cost: float, **fields: float) -> PositionState:
    """A position held since before today (day open = quantity) unless ``fields`` say otherwise."""
    return PositionState(
        **{"quantity": quantity, "avg_cost": avg_cost, "day_open_quantity": quantity} | fields
    )


def expected_totals(prices: PriceBook, account: RefAccount) -> RefTotals:
    """The scalar reference's totals of ``account`` against the book's current prices."""
    mids = prices.mid().tolist()
    stale = prices.is_stale.tolist()
    prev = prices.prev_close.tolist()
    usd_per = reference_usd_per(MASTER, mids, stale, CURRENCIES)
    marks = [reference_mark(REF, ix, mids, stale, NOW_NS) for ix in range(len(REF))]
    prev_marks = [reference_prev_mark(REF, ix, prev, NOW_NS) for ix in range(len(REF))]
    return reference_account_totals(
        account, REF, usd_per, marks, prev_marks, max_leverage=MAX_LEVERAGE
    )
