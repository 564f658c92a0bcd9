"""The daily and intraday risk models: seeding, day rolls, and a spike seen within seconds.

Risk series of ``market.py``: the eight plain instruments (AAA=0 ... USDJPY=7),
then USD, EUR, GBP, JPY.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from portfolio.risk import Exposures, pnl_variance
from portfolio.riskmodel import RiskModel
from portfolio.riskrun import RiskUniverse
from pricing.simulator import MarketModel, ModelParams, Regime
from tests.unit.portfolio.market import AAA, BBB, EEE, FX, MASTER, TERMS

UNIVERSE = RiskUniverse(MASTER, TERMS, FX.currencies)
U = UNIVERSE.size_u


def new_model(*, half_life: float = 20.0, min_days: int = 20) -> RiskModel:
    return RiskModel(
        UNIVERSE.group_of, lam=0.94, window=250, min_days=min_days, intraday_half_life=half_life
    )


def closes_of(seed: int, days: int) -> np.ndarray:
    returns = np.random.default_rng(seed).normal(0.0, 0.01, (days, U))
    return 100.0 * np.exp(np.vstack([np.zeros(U), np.cumsum(returns, axis=0)]))


# --- the daily model -------------------------------------------------------------------------


def test_seed_takes_the_log_returns_of_the_closes_and_keeps_the_last_close() -> None:
    model = new_model()
    closes = closes_of(1, 30)

    model.seed(closes)

    np.testing.assert_allclose(
        model.daily.scenarios(), np.log(closes[1:] / closes[:-1]), rtol=1e-12
    )
    assert model.daily.samples == 30
    assert model.daily.is_ready
    np.testing.assert_array_equal(model.closes, closes[-1])


def test_roll_enters_the_close_to_close_return_scaled_to_one_trading_day() -> None:
    model = new_model()
    model.seed(closes_of(2, 30))
    before = model.closes.copy()
    today = before * np.exp(np.linspace(-0.02, 0.02, U))

    entered = model.roll(today, days=4.0)

    # A return over four trading days has four days' variance: halved, it
    # estimates one day's.
    assert entered
    np.testing.assert_allclose(
        model.daily.scenarios()[-1], np.linspace(-0.02, 0.02, U) / 2, rtol=1e-9, atol=1e-15
    )
    assert model.daily.samples == 31
    np.testing.assert_array_equal(model.closes, today)


def test_roll_replaces_the_daily_model_and_leaves_the_one_a_run_holds() -> None:
    model = new_model()
    model.seed(closes_of(3, 30))
    held = model.daily
    held_covariance = held.covariance()
    assert model.closes is not None

    model.roll(model.closes * 1.01, days=1.0)

    assert model.daily is not held
    assert held.samples == 30
    np.testing.assert_array_equal(held.covariance(), held_covariance)


def test_roll_without_any_move_is_not_a_trading_day() -> None:
    model = new_model()
    model.seed(closes_of(4, 30))
    held = model.daily

    entered = model.roll(model.closes.copy(), days=1.0)

    assert not entered
    assert model.daily is held


def test_roll_before_any_close_only_sets_the_close() -> None:
    model = new_model(min_days=1)

    entered = model.roll(np.full(U, 100.0), days=1.0)

    assert not entered
    assert model.daily.samples == 0
    np.testing.assert_array_equal(model.closes, np.full(U, 100.0))


@pytest.mark.parametrize("days", [0.0, -1.0, math.nan])
def test_roll_of_a_move_over_no_time_is_refused(days: float) -> None:
    model = new_model()
    model.start(np.full(U, 100.0))

    with pytest.raises(ValueError, match="days"):
        model.roll(np.full(U, 101.0), days=days)


def test_unseeded_daily_model_warms_up_over_min_days_rolls() -> None:
    model = new_model(min_days=3)
    model.start(np.full(U, 100.0))

    ready = []
    for day in range(1, 5):
        model.roll(np.full(U, 100.0) * (1 + 0.01 * (-1) ** day), days=1.0)
        ready.append(model.daily.is_ready)

    assert ready == [False, False, True, True]


# --- the intraday model ----------------------------------------------------------------------


def test_intraday_decay_halves_a_sample_weight_over_the_half_life() -> None:
    model = new_model(half_life=20.0)

    assert model.intraday.lam**20 == pytest.approx(0.5, rel=1e-12)
    assert model.intraday.min_samples == 20


def test_intraday_volatility_shows_a_spike_within_seconds_and_the_daily_does_not() -> None:
    # The simulator's own mids each second (no quotes, so no microstructure),
    # a portfolio long AAA, BBB and EEE. Calm for two minutes, then a spike
    # that multiplies volatility by 5: an intraday EWMA with a 20 s half-life
    # weighs the last 10 s at 1 - 0.5^0.5 = 29%, so its variance is about
    # 0.29 x 25 + 0.71 = 8 times the calm one, its volatility about 2.8.
    market = MarketModel(MASTER, ModelParams(tick_rate_per_s=0.0, step_s=0.005), seed=3)
    model = new_model(half_life=20.0)
    model.seed(UNIVERSE.close_levels(market.daily_history(300, seed=4), FX))
    exposures = Exposures.aggregate([0, 0, 0], [AAA, BBB, EEE], [1e6, 1e6, 1e6], size_a=1, size_u=U)
    daily_before = pnl_variance(exposures, model.daily.moments())[0]

    def second() -> float:
        market.advance(0, 200)
        mids = market.mids()
        model.sample(UNIVERSE.levels(mids, FX.usd_per(mids, np.zeros(len(MASTER), bool))[0]))
        intraday = pnl_variance(exposures, model.intraday.moments())[0] * 23_400
        return math.sqrt(intraday / daily_before)

    calm = [second() for _ in range(120)]
    market.set_regime(Regime("spike", vol_multiplier=5.0), steps=200 * 60)
    spike = [second() for _ in range(10)]

    assert model.intraday.is_ready
    assert 0.6 < calm[-1] < 1.5  # about 1, within the noise of ~20 effective samples
    assert spike[-1] > 2 * calm[-1]  # measured: 1.10 calm, then 1.08, 2.28, 2.69 ... 2.70
    assert pnl_variance(exposures, model.daily.moments())[0] == daily_before
