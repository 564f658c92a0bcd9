"""One risk run: copy the engine on the event loop, compute in a worker thread.

Dimensions: M = instruments, C = currencies, U = risk series, A = accounts,
Z = stress scenarios, L = confidence levels.

``RiskUniverse`` maps instruments and currencies onto risk series: one per
non-option instrument (an option takes its underlying's series), then one
per currency (the USD value of a unit). ``capture`` copies, on the loop,
everything a run reads (array copies only, no computation), so
``take_snapshot`` and ``run_risk`` can run in another thread while the engine
keeps changing.

Positions without a price are left out of risk and counted in ``excluded``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from portfolio.engine import PortfolioEngine
from portfolio.risk import Exposures, FactorModel, historical_var, parametric_var
from portfolio.stress import StressInputs, StressScenario, stress_pnl
from portfolio.types import Status
from portfolio.valuation import InstrumentMarks, InstrumentTerms, position_values
from pricing.instruments import InstrumentMaster
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


@dataclass(frozen=True, slots=True)
class RiskSnapshot:
    """A copy of the engine's state for one run over accounts ``accounts``."""

    accounts: I64Array1D
    exposures: Exposures
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
        Parametric EWMA factor VaR per confidence (positive = loss).
    historical : ndarray, shape (A, L), float64
        Historical-simulation VaR per confidence.
    stress : ndarray, shape (A, Z), float64
        Scenario P&L (negative = loss).
    excluded : ndarray, shape (A,), int64
        Positions left out for lack of a price or FX rate.
    """

    accounts: I64Array1D
    as_of_ns: int
    confidences: tuple[float, ...]
    scenarios: tuple[str, ...]
    parametric: F64Array2D
    historical: F64Array2D
    stress: F64Array2D
    excluded: I64Array1D
    samples: int


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
    """Exposures and stress inputs of every account of ``state``; runs in the worker."""
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

    offset = universe.currency_offset
    fv = value_base[foreign]
    exposures = Exposures.aggregate(
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
        np.concatenate([values.exposure * w, fv, -fv, cash_base[held], -cash_base[held]]),
        np.concatenate([values.gamma * w, np.zeros(2 * fv.size + 2 * held[0].size)]),
        size_a=a,
        size_u=universe.size_u,
    )
    stress = StressInputs(
        account=local,
        instrument=instrument,
        qm=state.quantity[keep] * terms.multiplier[instrument],
        avg_cost=state.avg_cost[keep],
        fx_to_base=w,
        base_ix=base,
        is_foreign=foreign,
        cash_foreign=cash_base.sum(axis=1),
        mid=state.mid,
        now_ns=state.now_ns,
        size_a=a,
    )
    return RiskSnapshot(state.accounts, exposures, stress, excluded, state.now_ns)


def run_risk(
    snapshot: RiskSnapshot,
    model: FactorModel,
    terms: InstrumentTerms,
    scenarios: Sequence[StressScenario],
    *,
    confidences: Sequence[float],
    horizon_s: float,
    sample_interval_s: float,
) -> RiskReport:
    """Parametric and historical VaR and stress P&L for a snapshot.

    ``model`` must not change during the run: pass a copy when the loop keeps
    feeding the live one.
    """
    variance_scale = horizon_s / sample_interval_s
    return RiskReport(
        accounts=snapshot.accounts,
        as_of_ns=snapshot.as_of_ns,
        confidences=tuple(confidences),
        scenarios=tuple(s.name for s in scenarios),
        parametric=parametric_var(
            snapshot.exposures, model, confidences=confidences, horizon_scale=variance_scale
        ),
        historical=historical_var(
            snapshot.exposures,
            model.scenarios() if model.is_ready else np.empty((0, model.size_u)),
            confidences=confidences,
            return_scale=float(np.sqrt(variance_scale)),
        ),
        stress=stress_pnl(snapshot.stress, terms, scenarios),
        excluded=snapshot.excluded,
        samples=model.samples,
    )
