"""Valuation kernels: marks per instrument, values per position, totals per account.

Dimensions: M = instruments, P = positions, N = accounts, C = currencies,
S = a subset of positions, F = summed total fields.

Per instrument (``InstrumentMarks``): the mark (the mid, or the last trade;
for options the Black-Scholes-Merton price off the underlying's live mark,
with the underlying's dividend yield), the
greeks per unit, the underlying's price and a ``Status``.

Per position, in the instrument's currency, multiplier included:

- ``unrealised_pnl = q x (mark - avg_cost) x m``
- ``market_value = q x mark x m``, or the unrealised P&L for margined
  instruments (futures, FX pairs), whose notional never moved cash;
- ``day_pnl = (q x mark - q_open x prev_mark - day_trade_value) x m``, exact
  with intraday fills;
- ``exposure`` (delta-adjusted) ``= q x delta x underlying price x m``, which
  is the notional for instruments other than options;
- ``gamma`` = change of the exposure for a 1% move of the underlying
  ``= q x gamma x S^2 x 0.01 x m``; ``vega`` per vol point, ``theta`` per
  calendar day, ``rho`` per 1% rate, each ``q x unit greek x m``.

A position's status here is its price's; the engine combines it with the
status of the FX rate to the account's base. Account sums are linear in
per-instrument vectors (``sum_vectors``), each zeroed where the instrument
has no price, so a position whose price is missing contributes nothing to
the price-based sums (realised P&L and commissions are still known), and the
account's ``status`` and counts say so. Nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from portfolio.options import DAYS_PER_YEAR, black_scholes
from portfolio.types import Status
from pricing.instruments import InstrumentMaster, InstrumentType
from pricing.types import BoolArray1D, F64Array1D, F64Array2D, I64Array1D, U8Array1D

__all__ = [
    "SUM_VECTORS",
    "InstrumentMarks",
    "InstrumentTerms",
    "PositionValues",
    "expiry_ns",
    "position_values",
    "sum_vectors",
]

NS_PER_YEAR = DAYS_PER_YEAR * 86_400 * 1_000_000_000


def expiry_ns(master: InstrumentMaster) -> I64Array1D:
    """Expiry instant per instrument as UNIX ns, shape (M,); 0 for instruments without one.

    An instrument expires at its listing venue's close on its expiry date, in
    the venue's time zone (``Instrument.expires_at``): US listed options at
    16:00 New York time, 21:00 UTC in winter and 20:00 UTC in summer.
    """
    out = np.zeros(len(master), dtype=np.int64)
    for ix, instrument in enumerate(master):
        moment = instrument.expires_at
        if moment is not None:
            out[ix] = int(moment.timestamp()) * 1_000_000_000
    return out


@dataclass(frozen=True, slots=True)
class InstrumentTerms:
    """Static inputs of valuation per instrument, each shape (M,).

    ``implied_vol`` is the per-instrument implied volatility of options, from
    the master's ``volatility`` column. ``rate`` is the risk-free rate of the
    instrument's currency. ``dividend_yield`` is the continuous dividend yield
    that values an option: its underlying's (0 for other instruments).
    ``is_fx_pair`` marks FX pairs and ``pair_base_ix``
    their base currency (the quote currency is ``currency_ix``); it is -1 for
    other instruments and for a base outside ``currencies``. ``is_equity_risk``
    marks what an equity stress shock moves: equities, equity-index futures,
    and options through their underlying.
    """

    multiplier: F64Array1D
    currency_ix: I64Array1D
    is_fx_pair: BoolArray1D
    pair_base_ix: I64Array1D
    is_margined: BoolArray1D
    is_option: BoolArray1D
    underlying_ix: I64Array1D
    strike: F64Array1D
    expiry_ns: I64Array1D
    is_call: BoolArray1D
    implied_vol: F64Array1D
    rate: F64Array1D
    dividend_yield: F64Array1D
    is_equity_risk: BoolArray1D

    @classmethod
    def from_master(
        cls, master: InstrumentMaster, currencies: Sequence[str], rates: dict[str, float]
    ) -> InstrumentTerms:
        """Build the terms; ``rates`` maps currency to its risk-free rate."""
        currency_index = {c: i for i, c in enumerate(currencies)}
        kinds = [i.type for i in master]
        is_option = np.array([k is InstrumentType.OPTION for k in kinds])
        return cls(
            multiplier=master.multiplier.copy(),
            currency_ix=np.array([currency_index[i.currency] for i in master], dtype=np.int64),
            is_fx_pair=np.array([k is InstrumentType.FX for k in kinds]),
            pair_base_ix=np.array(
                [currency_index.get(i.base_currency or "", -1) for i in master], dtype=np.int64
            ),
            is_margined=np.array([k in (InstrumentType.FUTURE, InstrumentType.FX) for k in kinds]),
            is_option=is_option,
            underlying_ix=master.underlying_ix.copy(),
            strike=np.array([float(i.strike) if i.strike is not None else np.nan for i in master]),
            expiry_ns=expiry_ns(master),
            is_call=np.array(
                [i.option_type is not None and i.option_type.value == "C" for i in master]
            ),
            implied_vol=master.volatility.copy(),
            rate=np.array([rates.get(i.currency, 0.0) for i in master]),
            dividend_yield=np.where(
                is_option, master.dividend_yield[master.underlying_ix], 0.0
            ).astype(np.float64),
            is_equity_risk=np.array(
                [
                    k is InstrumentType.EQUITY
                    or k is InstrumentType.OPTION
                    or (k is InstrumentType.FUTURE and i.sector == "equity_index")
                    for k, i in zip(kinds, master, strict=True)
                ]
            ),
        )


class InstrumentMarks:
    """Mark, unit greeks and status per instrument; arrays of shape (M,)."""

    def __init__(self, m: int) -> None:
        self.mark = np.full(m, np.nan)
        self.underlying_price = np.full(m, np.nan)
        self.delta = np.ones(m)
        self.gamma = np.zeros(m)
        self.vega = np.zeros(m)
        self.theta = np.zeros(m)
        self.rho = np.zeros(m)
        self.status = np.full(m, Status.UNPRICED, dtype=np.uint8)

    def copy(self) -> InstrumentMarks:
        """An independent copy of every array."""
        other = InstrumentMarks(0)
        for name in ("mark", "underlying_price", "delta", "gamma", "vega", "theta", "rho"):
            setattr(other, name, getattr(self, name).copy())
        other.status = self.status.copy()
        return other

    def moved_since(self, before: InstrumentMarks) -> I64Array1D:
        """Instruments whose mark, underlying price, greeks or status differ from ``before``.

        Returns
        -------
        ndarray, shape (I,), int64
            Sorted rows; NaN equals NaN (an instrument without a price stays unpriced).
        """
        moved = self.status != before.status
        for name in ("mark", "underlying_price", "delta", "gamma", "vega", "theta", "rho"):
            now, then = getattr(self, name), getattr(before, name)
            moved |= (now != then) & ~(np.isnan(now) & np.isnan(then))
        return np.flatnonzero(moved).astype(np.int64)

    def update(
        self,
        terms: InstrumentTerms,
        ix: I64Array1D,
        mid: F64Array1D,
        is_stale: BoolArray1D,
        now_ns: int,
        *,
        vol_multiplier: float = 1.0,
    ) -> None:
        """Recompute the instruments ``ix`` from mids (shape (M,)) at ``now_ns``.

        Options are priced off their underlying's mid and take its status.
        """
        is_option = terms.is_option[ix]
        plain = ix[~is_option]
        self.mark[plain] = mid[plain]
        self.underlying_price[plain] = mid[plain]
        self.status[plain] = _status(mid[plain], is_stale[plain])
        options = ix[is_option]
        if options.size == 0:
            return
        under = terms.underlying_ix[options]
        spot = mid[under]
        t_years = (terms.expiry_ns[options] - now_ns) / NS_PER_YEAR
        values = black_scholes(
            spot,
            terms.strike[options],
            t_years,
            terms.implied_vol[options] * vol_multiplier,
            terms.rate[options],
            terms.is_call[options],
            dividend_yield=terms.dividend_yield[options],
        )
        self.mark[options] = values.price
        self.underlying_price[options] = spot
        self.delta[options] = values.delta
        self.gamma[options] = values.gamma
        self.vega[options] = values.vega
        self.theta[options] = values.theta
        self.rho[options] = values.rho
        self.status[options] = _status(spot, is_stale[under])


def _status(price: F64Array1D, is_stale: BoolArray1D) -> U8Array1D:
    return np.where(
        np.isnan(price), Status.UNPRICED, np.where(is_stale, Status.STALE, Status.OK)
    ).astype(np.uint8)


SUM_VECTORS = (
    "mark",
    "delta_exposure",
    "gamma",
    "vega",
    "theta",
    "rho",
    "abs_delta_exposure",
    "prev_mark",
    "priced",
    "unpriced",
    "stale",
    "constant",
)
"""Columns of ``sum_vectors``: per-unit values per instrument, 0 where unpriced,
and a constant 1 for the sums that do not depend on prices."""

_V = {name: i for i, name in enumerate(SUM_VECTORS)}


def sum_vectors(
    marks: InstrumentMarks, prev_mark: F64Array1D, rows: I64Array1D | None = None
) -> F64Array2D:
    """Per-unit inputs of the account sums, one row per instrument.

    Parameters
    ----------
    marks : InstrumentMarks
        Current marks and unit greeks, arrays of shape (M,).
    prev_mark : ndarray, shape (M,), float64
        Previous-close marks.
    rows : ndarray, shape (R,), int64, optional
        Compute only these instruments (all when None).

    Returns
    -------
    ndarray, shape (R or M, len(SUM_VECTORS)), float64
        ``mark``; ``delta_exposure = delta x S`` and its absolute value;
        ``gamma = gamma x S^2 x 0.01``; ``vega``, ``theta``, ``rho`` per unit;
        ``prev_mark``; the 0/1 flags ``priced``, ``unpriced``, ``stale``; and
        ``constant`` (1 everywhere).
        Every price-based column is 0 where the instrument is unpriced, so an
        unpriced position adds nothing to the sums.
    """
    pick = slice(None) if rows is None else rows
    status = marks.status[pick]
    priced = status != Status.UNPRICED
    under = marks.underlying_price[pick]
    delta = marks.delta[pick]
    out = np.zeros((status.shape[0], len(SUM_VECTORS)))
    out[:, _V["mark"]] = marks.mark[pick]
    out[:, _V["delta_exposure"]] = delta * under
    out[:, _V["gamma"]] = marks.gamma[pick] * under * under * 0.01
    out[:, _V["vega"]] = marks.vega[pick]
    out[:, _V["theta"]] = marks.theta[pick]
    out[:, _V["rho"]] = marks.rho[pick]
    out[:, _V["abs_delta_exposure"]] = np.abs(delta) * under
    out[:, _V["prev_mark"]] = np.nan_to_num(prev_mark[pick])
    out[~priced, : _V["priced"]] = 0.0
    out[:, _V["priced"]] = priced
    out[:, _V["unpriced"]] = ~priced
    out[:, _V["stale"]] = status == Status.STALE
    out[:, _V["constant"]] = 1.0
    return out


@dataclass(frozen=True, slots=True)
class PositionValues:
    """Values of some positions in their instrument's currency, each shape (S,)."""

    mark: F64Array1D
    market_value: F64Array1D
    unrealised_pnl: F64Array1D
    day_pnl: F64Array1D
    exposure: F64Array1D
    delta: F64Array1D
    gamma: F64Array1D
    vega: F64Array1D
    theta: F64Array1D
    rho: F64Array1D
    status: U8Array1D


