"""Valuation kernels: marks per instrument, values per position, totals per account.

Dimensions: M = instruments, P = positions, N = accounts, C = currencies,
S = a subset of positions, F = summed total fields.

Per instrument (``InstrumentMarks``): the mark (the mid, or the last trade;
for options the Black-Scholes price off the underlying's live mark), the
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
status of the FX rate to the account's base. A position whose price is
missing contributes nothing to the price-based sums (realised P&L and
commissions are still known), and the account's ``status`` and counts say
so. Nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from portfolio.options import DAYS_PER_YEAR, black_scholes
from portfolio.types import Status
from pricing.instruments import InstrumentMaster, InstrumentType
from pricing.types import BoolArray1D, F64Array1D, F64Array2D, I64Array1D, U8Array1D

__all__ = ["SUM_FIELDS", "InstrumentMarks", "InstrumentTerms", "PositionValues", "expiry_ns"]

NS_PER_YEAR = DAYS_PER_YEAR * 86_400 * 1_000_000_000
# Options expire at 16:00 New York time, taken as 21:00 UTC.
_EXPIRY_UTC_HOUR = 21

SUM_FIELDS = (
    "market_value",
    "unrealised_pnl",
    "realised_pnl",
    "commission",
    "day_pnl",
    "gross_exposure",
    "net_exposure",
    "gamma",
    "vega",
    "theta",
    "rho",
)
"""Account totals that are sums of position contributions, in this column order."""

_COLUMN = {name: i for i, name in enumerate(SUM_FIELDS)}


def expiry_ns(master: InstrumentMaster) -> I64Array1D:
    """Expiry time per instrument as UNIX ns (0 for instruments without one), shape (M,)."""
    import datetime as dt

    out = np.zeros(len(master), dtype=np.int64)
    for ix, instrument in enumerate(master):
        if instrument.expiry is not None:
            moment = dt.datetime.combine(
                instrument.expiry, dt.time(_EXPIRY_UTC_HOUR), tzinfo=dt.UTC
            )
            out[ix] = int(moment.timestamp()) * 1_000_000_000
    return out


@dataclass(frozen=True, slots=True)
class InstrumentTerms:
    """Static inputs of valuation per instrument, each shape (M,).

    ``implied_vol`` is the per-instrument implied volatility of options, from
    the master's ``volatility`` column. ``rate`` is the risk-free rate of the
    instrument's currency. ``is_equity_risk`` marks what an equity stress
    shock moves: equities, equity-index futures, and options through their
    underlying.
    """

    multiplier: F64Array1D
    currency_ix: I64Array1D
    is_margined: BoolArray1D
    is_option: BoolArray1D
    underlying_ix: I64Array1D
    strike: F64Array1D
    expiry_ns: I64Array1D
    is_call: BoolArray1D
    implied_vol: F64Array1D
    rate: F64Array1D
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


@dataclass(slots=True)
class PositionInputs:
    """What a position's values depend on, gathered for a subset S, each shape (S,)."""

    instrument: I64Array1D
    quantity: F64Array1D
    avg_cost: F64Array1D
    day_open_quantity: F64Array1D
    day_trade_value: F64Array1D


class PositionValues:
    """Values per position in the instrument's currency; arrays of shape (P,)."""

    FIELDS = (
        "market_value",
        "unrealised_pnl",
        "day_pnl",
        "exposure",
        "gamma",
        "vega",
        "theta",
        "rho",
    )

    def __init__(self, p: int) -> None:
        self.market_value: F64Array1D = np.full(p, np.nan)
        self.unrealised_pnl: F64Array1D = np.full(p, np.nan)
        self.day_pnl: F64Array1D = np.full(p, np.nan)
        self.exposure: F64Array1D = np.full(p, np.nan)
        self.gamma: F64Array1D = np.full(p, np.nan)
        self.vega: F64Array1D = np.full(p, np.nan)
        self.theta: F64Array1D = np.full(p, np.nan)
        self.rho: F64Array1D = np.full(p, np.nan)
        self.status: U8Array1D = np.full(p, Status.UNPRICED, dtype=np.uint8)

    def resize(self, p: int) -> None:
        """Grow to ``p`` positions; new rows are unpriced until valued."""
        for name in (*self.FIELDS, "status"):
            old = getattr(self, name)
            if old.shape[0] >= p:
                continue
            grown = np.full(
                p, Status.UNPRICED if old.dtype == np.uint8 else np.nan, dtype=old.dtype
            )
            grown[: old.shape[0]] = old
            setattr(self, name, grown)

    def update(
        self,
        s: I64Array1D,
        inputs: PositionInputs,
        terms: InstrumentTerms,
        marks: InstrumentMarks,
        prev_mark: F64Array1D,
    ) -> None:
        """Recompute the positions ``s`` (shape (S,)) from ``inputs``."""
        ix = inputs.instrument
        q = inputs.quantity
        m = terms.multiplier[ix]
        mark = marks.mark[ix]
        qm = q * m
        unrealised = qm * (mark - inputs.avg_cost)
        self.unrealised_pnl[s] = unrealised
        self.market_value[s] = np.where(terms.is_margined[ix], unrealised, qm * mark)
        self.day_pnl[s] = (
            q * mark - inputs.day_open_quantity * prev_mark[ix] - inputs.day_trade_value
        ) * m
        under = marks.underlying_price[ix]
        self.exposure[s] = qm * marks.delta[ix] * under
        self.gamma[s] = qm * marks.gamma[ix] * under * under * 0.01
        self.vega[s] = qm * marks.vega[ix]
        self.theta[s] = qm * marks.theta[ix]
        self.rho[s] = qm * marks.rho[ix]
        self.status[s] = marks.status[ix]

    def contributions(
        self, s: I64Array1D, realised_pnl: F64Array1D, commission: F64Array1D
    ) -> F64Array2D:
        """Each position's part of the sums, in the instrument's currency.

        Parameters
        ----------
        s : ndarray, shape (S,), int64
            Position rows.
        realised_pnl, commission : ndarray, shape (S,), float64
            Those position fields for the rows ``s``.

        Returns
        -------
        ndarray, shape (S, F + 2), float64
            The ``SUM_FIELDS`` in order, price-based ones 0 where the price is
            missing, then two flags: 1.0 if the price is missing, 1.0 if stale.
        """
        status = self.status[s]
        priced = status != Status.UNPRICED
        exposure = self.exposure[s]
        out = np.empty((s.shape[0], len(SUM_FIELDS) + 2))
        out[:, _COLUMN["market_value"]] = self.market_value[s]
        out[:, _COLUMN["unrealised_pnl"]] = self.unrealised_pnl[s]
        out[:, _COLUMN["day_pnl"]] = self.day_pnl[s]
        out[:, _COLUMN["gross_exposure"]] = np.abs(exposure)
        out[:, _COLUMN["net_exposure"]] = exposure
        out[:, _COLUMN["gamma"]] = self.gamma[s]
        out[:, _COLUMN["vega"]] = self.vega[s]
        out[:, _COLUMN["theta"]] = self.theta[s]
        out[:, _COLUMN["rho"]] = self.rho[s]
        # NaN x 0 is NaN, so the price-based values of unpriced rows are replaced.
        out[~priced, : len(SUM_FIELDS)] = 0.0
        out[:, _COLUMN["realised_pnl"]] = realised_pnl
        out[:, _COLUMN["commission"]] = commission
        out[:, -2] = ~priced
        out[:, -1] = status == Status.STALE
        return out
