"""Stress scenarios: P&L of every account under configured shocks, fully revalued.

Dimensions: M = instruments, S = positions in the snapshot, A = accounts,
Z = scenarios.

A scenario moves prices of equity risk (equities, equity-index futures, and
options through their underlying) by ``equity``, implied volatilities by
``vol`` (0.5 = +50%), and every currency other than an account's base against
that base by ``fx``. Options are repriced with Black-Scholes under the
shocked underlying and volatility, never approximated by their delta. An FX
pair XXXYYY (the price of XXX in YYY) held by an account with base B moves
by ``g(XXX) / g(YYY)``, where ``g(c) = 1 + fx`` for c other than B and 1 for
B itself. An account's scenario P&L is the change of the value of its
positions plus the translation of its foreign holdings (positions and cash)
by ``fx``. Options on FX pairs are not shocked through their underlying.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from portfolio.valuation import InstrumentMarks, InstrumentTerms
from pricing.types import BoolArray1D, F64Array1D, F64Array2D, I64Array1D

__all__ = ["DEFAULT_SCENARIOS", "StressInputs", "StressScenario", "parse_scenarios", "stress_pnl"]


@dataclass(frozen=True, slots=True)
class StressScenario:
    """A named shock: fractional moves of equity prices, volatilities and FX."""

    name: str
    equity: float = 0.0
    vol: float = 0.0
    fx: float = 0.0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a scenario needs a name")
        shocks = (self.equity, self.vol, self.fx)
        if not all(math.isfinite(shock) for shock in shocks):
            raise ValueError(f"scenario {self.name!r}: shocks must be finite numbers")
        if min(shocks) <= -1:
            raise ValueError(f"scenario {self.name!r}: shocks must be above -100%")


DEFAULT_SCENARIOS = (
    StressScenario("equity_-5%", equity=-0.05),
    StressScenario("equity_+5%", equity=0.05),
    StressScenario("equity_-10%", equity=-0.10),
    StressScenario("equity_+10%", equity=0.10),
    StressScenario("equity_-20%", equity=-0.20),
    StressScenario("equity_+20%", equity=0.20),
    StressScenario("vol_+50%", vol=0.50),
    StressScenario("fx_-5%", fx=-0.05),
    StressScenario("fx_+5%", fx=0.05),
    StressScenario("equity_-10%_vol_+50%", equity=-0.10, vol=0.50),
    StressScenario("equity_-20%_vol_+50%_fx_-5%", equity=-0.20, vol=0.50, fx=-0.05),
)


def parse_scenarios(text: str) -> tuple[StressScenario, ...]:
    """Parse ``name:equity=-0.1,vol=0.5;name2:fx=0.05`` into scenarios."""
    scenarios = []
    for item in filter(None, (part.strip() for part in text.split(";"))):
        name, _, shocks = item.partition(":")
        values: dict[str, float] = {}
        for shock in filter(None, (s.strip() for s in shocks.split(","))):
            key, _, number = shock.partition("=")
            if key not in ("equity", "vol", "fx"):
                raise ValueError(f"scenario {name!r}: shock must be equity, vol or fx, was {key!r}")
            try:
                values[key] = float(number)
            except ValueError:
                raise ValueError(
                    f"scenario {name!r}: {key} must be a number, was {number!r}"
                ) from None
        scenarios.append(StressScenario(name.strip(), **values))
    return tuple(scenarios)


@dataclass(frozen=True, slots=True)
class StressInputs:
    """A consistent copy of what stress testing needs.

    Attributes
    ----------
    account : ndarray, shape (S,), int64
        Local account index of each priced position, in ``[0, A)``.
    instrument : ndarray, shape (S,), int64
    qm : ndarray, shape (S,), float64
        Quantity x multiplier.
    avg_cost : ndarray, shape (S,), float64
    fx_to_base : ndarray, shape (S,), float64
    base_ix : ndarray, shape (S,), int64
        The base currency of each position's account.
    is_foreign : ndarray, shape (S,), bool
        The position's currency differs from the account's base.
    cash_foreign : ndarray, shape (A,), float64
        Cash held in currencies other than the base, in base currency.
    mid : ndarray, shape (M,), float64
        Current mids.
    now_ns : int
    size_a : int
    """

    account: I64Array1D
    instrument: I64Array1D
    qm: F64Array1D
    avg_cost: F64Array1D
    fx_to_base: F64Array1D
    base_ix: I64Array1D
    is_foreign: BoolArray1D
    cash_foreign: F64Array1D
    mid: F64Array1D
    now_ns: int
    size_a: int


def stress_pnl(
    inputs: StressInputs, terms: InstrumentTerms, scenarios: Sequence[StressScenario]
) -> F64Array2D:
    """P&L of every account under every scenario, in base currency.

    Returns
    -------
    ndarray, shape (A, Z), float64
    """
    out = np.empty((inputs.size_a, len(scenarios)))
    held = np.unique(inputs.instrument)
    held_options = held[terms.is_option[held]]
    to_price = np.union1d(held, terms.underlying_ix[held_options])
    no_stale = np.zeros(inputs.mid.shape[0], dtype=np.bool_)
    margined = terms.is_margined[inputs.instrument]
    # FX pairs: a currency other than the account's base moves by fx against it.
    pair_base = terms.pair_base_ix[inputs.instrument]
    is_pair = terms.is_fx_pair[inputs.instrument]
    base_moves = is_pair & (pair_base != inputs.base_ix)
    quote_moves = is_pair & (terms.currency_ix[inputs.instrument] != inputs.base_ix)
    # The unshocked values at the same instant, so P&L is the shock's alone
    # (not also the options' time decay since they were last marked).
    before = InstrumentMarks(inputs.mid.shape[0])
    before.update(terms, to_price, inputs.mid, no_stale, inputs.now_ns)
    mark_before = before.mark[inputs.instrument]
    for z, scenario in enumerate(scenarios):
        shocked_mid = np.where(
            terms.is_equity_risk & ~terms.is_option,
            inputs.mid * (1.0 + scenario.equity),
            inputs.mid,
        )
        marks = InstrumentMarks(inputs.mid.shape[0])
        marks.update(
            terms, to_price, shocked_mid, no_stale, inputs.now_ns, vol_multiplier=1.0 + scenario.vol
        )
        pair_move = np.where(base_moves, 1.0 + scenario.fx, 1.0) / np.where(
            quote_moves, 1.0 + scenario.fx, 1.0
        )
        new_mark = np.where(is_pair, mark_before * pair_move, marks.mark[inputs.instrument])
        price_pnl = inputs.qm * (new_mark - mark_before) * inputs.fx_to_base
        value_after = (
            np.where(margined, inputs.qm * (new_mark - inputs.avg_cost), inputs.qm * new_mark)
            * inputs.fx_to_base
        )
        translation = np.where(inputs.is_foreign, value_after * scenario.fx, 0.0)
        out[:, z] = np.bincount(inputs.account, price_pnl + translation, inputs.size_a)
        out[:, z] += inputs.cash_foreign * scenario.fx
    return out
