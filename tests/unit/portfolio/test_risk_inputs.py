"""Risk kernels leave their inputs unchanged: run twice on one snapshot, one answer.

Each kernel is called twice on the same inputs; the outputs must be equal and
the inputs equal to a deep copy taken before the first call. The snapshot
holds options (dollar gammas) next to plain positions (zero gammas) and
foreign cash, so sparse structure with explicit zeros is exercised.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np

from portfolio.risk import (
    FactorModel,
    historical_var,
    option_scenario_pnl,
    parametric_var,
    pnl_variance,
)
from portfolio.riskrun import RiskUniverse, capture, run_risk, take_snapshot
from portfolio.stress import DEFAULT_SCENARIOS, stress_pnl
from portfolio.valuation import InstrumentMarks
from tests.reference.portfolio import RefAccount
from tests.unit.portfolio.market import (
    AAA,
    BBB,
    CALL,
    EEE,
    EURUSD,
    FX,
    GBPUSD,
    MASTER,
    NOW_NS,
    PUT,
    TERMS,
    USDJPY,
    held,
    new_book,
    new_engine,
    new_prices,
    quote,
)

UNIVERSE = RiskUniverse(MASTER, TERMS, FX.currencies)
BOOK = [
    RefAccount("USD", {"EUR": 5_000.0}, [(AAA, held(100, 95.0)), (CALL, held(-10, 8.0))]),
    RefAccount("EUR", {}, [(PUT, held(7, 5.0)), (EEE, held(50, 78.0)), (BBB, held(-40, 48.0))]),
    RefAccount("USD", {}, [(BBB, held(200, 49.0))]),
]
CONFIDENCES = (0.95, 0.99)


def engine_state():
    prices = new_prices()
    quote(prices, {AAA: 100.0, BBB: 50.0, EEE: 80.0, EURUSD: 1.2, GBPUSD: 1.3, USDJPY: 150.0})
    engine = new_engine(prices, new_book(BOOK))
    return capture(engine, np.arange(len(BOOK), dtype=np.int64), NOW_NS)


def trained_model() -> FactorModel:
    model = FactorModel(UNIVERSE.group_of, lam=0.94, window=50, min_samples=5)
    rng = np.random.default_rng(3)
    for _ in range(60):
        model.update(rng.normal(0.0, 0.01, UNIVERSE.size_u))
    return model


def assert_same(a: Any, b: Any, path: str = "") -> None:  # any two values of one snapshot
    """Equal values, arrays compared element by element (NaN equal to NaN)."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), path
        assert a.shape == b.shape, path
        assert a.dtype == b.dtype, path
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), path
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        for field in dataclasses.fields(a):
            assert_same(getattr(a, field.name), getattr(b, field.name), f"{path}.{field.name}")
    elif isinstance(a, InstrumentMarks):
        for name in ("mark", "underlying_price", "delta", "gamma", "vega", "theta", "rho"):
            assert_same(getattr(a, name), getattr(b, name), f"{path}.{name}")
        assert_same(a.status, b.status, f"{path}.status")
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same(a[key], b[key], f"{path}[{key!r}]")
    elif hasattr(a, "__dict__") and not callable(a):
        assert type(a) is type(b), path
        assert_same(vars(a), vars(b), path)
    else:
        assert a == b, path


def twice(kernel, *args, **kwargs) -> None:
    before = copy.deepcopy((args, kwargs))

    first = kernel(*args, **kwargs)
    second = kernel(*args, **kwargs)

    assert_same(first, second, "output")
    assert_same((args, kwargs), before, "input")


def test_take_snapshot_leaves_the_engine_copy_unchanged() -> None:
    twice(take_snapshot, engine_state(), TERMS, UNIVERSE)


def test_model_moments_leave_the_model_unchanged() -> None:
    twice(FactorModel.moments, trained_model())


def test_pnl_variance_leaves_exposures_and_moments_unchanged() -> None:
    snapshot = take_snapshot(engine_state(), TERMS, UNIVERSE)

    twice(pnl_variance, snapshot.exposures, trained_model().moments())


def test_parametric_var_leaves_exposures_and_moments_unchanged() -> None:
    snapshot = take_snapshot(engine_state(), TERMS, UNIVERSE)

    twice(
        parametric_var,
        snapshot.exposures,
        trained_model().moments(),
        confidences=CONFIDENCES,
        horizon_scale=1.0,
    )


def test_option_scenario_pnl_leaves_its_inputs_unchanged() -> None:
    snapshot = take_snapshot(engine_state(), TERMS, UNIVERSE)
    held = snapshot.options.instrument
    scenarios = trained_model().scenarios()

    twice(
        option_scenario_pnl,
        snapshot.option_spot,
        TERMS.strike[held],
        np.full(held.size, 0.5),
        TERMS.implied_vol[held],
        TERMS.rate[held],
        TERMS.dividend_yield[held],
        TERMS.is_call[held],
        scenarios[:, UNIVERSE.series_of_instrument[held]],
    )


def test_historical_var_leaves_exposures_scenarios_and_holdings_unchanged() -> None:
    snapshot = take_snapshot(engine_state(), TERMS, UNIVERSE)
    scenarios = trained_model().scenarios()
    option_pnl = np.random.default_rng(4).normal(0, 5, (snapshot.options.instrument.size, 50))

    twice(
        historical_var,
        snapshot.linear,
        scenarios,
        confidences=CONFIDENCES,
        return_scale=1.0,
        options=snapshot.options,
        option_pnl=option_pnl,
    )


def test_stress_pnl_leaves_its_inputs_unchanged() -> None:
    snapshot = take_snapshot(engine_state(), TERMS, UNIVERSE)

    twice(stress_pnl, snapshot.stress, TERMS, DEFAULT_SCENARIOS)


def test_run_risk_leaves_snapshot_and_models_unchanged() -> None:
    snapshot = take_snapshot(engine_state(), TERMS, UNIVERSE)

    twice(
        run_risk,
        snapshot,
        trained_model(),
        trained_model(),
        TERMS,
        DEFAULT_SCENARIOS,
        confidences=CONFIDENCES,
        horizon_days=1.0,
        intraday_interval_s=1.0,
        universe=UNIVERSE,
    )
