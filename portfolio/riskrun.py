"""One risk run: copy the engine on the event loop, compute in a worker thread.

Dimensions: M = instruments, C = currencies, U = risk series, A = accounts,
Z = stress scenarios, L = confidence levels, T = days of a history.

``RiskUniverse`` maps instruments and currencies onto risk series: one per
non-option instrument (an option takes its underlying's series), then one
per currency (the USD value of a unit). ``capture`` copies, on the loop,
everything a run reads (array copies only, no computation), so
``take_snapshot`` and ``run_risk`` can run in another thread while the engine
keeps changing.

A run values VaR with the daily model (parametric and historical, over the
horizon in trading days), the intraday volatility with the intraday model,
and the stress scenarios; see docs/risk.md.

Positions without a price are left out of risk and counted in ``excluded``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from portfolio.engine import PortfolioEngine
from portfolio.fx import FxTable
from portfolio.risk import (
    Exposures,
    FactorModel,
    OptionHoldings,
    historical_var,
    option_scenario_pnl,
    pnl_variance,
    z_score,
)
from portfolio.stress import StressInputs, StressScenario, stress_pnl
from portfolio.types import Status
from portfolio.valuation import NS_PER_YEAR, InstrumentMarks, InstrumentTerms, position_values
from pricing.instruments import InstrumentMaster
from pricing.simulator import TRADING_SECONDS_PER_DAY
from pricing.types import F64Array1D, F64Array2D, I64Array1D

__all__ = [
    "EngineCopy",
    "RiskReport",
    "RiskSnapshot",
    "RiskUniverse",
    "capture",
    "run_risk",
    "take_snapshot",
]


class RiskUniverse:
    """Risk series of instruments and currencies, and their factor groups.

    Attributes
    ----------
    series_of_instrument : ndarray, shape (M,), int64
        Series of each instrument (an option's is its underlying's).
    group_of : ndarray, shape (U,), int64
        Factor group of each series: the instrument's sector, ``fx`` for currencies.
    group_names : tuple of str, length K
    """

    def __init__(self, master: InstrumentMaster, terms: InstrumentTerms, currencies: Sequence[str]):
        plain = np.flatnonzero(~terms.is_option)
        series = np.full(len(master), -1, dtype=np.int64)
        series[plain] = np.arange(plain.size)
        options = np.flatnonzero(terms.is_option)
        series[options] = series[terms.underlying_ix[options]]
        self.series_of_instrument: I64Array1D = series
        self.plain_instruments: I64Array1D = plain.astype(np.int64)
        self.currency_offset = plain.size
        self.size_u = plain.size + len(currencies)
        names = [master[int(i)].sector for i in plain] + ["fx"] * len(currencies)
        self.group_names = tuple(sorted(set(names)))
        index = {name: k for k, name in enumerate(self.group_names)}
        self.group_of: I64Array1D = np.array([index[n] for n in names], dtype=np.int64)

    def levels(self, marks: F64Array1D, usd_per: F64Array1D) -> F64Array1D:
        """Series levels, shape (U,), from instrument marks (M,) and USD per currency (C,)."""
        return np.concatenate([marks[self.plain_instruments], usd_per])

    def close_levels(self, closes: F64Array2D, fx: FxTable) -> F64Array2D:
        """Series levels of daily closes, shape (T, U), from instrument closes (T, M).

        A currency's level is its USD value through its pair's close (NaN
        where the pair has none).
        """
        closes = np.atleast_2d(np.asarray(closes, dtype=np.float64))
        fresh = np.zeros(closes.shape[1], dtype=np.bool_)
        return np.stack([self.levels(row, fx.usd_per(row, fresh)[0]) for row in closes])


@dataclass(frozen=True, slots=True)
class RiskSnapshot:
    """A copy of the engine's state for one run over accounts ``accounts``.

    ``exposures`` are the delta-adjusted exposures of every priced position
    (parametric VaR, volatilities); ``linear`` leaves out the options' price
    exposure, which historical VaR revalues in full from ``options`` at the
    underlyings' mids ``option_spot`` (shape (O,), one per held option).
    """

    accounts: I64Array1D
    exposures: Exposures
    linear: Exposures
    options: OptionHoldings
    option_spot: F64Array1D
    stress: StressInputs
    excluded: I64Array1D
    as_of_ns: int


@dataclass(frozen=True, slots=True)
class RiskReport:
    """Risk of every account of a snapshot.

    Attributes
    ----------
    accounts : ndarray, shape (A,), int64
    parametric : ndarray, shape (A, L), float64
        Parametric VaR under the daily model, per confidence (positive = loss).
    historical : ndarray, shape (A, L), float64
        Historical VaR over the daily model's scenarios, per confidence.
    daily_volatility : ndarray, shape (A,), float64
        Standard deviation of P&L over the horizon under the daily model.
    intraday_volatility : ndarray, shape (A,), float64
        The same under the intraday model (NaN while it warms up).
    stress : ndarray, shape (A, Z), float64
        Scenario P&L (negative = loss).
    excluded : ndarray, shape (A,), int64
        Positions left out for lack of a price or FX rate.
    days : int
        Daily returns the daily model holds (its history and the days rolled in).
    scenario_count : int
        Daily scenarios historical VaR used.
    is_ready, intraday_ready : bool
        Whether each model had enough data; VaR and volatilities are NaN if not.
    intraday_samples : int
    """

    accounts: I64Array1D
    as_of_ns: int
    confidences: tuple[float, ...]
    scenarios: tuple[str, ...]
    parametric: F64Array2D
    historical: F64Array2D
    daily_volatility: F64Array1D
    intraday_volatility: F64Array1D
    stress: F64Array2D
    excluded: I64Array1D
    days: int
    scenario_count: int
    is_ready: bool
    intraday_samples: int
    intraday_ready: bool


@dataclass(frozen=True, slots=True)
class EngineCopy:
    """What a risk run reads from the engine, for the positions of ``accounts``.

    Taken on the event loop by ``capture`` with plain array copies only, so it
    costs a memory copy; everything computed from it runs in the worker.

    Attributes
    ----------
    accounts : ndarray, shape (A,), int64
        Account rows, sorted.
    local : ndarray, shape (S,), int64
        Each position's account as an index into ``accounts``.
    instrument, quantity, avg_cost, day_open_quantity, day_trade_value : ndarray, shape (S,)
    cash : ndarray, shape (A, C), float64
    base_ix : ndarray, shape (A,), int64
    marks : InstrumentMarks
    prev_mark, mid : ndarray, shape (M,), float64
    fx_rate : ndarray, shape (C, C), float64
    fx_status : ndarray, shape (C, C), uint8
    now_ns : int
    """

    accounts: I64Array1D
    local: I64Array1D
    instrument: I64Array1D
    quantity: F64Array1D
    avg_cost: F64Array1D
    day_open_quantity: F64Array1D
    day_trade_value: F64Array1D
    cash: F64Array2D
    base_ix: I64Array1D
    marks: InstrumentMarks
    prev_mark: F64Array1D
    mid: F64Array1D
    fx_rate: F64Array2D
    fx_status: npt.NDArray[np.uint8]
    now_ns: int


def capture(engine: PortfolioEngine, accounts: I64Array1D, now_ns: int) -> EngineCopy:
    """Copy what a risk run over ``accounts`` (sorted rows) reads; call on the event loop."""
    book = engine.book
    s: slice | I64Array1D
    if accounts.size == book.size_n:  # every account: straight copies, no gather
        s = slice(None)
        local = book.pos_account.copy()
    else:
        s = book.positions_of_accounts(accounts)
        local = np.searchsorted(accounts, book.pos_account[s])
    return EngineCopy(
        accounts=accounts.copy(),
        local=local,
        instrument=book.pos_instrument[s].copy(),
        quantity=book.column("quantity")[s].copy(),
        avg_cost=book.column("avg_cost")[s].copy(),
        day_open_quantity=book.column("day_open_quantity")[s].copy(),
        day_trade_value=book.column("day_trade_value")[s].copy(),
        cash=book.cash[accounts],
        base_ix=book.base_ix[accounts],
        marks=engine.marks.copy(),
        prev_mark=engine.prev_mark.copy(),
        mid=engine.prices.mid().copy(),
        fx_rate=engine.fx_rate.copy(),
        fx_status=engine.fx_status.copy(),
        now_ns=now_ns,
    )


def take_snapshot(
    state: EngineCopy, terms: InstrumentTerms, universe: RiskUniverse
) -> RiskSnapshot:
    """Exposures, option holdings and stress inputs of every account of ``state``; in the worker."""
    a = state.accounts.size
    local = state.local
    instrument = state.instrument
    ccy = terms.currency_ix[instrument]
    base = state.base_ix[local]
    price_status = state.marks.status[instrument]
    priced = (price_status != Status.UNPRICED) & (state.fx_status[ccy, base] != Status.UNPRICED)
    excluded = np.bincount(local, ~priced, a).astype(np.int64)
    keep = np.flatnonzero(priced)
    local, instrument, ccy, base = local[keep], instrument[keep], ccy[keep], base[keep]
    values = position_values(
        instrument,
        state.quantity[keep],
        state.avg_cost[keep],
        state.day_open_quantity[keep],
        state.day_trade_value[keep],
        terms,
        state.marks,
        state.prev_mark,
    )
    w = state.fx_rate[ccy, base]
    foreign = ccy != base
    value_base = values.market_value * w

    base_a = state.base_ix
    rate = state.fx_rate[:, base_a].T  # (A, C)
    cash = state.cash
    cash_base = np.where(cash != 0.0, cash * rate, 0.0)
    cash_base[np.arange(a), base_a] = 0.0
    cash_base[~np.isfinite(cash_base)] = 0.0
    held = np.nonzero(cash_base)

    # Price exposures on the instruments' series; a foreign position's value
    # (and foreign cash) long its currency's series and short the base's.
    # One sum for two sets: the delta exposures, and the linear ones without
    # the options' price part (historical VaR revalues options in full).
    offset = universe.currency_offset
    fv = value_base[foreign]
    price_exposure = values.exposure * w
    is_option = terms.is_option[instrument]
    fx_values = [fv, -fv, cash_base[held], -cash_base[held]]
    exposures, linear = Exposures.aggregate_two(
        np.concatenate([local, local[foreign], local[foreign], held[0], held[0]]),
        np.concatenate(
            [
                universe.series_of_instrument[instrument],
                offset + ccy[foreign],
                offset + base[foreign],
                offset + held[1],
                offset + base_a[held[0]],
            ]
        ),
        np.concatenate([price_exposure, *fx_values]),
        np.concatenate([np.where(is_option, 0.0, price_exposure), *fx_values]),
        size_a=a,
        size_u=universe.size_u,
    )
    qm = state.quantity[keep] * terms.multiplier[instrument]
    options = OptionHoldings.aggregate(
        local[is_option], instrument[is_option], qm[is_option] * w[is_option], size_a=a
    )
    stress = StressInputs(
        account=local,
        instrument=instrument,
        qm=qm,
        avg_cost=state.avg_cost[keep],
        fx_to_base=w,
        base_ix=base,
        is_foreign=foreign,
        cash_foreign=cash_base.sum(axis=1),
        mid=state.mid,
        now_ns=state.now_ns,
        size_a=a,
    )
    return RiskSnapshot(
        accounts=state.accounts,
        exposures=exposures,
        linear=linear,
        options=options,
        option_spot=state.mid[terms.underlying_ix[options.instrument]],
        stress=stress,
        excluded=excluded,
        as_of_ns=state.now_ns,
    )


def run_risk(
    snapshot: RiskSnapshot,
    daily: FactorModel,
    intraday: FactorModel,
    terms: InstrumentTerms,
    scenarios: Sequence[StressScenario],
    *,
    confidences: Sequence[float],
    horizon_days: float,
    intraday_interval_s: float,
    universe: RiskUniverse,
) -> RiskReport:
    """VaR, volatilities and stress P&L for a snapshot.

    ``daily`` holds daily returns (its moments are per trading day);
    ``intraday`` holds returns every ``intraday_interval_s``, scaled here to
    the same horizon of ``horizon_days`` trading days. Neither may change
    during the run: pass a copy (or a model nobody updates any more) when the
    loop keeps feeding the live one.
    """
    a = snapshot.accounts.size
    nan_a = np.full(a, np.nan)
    nan_al = np.full((a, len(confidences)), np.nan)
    parametric, historical, daily_volatility = nan_al, nan_al, nan_a
    scenario_count = 0
    if daily.is_ready:
        daily_volatility = np.sqrt(pnl_variance(snapshot.exposures, daily.moments()) * horizon_days)
        parametric = np.stack([z_score(c) * daily_volatility for c in confidences], axis=1)
        history = daily.scenarios()
        scenario_count = history.shape[0]
        historical = _historical(snapshot, history, terms, universe, confidences, horizon_days)
    intraday_volatility = nan_a
    if intraday.is_ready:
        periods = horizon_days * TRADING_SECONDS_PER_DAY / intraday_interval_s
        variance = pnl_variance(snapshot.exposures, intraday.moments())
        intraday_volatility = np.sqrt(variance * periods)
    return RiskReport(
        accounts=snapshot.accounts,
        as_of_ns=snapshot.as_of_ns,
        confidences=tuple(confidences),
        scenarios=tuple(s.name for s in scenarios),
        parametric=parametric.reshape(a, len(confidences)),
        historical=historical,
        daily_volatility=daily_volatility,
        intraday_volatility=intraday_volatility,
        stress=stress_pnl(snapshot.stress, terms, scenarios),
        excluded=snapshot.excluded,
        days=daily.samples,
        scenario_count=scenario_count,
        is_ready=daily.is_ready,
        intraday_samples=intraday.samples,
        intraday_ready=intraday.is_ready,
    )


def _historical(
    snapshot: RiskSnapshot,
    history: F64Array2D,
    terms: InstrumentTerms,
    universe: RiskUniverse,
    confidences: Sequence[float],
    horizon_days: float,
) -> F64Array2D:
    # Daily returns scaled to the horizon; options revalued in full at the
    # run's time under their underlying's scaled return.
    scale = float(np.sqrt(horizon_days))
    held = snapshot.options.instrument
    option_pnl = option_scenario_pnl(
        snapshot.option_spot,
        terms.strike[held],
        (terms.expiry_ns[held] - snapshot.as_of_ns) / NS_PER_YEAR,
        terms.implied_vol[held],
        terms.rate[held],
        terms.dividend_yield[held],
        terms.is_call[held],
        history[:, universe.series_of_instrument[held]] * scale,
    )
    return historical_var(
        snapshot.linear,
        history,
        confidences=confidences,
        return_scale=scale,
        options=snapshot.options,
        option_pnl=option_pnl,
    )
