"""A risk run end to end on the small market: copy on the loop, exposures and stress by hand.

Risk series of ``market.py``: the eight plain instruments in master order
(AAA=0 ... USDJPY=7), then one per currency from 8 (USD, EUR, GBP, JPY).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from portfolio.engine import PortfolioEngine
from portfolio.risk import FactorModel, z_score
from portfolio.riskrun import (
    RiskReport,
    RiskSnapshot,
    RiskUniverse,
    capture,
    run_risk,
    take_snapshot,
)
from portfolio.stress import StressScenario
from portfolio.types import AccountId, Fill
from pricing.instruments import CURRENCIES
from tests.builders import NS
from tests.reference.portfolio import (
    RefAccount,
    black_scholes_scalar,
    quantile_linear,
)
from tests.unit.portfolio.market import (
    AAA,
    BBB,
    CALL,
    EURUSD,
    FX,
    MASTER,
    NOW_NS,
    REF,
    TERMS,
    held,
    new_book,
    new_engine,
    new_prices,
    quote,
)

UNIVERSE = RiskUniverse(MASTER, TERMS, FX.currencies)
CCY = {c: UNIVERSE.currency_offset + i for i, c in enumerate(CURRENCIES)}
MIDS = {AAA: 100.0, EURUSD: 1.2}  # BBB stays unquoted: unpriced
ALL = np.arange(3, dtype=np.int64)


def new_model(*, min_samples: int = 20, window: int = 250) -> FactorModel:
    return FactorModel(UNIVERSE.group_of, lam=0.94, window=window, min_samples=min_samples)


def returns(seed: int, days: int, sd: float = 0.01) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, sd, (days, UNIVERSE.size_u))


def run(
    snapshot: RiskSnapshot,
    scenarios,
    *,
    daily: FactorModel | None = None,
    intraday: FactorModel | None = None,
    horizon_days: float = 1.0,
) -> RiskReport:
    return run_risk(
        snapshot,
        daily or new_model(),
        intraday or new_model(),
        TERMS,
        scenarios,
        confidences=[0.95, 0.99],
        horizon_days=horizon_days,
        intraday_interval_s=1.0,
        universe=UNIVERSE,
    )


def engine_of(accounts: list[RefAccount]) -> PortfolioEngine:
    prices = new_prices()
    quote(prices, MIDS)
    return new_engine(prices, new_book(accounts))


def exposures_by_key(snapshot: RiskSnapshot) -> dict[tuple[int, int], float]:
    e = snapshot.exposures
    return {
        (a, u): v
        for a, u, v in zip(e.account.tolist(), e.series.tolist(), e.value.tolist(), strict=True)
    }


BOOK = [
    # 0: EUR base, 100 AAA (a USD stock) worth 10,000 USD = 8,333.33 EUR.
    RefAccount("EUR", {}, [(AAA, held(100, 90.0))]),
    # 1: USD base, 1,000 EUR cash (1,200 USD) and 50 BBB, which has no price.
    RefAccount("USD", {"EUR": 1_000.0}, [(BBB, held(50, 40.0))]),
    # 2: USD base, long 10,000 EURUSD bought at 1.18.
    RefAccount("USD", {}, [(EURUSD, held(10_000, 1.18))]),
]


def test_exposures_of_foreign_stock_cash_and_fx_pair_by_hand() -> None:
    engine = engine_of(BOOK)

    snapshot = take_snapshot(capture(engine, ALL, NOW_NS), TERMS, UNIVERSE)

    eur_value = 100 * 100.0 / 1.2
    assert exposures_by_key(snapshot) == pytest.approx(
        {
            # The stock's price risk in EUR, and its USD value against the EUR base.
            (0, AAA): eur_value,
            (0, CCY["USD"]): eur_value,
            (0, CCY["EUR"]): -eur_value,
            # EUR cash: +1,200 USD on the EUR series, -1,200 on the base's.
            (1, CCY["EUR"]): 1_200.0,
            (1, CCY["USD"]): -1_200.0,
            # A pair's delta exposure: 10,000 x 1.2 on its own series; its value
            # (unrealised 10,000 x 0.02 = 200 USD) is in the base currency.
            (2, EURUSD): 12_000.0,
        },
        rel=1e-12,
    )


def test_unpriced_position_is_counted_as_excluded_not_exposed() -> None:
    engine = engine_of(BOOK)

    snapshot = take_snapshot(capture(engine, ALL, NOW_NS), TERMS, UNIVERSE)

    assert snapshot.excluded.tolist() == [0, 1, 0]
    assert (1, BBB) not in exposures_by_key(snapshot)


@pytest.mark.parametrize(
    ("fx", "expected"),
    [
        # Every currency +5% against each account's base: the EUR account's USD
        # stock gains 5% of 8,333.33 EUR; the USD account's EUR cash gains
        # 1,200 x 5%; EURUSD 1.2 -> 1.26 earns 10,000 x 0.06.
        (0.05, [100 * 100.0 / 1.2 * 0.05, 60.0, 600.0]),
        (-0.05, [-100 * 100.0 / 1.2 * 0.05, -60.0, -600.0]),
    ],
)
def test_run_risk_stresses_fx_through_pairs_cash_and_foreign_stock(fx, expected) -> None:
    engine = engine_of(BOOK)
    snapshot = take_snapshot(capture(engine, ALL, NOW_NS), TERMS, UNIVERSE)

    report = run(snapshot, [StressScenario("fx", fx=fx)])

    assert report.stress[:, 0] == pytest.approx(expected, rel=1e-12)


def test_run_risk_without_enough_data_reports_nan_not_a_made_up_zero() -> None:
    engine = engine_of(BOOK)
    snapshot = take_snapshot(capture(engine, ALL, NOW_NS), TERMS, UNIVERSE)
    daily, intraday = new_model(), new_model(min_samples=5)
    for r in returns(3, 19):  # one day short of the 20 the daily model needs
        daily.update(r)

    report = run(snapshot, [], daily=daily, intraday=intraday)

    assert (report.is_ready, report.intraday_ready, report.days) == (False, False, 19)
    for values in (report.parametric, report.historical, report.daily_volatility):
        assert np.isnan(values).all()
    assert np.isnan(report.intraday_volatility).all()
    assert report.scenario_count == 0


def test_copy_is_unaffected_by_later_fills_and_ticks() -> None:
    engine = engine_of(BOOK)
    state = capture(engine, ALL, NOW_NS)
    before = take_snapshot(state, TERMS, UNIVERSE)

    engine.apply_fills([Fill(AccountId("ACC-0"), AAA, 400.0, 101.0, ledger_seq=7)])
    engine.on_prices_changed(quote(engine.prices, {AAA: 120.0}, ts_ns=NOW_NS + NS), NOW_NS)
    again = take_snapshot(state, TERMS, UNIVERSE)

    assert exposures_by_key(again) == exposures_by_key(before)
    np.testing.assert_array_equal(again.stress.qm, before.stress.qm)
    np.testing.assert_array_equal(again.stress.mid, before.stress.mid)
    # And a fresh copy does see them: 500 AAA at 120 = 60,000 USD = 50,000 EUR.
    fresh = exposures_by_key(take_snapshot(capture(engine, ALL, NOW_NS), TERMS, UNIVERSE))
    assert fresh[(0, AAA)] == pytest.approx(50_000.0, rel=1e-12)


@pytest.mark.parametrize("rows", [[0], [1], [2], [0, 2]])
def test_snapshot_of_some_accounts_equals_their_part_of_everyone(rows: list[int]) -> None:
    engine = engine_of(BOOK)
    accounts = np.array(rows, dtype=np.int64)

    part = take_snapshot(capture(engine, accounts, NOW_NS), TERMS, UNIVERSE)
    whole = take_snapshot(capture(engine, ALL, NOW_NS), TERMS, UNIVERSE)

    expected = {(rows.index(a), u): v for (a, u), v in exposures_by_key(whole).items() if a in rows}
    assert exposures_by_key(part) == expected
    assert part.excluded.tolist() == whole.excluded[accounts].tolist()
    assert part.accounts.tolist() == rows


def test_unpriced_fx_rate_excludes_the_foreign_position() -> None:
    # No EURUSD quote: the EUR account cannot value its USD stock in EUR.
    prices = new_prices()
    quote(prices, {AAA: 100.0})
    engine = new_engine(prices, new_book(BOOK[:1]))

    snapshot = take_snapshot(capture(engine, np.array([0]), NOW_NS), TERMS, UNIVERSE)

    assert snapshot.excluded.tolist() == [1]
    assert all(math.isfinite(v) for v in snapshot.exposures.value)
    assert exposures_by_key(snapshot) == {}


def test_zero_shock_is_zero_pnl_for_options_marked_earlier() -> None:
    # The call was last marked at NOW_NS; the run is a day later. Repricing
    # for that day is time decay, not the scenario's P&L.
    engine = engine_of([RefAccount("USD", {}, [(CALL, held(10, 8.0))])])
    later = NOW_NS + 86_400 * NS
    snapshot = take_snapshot(capture(engine, np.array([0]), later), TERMS, UNIVERSE)

    report = run(snapshot, [StressScenario("nothing"), StressScenario("up", equity=0.1)])

    assert report.stress[0, 0] == 0.0
    assert report.stress[0, 1] > 0.0  # a long call gains when its underlying rises


# --- VaR and volatilities of a run ------------------------------------------------------------


def test_parametric_var_is_z_times_the_daily_pnl_volatility_over_the_horizon() -> None:
    engine = engine_of(BOOK)
    snapshot = take_snapshot(capture(engine, ALL, NOW_NS), TERMS, UNIVERSE)
    daily = new_model()
    daily.seed(returns(1, 300))

    one = run(snapshot, [], daily=daily)
    four = run(snapshot, [], daily=daily, horizon_days=4.0)

    # Variance grows with the horizon: four days, twice the volatility.
    np.testing.assert_allclose(four.daily_volatility, 2 * one.daily_volatility, rtol=1e-12)
    np.testing.assert_allclose(
        one.parametric, one.daily_volatility[:, None] * [z_score(0.95), z_score(0.99)], rtol=1e-12
    )
    assert (one.is_ready, one.days, one.scenario_count) == (True, 300, 250)


def test_intraday_volatility_scales_per_second_variance_to_trading_days() -> None:
    # The same returns as per-second intraday samples and as daily ones: the
    # intraday P&L volatility over a day is sqrt(23,400) times larger.
    engine = engine_of(BOOK)
    snapshot = take_snapshot(capture(engine, ALL, NOW_NS), TERMS, UNIVERSE)
    history = returns(2, 60)
    daily, intraday = new_model(), new_model(min_samples=10)
    daily.seed(history)
    intraday.seed(history)

    report = run(snapshot, [], daily=daily, intraday=intraday)

    np.testing.assert_allclose(
        report.intraday_volatility, report.daily_volatility * np.sqrt(23_400), rtol=1e-12
    )


def test_historical_var_revalues_a_call_in_full_and_adds_its_hedge() -> None:
    # 10 AAA calls (1,000 units) hedged with 400 short AAA: a scenario's P&L is
    # 1,000 x (C(S e^r) - C(S)) - 400 x 100 x (e^r - 1), with the call's terms
    # from market.py (K 100, vol 30%, r 4%, AAA's yield 1.5%) at the run's time.
    engine = engine_of([RefAccount("USD", {}, [(CALL, held(10, 8.0)), (AAA, held(-400, 101.0))])])
    snapshot = take_snapshot(capture(engine, np.array([0]), NOW_NS), TERMS, UNIVERSE)
    daily = new_model(window=40)
    daily.seed(returns(3, 40, sd=0.03))

    report = run(snapshot, [], daily=daily)

    t = (REF[CALL].expiry_ns - NOW_NS) / (365 * 86_400e9)

    def call(spot: float) -> float:
        return black_scholes_scalar(spot, 100.0, t, 0.30, 0.04, True, dividend_yield=0.015).price

    pnl = [
        1_000 * (call(100.0 * math.exp(r)) - call(100.0)) - 40_000 * math.expm1(r)
        for r in daily.scenarios()[:, AAA].tolist()
    ]
    for j, c in enumerate([0.95, 0.99]):
        assert report.historical[0, j] == pytest.approx(-quantile_linear(pnl, 1 - c), rel=1e-9)


def test_snapshot_holds_options_apart_from_their_linear_exposures() -> None:
    engine = engine_of([RefAccount("EUR", {}, [(CALL, held(10, 8.0))])])

    snapshot = take_snapshot(capture(engine, np.array([0]), NOW_NS), TERMS, UNIVERSE)

    # Delta exposures carry the call's delta on AAA; the linear ones only the
    # translation of its value into the EUR base; the holding is 1,000 units
    # (10 x 100) at 1 / 1.2 EUR per USD.
    delta = dict(zip(snapshot.exposures.series.tolist(), snapshot.exposures.value, strict=True))
    linear = dict(zip(snapshot.linear.series.tolist(), snapshot.linear.value, strict=True))
    assert delta[AAA] > 0  # a long call: long its underlying
    assert linear[AAA] == 0.0
    assert linear[CCY["USD"]] == -linear[CCY["EUR"]] == pytest.approx(delta[CCY["USD"]])
    assert linear[CCY["USD"]] > 0
    assert snapshot.options.instrument.tolist() == [CALL]
    assert snapshot.options.units.tolist() == pytest.approx([1_000 / 1.2], rel=1e-12)
    assert snapshot.option_spot.tolist() == [100.0]