def position_values(
    instrument: I64Array1D,
    quantity: F64Array1D,
    avg_cost: F64Array1D,
    day_open_quantity: F64Array1D,
    day_trade_value: F64Array1D,
    terms: InstrumentTerms,
    marks: InstrumentMarks,
    prev_mark: F64Array1D,
) -> PositionValues:
    """Value positions from their fields (each shape (S,)), as the module docstring defines.

    NaN where the price is missing; ``status`` is the price's status.
    """
    m = terms.multiplier[instrument]
    mark = marks.mark[instrument]
    qm = quantity * m
    unrealised = qm * (mark - avg_cost)
    under = marks.underlying_price[instrument]
    unit_delta = marks.delta[instrument]
    return PositionValues(
        mark=mark,
        market_value=np.where(terms.is_margined[instrument], unrealised, qm * mark),
        unrealised_pnl=unrealised,
        day_pnl=(quantity * mark - day_open_quantity * prev_mark[instrument] - day_trade_value) * m,
        exposure=qm * unit_delta * under,
        delta=qm * unit_delta,
        gamma=qm * marks.gamma[instrument] * under * under * 0.01,
        vega=qm * marks.vega[instrument],
        theta=qm * marks.theta[instrument],
        rho=qm * marks.rho[instrument],
        status=marks.status[instrument],
    )
