"""Stress P&L by full revaluation against the scalar twin and by hand; scenario parsing.

Inputs are built by hand on the small market of ``market.py`` at a fixed
``NOW_NS``: mids for the plain instruments; options are priced off them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfolio.stress import DEFAULT_SCENARIOS, StressInputs, StressScenario, parse_scenarios
from portfolio.stress import stress_pnl as stress_pnl_of
from tests.reference.portfolio import (
    RefStressPosition,
    black_scholes_scalar,
    reference_stress_pnl,
)
from tests.unit.portfolio.market import (
    AAA,
    BBB,
    CALL,
    EEE,
    ESZ6,
    EURUSD,
    FX,
    JJJ,
    NOW_NS,
    PUT,
    REF,
    TERMS,
    USDJPY,
)

MIDS = {AAA: 100.0, BBB: 50.0, EEE: 84.0, JJJ: 3000.0, ESZ6: 7000.0, EURUSD: 1.2, USDJPY: 150.0}
MID = [MIDS.get(ix, math.nan) for ix in range(len(REF))]
USD_PER_EUR, EUR_PER_USD, EUR_PER_JPY = 1.2, 1 / 1.2, 1 / 150 / 1.2

# Account 0, base USD: stock, calls, a future, a EUR stock, EUR cash.
# Account 1, base EUR: short puts, a JPY stock and a USD stock, USD cash.
# (FX pair positions have their own test below.)
BOOK = {
    0: [
        RefStressPosition(AAA, 100.0, 90.0, 1.0, False),
        RefStressPosition(CALL, 500.0, 8.0, 1.0, False),
        RefStressPosition(ESZ6, 100.0, 6990.0, 1.0, False),
        RefStressPosition(EEE, 50.0, 80.0, USD_PER_EUR, True),
    ],
    1: [
        RefStressPosition(PUT, -300.0, 5.0, EUR_PER_USD, True),
        RefStressPosition(JJJ, 200.0, 3100.0, EUR_PER_JPY, True),
        RefStressPosition(BBB, 10.0, 45.0, EUR_PER_USD, True),
    ],
}
CASH_FOREIGN = {0: 500.0 * USD_PER_EUR, 1: 2_000.0 * EUR_PER_USD}
BASE = {0: "USD", 1: "EUR"}


def inputs_of(
    book: dict[int, list[RefStressPosition]], cash: dict[int, float], base=BASE
) -> StressInputs:
    rows = [(a, p) for a, positions in book.items() for p in positions]
    currency = {c: i for i, c in enumerate(FX.currencies)}
    return StressInputs(
        account=np.array([a for a, _ in rows], dtype=np.int64),
        instrument=np.array([p.instrument for _, p in rows], dtype=np.int64),
        qm=np.array([p.quantity_x_multiplier for _, p in rows]),
        avg_cost=np.array([p.avg_cost for _, p in rows]),
        fx_to_base=np.array([p.fx_to_base for _, p in rows]),
        base_ix=np.array([currency[base[a]] for a, _ in rows], dtype=np.int64),
        is_foreign=np.array([p.is_foreign for _, p in rows]),
        cash_foreign=np.array([cash.get(a, 0.0) for a in range(len(book))]),
        mid=np.array(MID),
        now_ns=NOW_NS,
        size_a=len(book),
    )


def expected_pnl(book, cash, scenario: StressScenario, base=BASE) -> list[float]:
    return [
        reference_stress_pnl(
            book[a],
            cash.get(a, 0.0),
            REF,
            MID,
            NOW_NS,
            base=base[a],
            equity=scenario.equity,
            vol=scenario.vol,
            fx=scenario.fx,
        )
        for a in range(len(book))
    ]


@pytest.mark.parametrize("scenario", DEFAULT_SCENARIOS, ids=lambda s: s.name)
def test_default_scenario_pnl_matches_full_revaluation_twin(scenario: StressScenario) -> None:
    pnl = stress_pnl_of(inputs_of(BOOK, CASH_FOREIGN), TERMS, [scenario])

    # Same formulas summed in another order; ndtr against erfc for the options.
    expected = expected_pnl(BOOK, CASH_FOREIGN, scenario)
    np.testing.assert_allclose(pnl[:, 0], expected, rtol=1e-9, atol=1e-6)


@settings(max_examples=40, deadline=None, database=None)
@given(equity=st.floats(-0.6, 0.6), vol=st.floats(-0.6, 1.5), fx=st.floats(-0.3, 0.3))
def test_any_scenario_pnl_matches_full_revaluation_twin(equity, vol, fx) -> None:
    scenario = StressScenario("random", equity=equity, vol=vol, fx=fx)

    pnl = stress_pnl_of(inputs_of(BOOK, CASH_FOREIGN), TERMS, [scenario])

    expected = expected_pnl(BOOK, CASH_FOREIGN, scenario)
    np.testing.assert_allclose(pnl[:, 0], expected, rtol=1e-9, atol=1e-6)


def test_scenario_without_shocks_gives_zero_pnl() -> None:
    pnl = stress_pnl_of(inputs_of(BOOK, CASH_FOREIGN), TERMS, [StressScenario("flat")])

    np.testing.assert_allclose(pnl, 0.0, atol=1e-9)


def test_call_under_equity_crash_is_fully_revalued_not_delta_times_shock() -> None:
    book = {0: [RefStressPosition(CALL, 100.0, 8.0, 1.0, False)]}
    crash = StressScenario("crash", equity=-0.20)

    pnl = stress_pnl_of(inputs_of(book, {}), TERMS, [crash])[0, 0]

    t = (REF[CALL].expiry_ns - NOW_NS) / (365 * 86_400e9)
    # The call's terms from market.py: vol 30%, USD rate 4%, AAA's yield 1.5%.
    before = black_scholes_scalar(100.0, 100.0, t, 0.30, 0.04, True, dividend_yield=0.015)
    after = black_scholes_scalar(80.0, 100.0, t, 0.30, 0.04, True, dividend_yield=0.015)
    delta_estimate = 100.0 * before.delta * 100.0 * -0.20
    # A long call loses less than its delta says (positive gamma): the gap is
    # far beyond rounding, about 0.5 x gamma x 20^2 per share.
    assert pnl == pytest.approx(100.0 * (after.price - before.price), rel=1e-9)
    assert pnl - delta_estimate > 0.1 * abs(delta_estimate)


def test_equity_shock_moves_index_futures_but_not_fx_pairs() -> None:
    book = {
        0: [
            RefStressPosition(ESZ6, 100.0, 6990.0, 1.0, False),
            RefStressPosition(EURUSD, 10_000.0, 1.18, 1.0, False),
        ]
    }

    pnl = stress_pnl_of(inputs_of(book, {}), TERMS, [StressScenario("eq", equity=-0.10)])

    # ESZ6: 2 contracts x 50 x (6300 - 7000) = -70,000; EURUSD untouched.
    assert pnl[0, 0] == pytest.approx(-70_000.0, rel=1e-12)


def test_vol_shock_moves_options_and_nothing_else() -> None:
    book = {0: [RefStressPosition(AAA, 100.0, 90.0, 1.0, False)]}

    pnl = stress_pnl_of(inputs_of(book, {}), TERMS, [StressScenario("vol", vol=0.5)])

    assert pnl[0, 0] == 0.0


def test_fx_shock_translates_foreign_positions_and_cash_by_hand() -> None:
    # EUR account: 10 BBB at 50 USD, and 1,000 EUR worth of USD cash.
    book = {0: [RefStressPosition(BBB, 10.0, 45.0, EUR_PER_USD, True)]}

    pnl = stress_pnl_of(inputs_of(book, {0: 1_000.0}), TERMS, [StressScenario("fx", fx=0.05)])

    # 10 x 50 / 1.2 = 416.67 EUR x 5% = 20.83; cash 1,000 x 5% = 50; total 70.83.
    assert pnl[0, 0] == pytest.approx(500.0 / 1.2 * 0.05 + 50.0, rel=1e-12)


def test_fx_shock_translates_a_margined_foreign_position_by_its_unrealised_value() -> None:
    # EUR account long 2 ESZ6 bought at 6990, mid 7000: worth its P&L, not its notional.
    book = {0: [RefStressPosition(ESZ6, 100.0, 6990.0, EUR_PER_USD, True)]}

    pnl = stress_pnl_of(inputs_of(book, {}), TERMS, [StressScenario("fx", fx=-0.05)])

    # 100 x (7000 - 6990) = 1,000 USD = 833.33 EUR; x -5% = -41.67 EUR.
    assert pnl[0, 0] == pytest.approx(-1_000.0 / 1.2 * 0.05, rel=1e-12)


@pytest.mark.parametrize(
    ("base", "position", "hand_pnl"),
    [
        # USD account long 10,000 EURUSD (long EUR): EUR +5% -> 1.26, 10,000 x 0.06 = +600 USD.
        ("USD", RefStressPosition(EURUSD, 10_000.0, 1.18, 1.0, False), 600.0),
        # EUR account long 10,000 EURUSD at 1.2 (short 12,000 USD): USD +5% against EUR
        # makes the short USD cost 12,000 / 1.2 x 0.05 = 500 EUR more: -500 EUR.
        ("EUR", RefStressPosition(EURUSD, 10_000.0, 1.2, EUR_PER_USD, True), -500.0),
        # USD account long 10,000 USDJPY at 150 (short 1.5M JPY): JPY +5% -> -500 USD.
        ("USD", RefStressPosition(USDJPY, 10_000.0, 150.0, 1 / 150, True), -500.0),
    ],
)
def test_fx_shock_moves_the_currencies_of_fx_pair_positions(base, position, hand_pnl) -> None:
    scenario = StressScenario("fx", fx=0.05)

    pnl = stress_pnl_of(inputs_of({0: [position]}, {}, base={0: base}), TERMS, [scenario])

    twin = expected_pnl({0: [position]}, {}, scenario, base={0: base})[0]
    assert twin == pytest.approx(hand_pnl, rel=1e-9)
    assert pnl[0, 0] == pytest.approx(hand_pnl, rel=1e-9)


# --- scenarios ---------------------------------------------------------------------------


def test_parse_scenarios_reads_the_documented_form() -> None:
    parsed = parse_scenarios("crash:equity=-0.2,vol=0.5;fxdown:fx=-0.05")

    assert parsed == (
        StressScenario("crash", equity=-0.2, vol=0.5),
        StressScenario("fxdown", fx=-0.05),
    )


def test_parse_scenarios_ignores_blanks_and_empty_items() -> None:
    parsed = parse_scenarios(" up : equity=0.1 ; ; down:equity=-0.1, ;")

    assert parsed == (StressScenario("up", equity=0.1), StressScenario("down", equity=-0.1))


@pytest.mark.parametrize("text", ["a:rates=0.01", "a:equity=0.1,Vol=0.2", "a:=0.1"])
def test_parse_scenarios_rejects_unknown_shocks(text: str) -> None:
    with pytest.raises(ValueError, match="equity, vol or fx"):
        parse_scenarios(text)


@pytest.mark.parametrize("text", ["a:fx", "a:fx=", "a:vol=high"])
def test_parse_scenarios_rejects_shocks_that_are_not_numbers(text: str) -> None:
    with pytest.raises(ValueError, match=r"scenario 'a': (fx|vol) must be a number"):
        parse_scenarios(text)


def test_parse_scenarios_names_the_scenario_with_a_non_finite_shock() -> None:
    with pytest.raises(ValueError, match="scenario 'crash': shocks must be finite"):
        parse_scenarios("ok:equity=0.1;crash:equity=-inf")


@pytest.mark.parametrize("shock", ["equity", "vol", "fx"])
def test_scenario_with_nan_shock_is_refused(shock: str) -> None:
    # A NaN shock is not "above -100%" and would make every account's stress
    # P&L NaN; TICKGATE_RISK_SCENARIOS="a:equity=nan" reaches this constructor.
    with pytest.raises(ValueError, match="shocks must be"):
        StressScenario("bad", **{shock: math.nan})


@pytest.mark.parametrize("text", ["a:equity=-1", "a:vol=-1.5", ":equity=0.1"])
def test_parse_scenarios_rejects_impossible_scenarios(text: str) -> None:
    with pytest.raises(ValueError, match=r"shocks must be above|needs a name"):
        parse_scenarios(text)


def test_default_scenarios_cover_equity_vol_fx_and_combinations() -> None:
    shocks = {(s.equity, s.vol, s.fx) for s in DEFAULT_SCENARIOS}

    single = {(e, 0.0, 0.0) for e in (-0.05, 0.05, -0.10, 0.10, -0.20, 0.20)}
    single |= {(0.0, 0.5, 0.0), (0.0, 0.0, -0.05), (0.0, 0.0, 0.05)}
    combined = [s for s in shocks if sum(x != 0 for x in s) > 1]
    assert single <= shocks
    assert len(combined) >= 2
    assert len({s.name for s in DEFAULT_SCENARIOS}) == len(DEFAULT_SCENARIOS)
