"""PortfolioEngine values and account totals: hand-worked goldens, the scalar twin, fail-closed.

The market is the small hand-made master of ``market.py``; the engine is wired
as ``gateway/app.py: _start_portfolio`` wires it, with a fixed ``NOW_NS``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfolio.engine import TOTAL_FIELDS, PortfolioEngine
from portfolio.types import AccountId, CashMovement, Fill, PositionState, Status
from pricing.instruments import CURRENCIES
from tests.reference.portfolio import (
    RefAccount,
    reference_mark,
    reference_position_values,
    reference_prev_mark,
)
from tests.unit.portfolio.market import (
    AAA,
    BBB,
    CALL,
    EEE,
    ESZ6,
    EURUSD,
    GBPUSD,
    JJJ,
    MASTER,
    NOW_NS,
    PLAIN,
    PUT,
    REF,
    STALE_AFTER_NS,
    USDJPY,
    expected_totals,
    held,
    new_book,
    new_engine,
    new_prices,
    quote,
)

FX_MIDS = {EURUSD: 1.2, GBPUSD: 1.3, USDJPY: 150.0}
ALL_MIDS = {AAA: 100.0, BBB: 50.0, EEE: 84.0, JJJ: 3000.0, ESZ6: 7000.0} | FX_MIDS
POSITION_FIELDS = (
    "market_value",
    "unrealised_pnl",
    "day_pnl",
    "exposure",
    "gamma",
    "vega",
    "theta",
    "rho",
)


def engine_for(
    accounts: list[RefAccount], mids: dict[int, float], stale: frozenset[int] = frozenset()
):
    """An engine over ``accounts``; ``stale`` instruments were quoted 10 s before NOW_NS."""
    prices = new_prices()
    quote(prices, {ix: mid for ix, mid in mids.items() if ix not in stale})
    quote(
        prices,
        {ix: mid for ix, mid in mids.items() if ix in stale},
        ts_ns=NOW_NS - 2 * STALE_AFTER_NS,
    )
    prices.refresh_staleness(NOW_NS, is_feed_up=True)
    return new_engine(prices, new_book(accounts))


def totals_of(engine: PortfolioEngine, n: int = 0) -> dict[str, float]:
    values = engine.totals(np.array([n])).values[0]
    return dict(zip(TOTAL_FIELDS, values.tolist(), strict=True))


def flags_of(engine: PortfolioEngine, n: int = 0) -> tuple[int, int, int]:
    t = engine.totals(np.array([n]))
    return int(t.status[0]), int(t.unpriced[0]), int(t.stale[0])


# --- golden, by hand ------------------------------------------------------------------


def test_usd_account_with_euro_stock_and_euro_cash_totals_by_hand() -> None:
    account = RefAccount(
        "USD", {"USD": 10_000.0, "EUR": 1_000.0}, [(AAA, held(100, 90.0)), (EEE, held(50, 80.0))]
    )

    totals = totals_of(engine_for([account], ALL_MIDS))

    # AAA: 100 x 100 = 10,000 USD, unrealised 100 x (100 - 90) = 1,000, day 0 (mid = close).
    # EEE: 50 x 84 = 4,200 EUR = 5,040 USD; unrealised 50 x 4 = 200 EUR = 240 USD;
    #      day 50 x (84 - 80 close) = 200 EUR = 240 USD.
    # Cash 10,000 + 1,000 EUR x 1.2 = 11,200. Equity 11,200 + 15,040 = 26,240.
    # Leverage 15,040 / 26,240; buying power 4 x 26,240 - 15,040 = 89,920.
    expected = {
        "cash": 11_200.0,
        "market_value": 15_040.0,
        "equity": 26_240.0,
        "unrealised_pnl": 1_240.0,
        "day_pnl": 240.0,
        "total_pnl": 1_240.0,
        "gross_exposure": 15_040.0,
        "net_exposure": 15_040.0,
        "leverage": 15_040.0 / 26_240.0,
        "buying_power": 89_920.0,
    }
    assert {name: totals[name] for name in expected} == pytest.approx(expected, rel=1e-12)


def test_future_market_value_is_its_unrealised_pnl_and_exposure_its_notional() -> None:
    account = RefAccount("USD", {}, [(ESZ6, held(2, 6990.0))])

    totals = totals_of(engine_for([account], ALL_MIDS))

    # 2 x (7000 - 6990) x 50 = 1,000; notional 2 x 7000 x 50 = 700,000.
    assert (totals["market_value"], totals["unrealised_pnl"]) == (1_000.0, 1_000.0)
    assert totals["gross_exposure"] == 700_000.0


def test_short_jpy_stock_in_a_euro_account_converts_through_usd() -> None:
    account = RefAccount("EUR", {}, [(JJJ, held(-200, 3100.0))])

    totals = totals_of(engine_for([account], ALL_MIDS))

    # -200 x 3000 = -600,000 JPY; 1 JPY = (1/150) / 1.2 EUR, so -600,000 / 180 = -3,333.33 EUR.
    # Unrealised -200 x (3000 - 3100) = 20,000 JPY = 111.11 EUR.
    assert totals["market_value"] == pytest.approx(-600_000.0 / 180.0, rel=1e-12)
    assert totals["unrealised_pnl"] == pytest.approx(20_000.0 / 180.0, rel=1e-12)
    assert totals["gross_exposure"] == pytest.approx(600_000.0 / 180.0, rel=1e-12)


def test_day_pnl_with_an_intraday_add_counts_each_lot_from_its_own_price() -> None:
    engine = engine_for([RefAccount("USD", {}, [(AAA, held(100, 90.0))])], ALL_MIDS | {AAA: 104.0})

    engine.apply_fills([Fill(AccountId("ACC-0"), AAA, 50, 102.0, ledger_seq=1)])

    # Overnight 100 from the 100 close to 104: +400; 50 bought today at 102: +100.
    # (150 x 104 - 100 x 100 - 50 x 102) = 15,600 - 10,000 - 5,100 = 500.
    assert totals_of(engine)["day_pnl"] == pytest.approx(500.0, rel=1e-12)


# --- against the scalar twin ------------------------------------------------------------

positions = st.lists(
    st.tuples(
        st.integers(0, len(REF) - 1),  # instrument
        st.integers(-300, 300),  # quantity
        st.floats(0.7, 1.3),  # avg cost / reference price
        st.floats(-5e3, 5e3),  # realised
        st.floats(0.0, 50.0),  # commission
        st.integers(-300, 300),  # day open quantity
        st.floats(-1e5, 1e5),  # day trade value
    ),
    max_size=6,
    unique_by=lambda row: row[0],
)
accounts = st.lists(
    st.builds(
        lambda base, cash, rows: RefAccount(
            base,
            cash,
            [
                (ix, PositionState(q, ratio * float(MASTER.ref_price[ix]), rp, c, q0, dtv))
                for ix, q, ratio, rp, c, q0, dtv in rows
            ],
        ),
        st.sampled_from(CURRENCIES),
        st.dictionaries(st.sampled_from(CURRENCIES), st.floats(-1e6, 1e6), max_size=3),
        positions,
    ),
    min_size=1,
    max_size=4,
)
# Mid / reference price of every plain instrument, up to two without a price, any stale.
markets = st.tuples(
    st.lists(st.floats(0.7, 1.3), min_size=len(PLAIN), max_size=len(PLAIN)),
    st.frozensets(st.sampled_from(PLAIN), max_size=2),
    st.frozensets(st.sampled_from(PLAIN)),
)


def mids_of(ratios: list[float], missing: frozenset[int]) -> dict[int, float]:
    return {
        ix: ratio * float(MASTER.ref_price[ix])
        for ix, ratio in zip(PLAIN, ratios, strict=True)
        if ix not in missing
    }


@settings(max_examples=60, deadline=None, database=None)
@given(accounts, markets)
def test_position_values_match_scalar_twin(books: list[RefAccount], market) -> None:
    ratios, missing, stale = market
    engine = engine_for(books, mids_of(ratios, missing), stale)

    mids, is_stale = engine.prices.mid().tolist(), engine.prices.is_stale.tolist()
    prev = engine.prices.prev_close.tolist()
    for n, account in enumerate(books):
        for ix, state in account.positions:
            values = engine.position_values(np.array([engine.book.position_row(n, ix)]))
            mark = reference_mark(REF, ix, mids, is_stale, NOW_NS)
            expected = reference_position_values(
                REF[ix], state, mark, reference_prev_mark(REF, ix, prev, NOW_NS)
            )
            assert values.status[0] == expected.status
            for name in POSITION_FIELDS:
                # One product per value; ndtr against erfc for options: ~1e-13 relative.
                assert getattr(values, name)[0] == pytest.approx(
                    getattr(expected, name), rel=1e-9, abs=1e-9, nan_ok=True
                ), name


@settings(max_examples=60, deadline=None, database=None)
@given(accounts, markets)
def test_account_totals_match_scalar_twin(books: list[RefAccount], market) -> None:
    ratios, missing, stale = market
    engine = engine_for(books, mids_of(ratios, missing), stale)

    totals = engine.totals(np.arange(len(books)))

    for n, account in enumerate(books):
        expected = expected_totals(engine.prices, account)
        actual = dict(zip(TOTAL_FIELDS, totals.values[n].tolist(), strict=True))
        # Sums in another order: rounding relative to the account's largest figure.
        scale = max((abs(v) for v in expected.values.values() if not math.isnan(v)), default=1)
        assert actual == pytest.approx(expected.values, rel=1e-9, abs=1e-12 * scale, nan_ok=True)
        assert (int(totals.status[n]), int(totals.unpriced[n]), int(totals.stale[n])) == (
            expected.status,
            expected.unpriced,
            expected.stale,
        )


# --- fail closed ------------------------------------------------------------------------

# USD account: USD and EUR cash, two USD stocks (BBB with realised P&L and a
# commission) and a EUR stock with realised P&L in EUR.
MIXED = RefAccount(
    "USD",
    {"USD": 1_000.0, "EUR": 500.0},
    [
        (AAA, held(100, 90.0)),
        (BBB, held(10, 40.0, realised_pnl=500.0, commission=3.0)),
        (EEE, held(50, 80.0, realised_pnl=100.0)),
    ],
)


def without(*instruments: int) -> dict[int, float]:
    return {ix: mid for ix, mid in ALL_MIDS.items() if ix not in instruments}


def test_position_without_price_is_counted_unpriced_and_flags_the_account() -> None:
    engine = engine_for([MIXED], without(BBB))

    assert flags_of(engine) == (Status.UNPRICED, 1, 0)


def test_position_without_price_keeps_its_realised_pnl_and_commission() -> None:
    engine = engine_for([MIXED], without(BBB))

    totals = totals_of(engine)

    # 500 USD (BBB) + 100 EUR x 1.2 (EEE) = 620; commission 3 (BBB).
    assert (totals["realised_pnl"], totals["commission"]) == (pytest.approx(620.0), 3.0)


def test_position_without_price_is_left_out_of_price_based_totals() -> None:
    engine = engine_for([MIXED], without(BBB))

    totals = totals_of(engine)

    # AAA 100 x 100 = 10,000; EEE 50 x 84 x 1.2 = 5,040; BBB nothing (not NaN).
    # Unrealised: AAA 1,000 + EEE 50 x 4 x 1.2 = 240.
    assert totals["market_value"] == pytest.approx(15_040.0, rel=1e-12)
    assert totals["gross_exposure"] == pytest.approx(15_040.0, rel=1e-12)
    assert totals["unrealised_pnl"] == pytest.approx(1_240.0, rel=1e-12)


def test_position_without_price_keeps_its_row_flagged_unpriced() -> None:
    engine = engine_for([MIXED], without(BBB))

    row = engine.book.position_row(0, BBB)
    rows = np.array([row])

    assert engine.book.size_p == 3
    assert engine.position_status(rows).tolist() == [Status.UNPRICED]
    assert math.isnan(engine.position_values(rows).market_value[0])


def test_missing_fx_rate_takes_the_whole_currency_out_of_totals() -> None:
    engine = engine_for([MIXED], without(EURUSD))

    totals = totals_of(engine)

    # Only USD is left: cash 1,000; AAA 10,000 + BBB 10 x 50 = 10,500; realised 500.
    # The EUR cash, the EEE value and its 100 EUR realised are all out.
    expected = {"cash": 1_000.0, "market_value": 10_500.0, "realised_pnl": 500.0}
    assert {name: totals[name] for name in expected} == pytest.approx(expected, rel=1e-12)


def test_missing_fx_rate_counts_that_currencys_positions_unpriced() -> None:
    engine = engine_for([MIXED], without(EURUSD))

    assert flags_of(engine) == (Status.UNPRICED, 1, 0)


def test_missing_fx_rate_for_foreign_cash_alone_flags_the_account() -> None:
    account = RefAccount("USD", {"USD": 1_000.0, "EUR": 500.0}, [(AAA, held(100, 90.0))])
    engine = engine_for([account], without(EURUSD))

    # No position is unpriced, but 500 EUR cannot be valued: the account says so.
    assert flags_of(engine) == (Status.UNPRICED, 0, 0)
    assert totals_of(engine)["cash"] == 1_000.0


def test_stale_price_counts_the_position_stale_and_keeps_its_value() -> None:
    engine = engine_for([MIXED], ALL_MIDS, stale=frozenset({AAA}))

    assert flags_of(engine) == (Status.STALE, 0, 1)
    assert totals_of(engine)["market_value"] == pytest.approx(10_000.0 + 500.0 + 5_040.0)


def test_stale_fx_rate_counts_every_position_in_that_currency_stale() -> None:
    engine = engine_for([MIXED], ALL_MIDS, stale=frozenset({EURUSD}))

    assert flags_of(engine) == (Status.STALE, 0, 1)


def test_missing_price_outranks_a_stale_one() -> None:
    engine = engine_for([MIXED], without(BBB), stale=frozenset({AAA}))

    assert flags_of(engine) == (Status.UNPRICED, 1, 1)


@pytest.mark.parametrize("option", [CALL, PUT])
def test_option_without_underlying_price_is_unpriced(option: int) -> None:
    account = RefAccount("USD", {"USD": 1_000.0}, [(option, held(5, 4.0))])

    engine = engine_for([account], without(AAA))

    assert flags_of(engine) == (Status.UNPRICED, 1, 0)
    assert totals_of(engine)["market_value"] == 0.0


def test_option_with_stale_underlying_is_stale() -> None:
    account = RefAccount("USD", {}, [(CALL, held(5, 4.0))])

    engine = engine_for([account], ALL_MIDS, stale=frozenset({AAA}))

    assert flags_of(engine) == (Status.STALE, 0, 1)


def test_a_settled_deposit_in_a_foreign_currency_moves_cash_and_equity_at_its_rate():
    engine = engine_for([RefAccount(base="USD", cash={"USD": 1000.0}, positions=())], ALL_MIDS)
    before = totals_of(engine)

    change = engine.apply_cash([CashMovement(AccountId("ACC-0"), "EUR", 500.0, ledger_seq=1)])

    after = totals_of(engine)
    assert change.accounts.tolist() == [0]
    assert change.positions.size == 0
    # 500 EUR at EURUSD 1.2 is 600 USD of cash, and of equity.
    assert after["cash"] == pytest.approx(before["cash"] + 600.0)
    assert after["equity"] == pytest.approx(before["equity"] + 600.0)


def test_a_replayed_cash_movement_changes_no_account():
    engine = engine_for([RefAccount(base="USD", cash={"USD": 1000.0}, positions=())], ALL_MIDS)
    movement = CashMovement(AccountId("ACC-0"), "USD", -100.0, ledger_seq=3)
    engine.apply_cash([movement])

    change = engine.apply_cash([movement])

    assert change.accounts.size == 0
    assert totals_of(engine)["cash"] == pytest.approx(900.0)
