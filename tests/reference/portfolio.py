"""Scalar reference twins of the portfolio kernels.

Dimensions: M = instruments, C = currencies, U = risk series, K = factors.

Slow and obvious on purpose: plain Python floats, ``math.erfc``, one loop per
option, position, account or sample. numpy is never used for arithmetic; the
instrument master is read row by row. The conventions, from the module
docstrings of ``portfolio``:

- Black-Scholes-Merton with the underlying's continuous dividend yield
  ``q``; ``vega`` per 1 vol point (0.01), ``theta`` per calendar day
  (``-dV/dT / 365``), ``rho`` per 1% (0.01). At or after expiry: intrinsic
  value, a step delta and zero greeks. NaN spot gives NaN everywhere.
- FX through USD: ``usd_per[c]`` from the pair against USD (inverted for
  USDxxx pairs); ``rate(a, b) = usd_per[a] / usd_per[b]``; exactly 1 from a
  currency to itself; a pair without a positive mid is NaN and unpriced.
- Per position, instrument currency, multiplier ``m`` included:
  ``unrealised = q (mark - avg_cost) m``; market value ``q mark m`` or, when
  margined, the unrealised P&L; ``day = (q mark - q_open prev_mark -
  day_trade_value) m``; ``exposure = q delta S m``; ``gamma = q gamma S^2 0.01
  m``; ``vega``, ``theta``, ``rho`` are ``q x unit greek x m``.
- Account totals in base currency, failing closed: a currency whose rate to
  the base is missing is left out entirely (its positions counted unpriced,
  its cash dropped); a position without a price keeps only its realised P&L
  and commission; a stale price or rate counts the position stale.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import statistics
from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass

from portfolio.types import PositionState
from pricing.instruments import InstrumentMaster

OK, STALE, UNPRICED = 0, 1, 2
DAYS_PER_YEAR = 365.0
NS_PER_YEAR = DAYS_PER_YEAR * 86_400 * 1_000_000_000
NAN = math.nan

# --- Black-Scholes ------------------------------------------------------------------


RefGreeks = namedtuple("RefGreeks", "price delta gamma vega theta rho")


def norm_cdf(x: float) -> float:
    # erfc keeps full relative precision in both tails.
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def norm_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def black_scholes_scalar(
    spot: float,
    strike: float,
    t_years: float,
    vol: float,
    rate: float,
    is_call: bool,
    *,
    dividend_yield: float = 0.0,
) -> RefGreeks:
    """Textbook Black-Scholes-Merton price and greeks of one European option (Hull, ch. 17)."""
    if math.isnan(spot):
        return RefGreeks(NAN, NAN, NAN, NAN, NAN, NAN)
    if t_years <= 0:
        if is_call:
            return RefGreeks(max(spot - strike, 0.0), 1.0 if spot > strike else 0.0, 0, 0, 0, 0)
        return RefGreeks(max(strike - spot, 0.0), -1.0 if spot < strike else 0.0, 0, 0, 0, 0)
    q = dividend_yield
    root_t = math.sqrt(t_years)
    d1 = (math.log(spot / strike) + (rate - q + 0.5 * vol * vol) * t_years) / (vol * root_t)
    d2 = d1 - vol * root_t
    discount = math.exp(-rate * t_years)
    carry = math.exp(-q * t_years)
    decay = -spot * carry * norm_pdf(d1) * vol / (2.0 * root_t)
    if is_call:
        price = spot * carry * norm_cdf(d1) - strike * discount * norm_cdf(d2)
        delta = carry * norm_cdf(d1)
        theta_per_year = (
            decay - rate * strike * discount * norm_cdf(d2) + q * spot * carry * norm_cdf(d1)
        )
        rho_per_unit = strike * t_years * discount * norm_cdf(d2)
    else:
        price = strike * discount * norm_cdf(-d2) - spot * carry * norm_cdf(-d1)
        delta = -carry * norm_cdf(-d1)  # = e^{-qT} (N(d1) - 1), without the cancellation
        theta_per_year = (
            decay + rate * strike * discount * norm_cdf(-d2) - q * spot * carry * norm_cdf(-d1)
        )
        rho_per_unit = -strike * t_years * discount * norm_cdf(-d2)
    return RefGreeks(
        price=price,
        delta=delta,
        gamma=carry * norm_pdf(d1) / (spot * vol * root_t),
        vega=spot * carry * norm_pdf(d1) * root_t * 0.01,
        theta=theta_per_year / DAYS_PER_YEAR,
        rho=rho_per_unit * 0.01,
    )


# --- FX ---------------------------------------------------------------------------------


def reference_usd_per(
    master: InstrumentMaster,
    mids: Sequence[float],
    stale: Sequence[bool],
    currencies: Sequence[str],
) -> dict[str, tuple[float, int]]:
    """USD per unit of each currency and its status, from the pairs against USD."""
    out: dict[str, tuple[float, int]] = {"USD": (1.0, OK)}
    for ix, instrument in enumerate(master):
        if instrument.type.value != "fx":
            continue
        mid = float(mids[ix])
        if instrument.currency == "USD" and instrument.base_currency in currencies:
            currency, usd = str(instrument.base_currency), mid  # EURUSD: USD per EUR
        elif instrument.base_currency == "USD" and instrument.currency in currencies:
            currency, usd = instrument.currency, (1.0 / mid if mid > 0 else NAN)  # USDJPY
        else:
            continue
        if not mid > 0:
            out[currency] = (NAN, UNPRICED)
        else:
            out[currency] = (usd, STALE if stale[ix] else OK)
    return out


def reference_rate(usd_per: dict[str, tuple[float, int]], a: str, b: str) -> tuple[float, int]:
    """Rate converting an amount in ``a`` into ``b``, and its status."""
    if a == b:
        return 1.0, OK
    usd_a, status_a = usd_per[a]
    usd_b, status_b = usd_per[b]
    return usd_a / usd_b, max(status_a, status_b)


# --- instruments and marks --------------------------------------------------------------


def new_york_close_ns(day: dt.date) -> int:
    """16:00 New York on ``day`` as UNIX ns, by the US daylight-saving rule itself.

    Daylight time (UTC-4) runs from the second Sunday of March to the first
    Sunday of November; standard time (UTC-5) otherwise. The switch is at
    02:00 local, long before a 16:00 close, so the date alone decides.
    """

    def sunday(month: int, n: int) -> dt.date:
        first = dt.date(day.year, month, 1)
        return first + dt.timedelta(days=(6 - first.weekday()) % 7 + 7 * (n - 1))

    offset_h = 4 if sunday(3, 2) <= day < sunday(11, 1) else 5
    return (calendar.timegm(day.timetuple()) + (16 + offset_h) * 3600) * 1_000_000_000


@dataclass(frozen=True, slots=True)
class RefInstrument:
    kind: str
    currency: str
    multiplier: float
    underlying: int
    strike: float
    expiry_ns: int
    is_call: bool
    vol: float
    rate: float
    is_equity_risk: bool
    pair_base: str | None = None  # XXX of an FX pair XXXYYY (YYY is ``currency``)
    dividend_yield: float = 0.0  # an option's: its underlying's

    @property
    def is_option(self) -> bool:
        return self.kind == "option"

    @property
    def is_margined(self) -> bool:
        return self.kind in ("future", "fx")


def reference_instruments(master: InstrumentMaster, rates: dict[str, float]) -> list[RefInstrument]:
    """Valuation terms of every instrument, read row by row from the master."""
    symbols = [i.symbol for i in master]
    out = []
    for i in master:
        kind = i.type.value
        # US listed options (OPRA) expire at the 16:00 New York close.
        expiry_ns = new_york_close_ns(i.expiry) if kind == "option" and i.expiry else 0
        out.append(
            RefInstrument(
                kind=kind,
                currency=i.currency,
                multiplier=float(i.multiplier),
                underlying=symbols.index(i.underlying) if i.underlying is not None else -1,
                strike=float(i.strike) if i.strike is not None else NAN,
                expiry_ns=expiry_ns,
                is_call=i.option_type is not None and i.option_type.value == "C",
                vol=i.volatility,
                rate=rates.get(i.currency, 0.0),
                is_equity_risk=kind in ("equity", "option")
                or (kind == "future" and i.sector == "equity_index"),
                pair_base=i.base_currency,
                dividend_yield=(
                    master[symbols.index(i.underlying)].dividend_yield
                    if i.underlying is not None
                    else 0.0
                ),
            )
        )
    return out


# Mark and unit greeks of one instrument.
RefMark = namedtuple("RefMark", "mark underlying_price delta gamma vega theta rho status")


def price_status(price: float, is_stale: bool) -> int:
    if math.isnan(price):
        return UNPRICED
    return STALE if is_stale else OK


def reference_mark(
    instruments: Sequence[RefInstrument],
    ix: int,
    mids: Sequence[float],
    stale: Sequence[bool],
    now_ns: int,
    *,
    vol_multiplier: float = 1.0,
) -> RefMark:
    """Mark and unit greeks of one instrument; options priced off the underlying's mid."""
    inst = instruments[ix]
    if not inst.is_option:
        price = float(mids[ix])
        return RefMark(price, price, 1.0, 0.0, 0.0, 0.0, 0.0, price_status(price, stale[ix]))
    spot = float(mids[inst.underlying])
    g = black_scholes_scalar(
        spot,
        inst.strike,
        (inst.expiry_ns - now_ns) / NS_PER_YEAR,
        inst.vol * vol_multiplier,
        inst.rate,
        inst.is_call,
        dividend_yield=inst.dividend_yield,
    )
    status = price_status(spot, stale[inst.underlying])
    return RefMark(g.price, spot, g.delta, g.gamma, g.vega, g.theta, g.rho, status)


def reference_prev_mark(
    instruments: Sequence[RefInstrument], ix: int, prev_close: Sequence[float], now_ns: int
) -> float:
    """The previous-close mark: the close, or the option's model price off its underlying's."""
    return reference_mark(instruments, ix, prev_close, [False] * len(instruments), now_ns).mark


# --- positions and accounts -------------------------------------------------------------


# Values of one position in its instrument's currency.
RefPositionValues = namedtuple(
    "RefPositionValues", "market_value unrealised_pnl day_pnl exposure gamma vega theta rho status"
)


def reference_position_values(
    inst: RefInstrument, state: PositionState, mark: RefMark, prev_mark: float
) -> RefPositionValues:
    """Values of one position in its instrument's currency (valuation.py docstring)."""
    q, m = state.quantity, inst.multiplier
    unrealised = q * (mark.mark - state.avg_cost) * m
    under = mark.underlying_price
    return RefPositionValues(
        market_value=unrealised if inst.is_margined else q * mark.mark * m,
        unrealised_pnl=unrealised,
        day_pnl=(q * mark.mark - state.day_open_quantity * prev_mark - state.day_trade_value) * m,
        exposure=q * mark.delta * under * m,
        gamma=q * mark.gamma * under * under * 0.01 * m,
        vega=q * mark.vega * m,
        theta=q * mark.theta * m,
        rho=q * mark.rho * m,
        status=mark.status,
    )


# Base currency, cash by currency, and (instrument_ix, PositionState) pairs.
RefAccount = namedtuple("RefAccount", "base cash positions")


# Totals by TOTAL_FIELDS name, status and counts.
RefTotals = namedtuple("RefTotals", "values status unpriced stale")


_SUMMED = ("market_value", "unrealised_pnl", "day_pnl", "gamma", "vega", "theta", "rho")


def reference_account_totals(
    account: RefAccount,
    instruments: Sequence[RefInstrument],
    usd_per: dict[str, tuple[float, int]],
    marks: Sequence[RefMark],
    prev_marks: Sequence[float],
    *,
    max_leverage: float,
) -> RefTotals:
    """Totals of one account in its base currency, failing closed (engine.py docstring)."""
    sums = dict.fromkeys((*_SUMMED, "realised_pnl", "commission", "gross", "net"), 0.0)
    unpriced = stale = 0
    status = OK
    for ix, state in account.positions:
        inst = instruments[ix]
        rate, fx_status = reference_rate(usd_per, inst.currency, account.base)
        status = max(status, fx_status)
        if fx_status == UNPRICED:
            unpriced += 1
            continue
        sums["realised_pnl"] += state.realised_pnl * rate
        sums["commission"] += state.commission * rate
        values = reference_position_values(inst, state, marks[ix], prev_marks[ix])
        if values.status == UNPRICED:
            unpriced += 1
            continue
        if values.status == STALE or fx_status == STALE:
            stale += 1
        for name in _SUMMED:
            sums[name] += getattr(values, name) * rate
        sums["gross"] += abs(values.exposure) * rate
        sums["net"] += values.exposure * rate
    cash = 0.0
    for currency, amount in account.cash.items():
        if amount == 0.0:
            continue
        rate, fx_status = reference_rate(usd_per, currency, account.base)
        status = max(status, fx_status)
        if fx_status != UNPRICED:
            cash += amount * rate
    if unpriced:
        status = UNPRICED
    elif stale:
        status = max(status, STALE)
    equity = cash + sums["market_value"]
    values = {
        "cash": cash,
        "market_value": sums["market_value"],
        "equity": equity,
        "unrealised_pnl": sums["unrealised_pnl"],
        "realised_pnl": sums["realised_pnl"],
        "commission": sums["commission"],
        "day_pnl": sums["day_pnl"],
        "total_pnl": sums["unrealised_pnl"] + sums["realised_pnl"] - sums["commission"],
        "gross_exposure": sums["gross"],
        "net_exposure": sums["net"],
        "leverage": sums["gross"] / equity if equity > 0 else NAN,
        "buying_power": max(equity * max_leverage - sums["gross"], 0.0),
        "delta": sums["net"],
        "gamma": sums["gamma"],
        "vega": sums["vega"],
        "theta": sums["theta"],
        "rho": sums["rho"],
    }
    return RefTotals(values, status, unpriced, stale)


# --- risk ------------------------------------------------------------------------------


def solve(matrix: list[list[float]], rhs: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting: x with ``matrix x = rhs``."""
    n = len(rhs)
    a = [[*row, b] for row, b in zip(matrix, rhs, strict=True)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(col + 1, n):
            factor = a[r][col] / a[col][col]
            for c in range(col, n + 1):
                a[r][c] -= factor * a[col][c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (a[r][n] - sum(a[r][c] * x[c] for c in range(r + 1, n))) / a[r][r]
    return x


class ReferenceFactorModel:
    """EWMA factor moments in nested lists; factors are equal-weighted group means.

    The raw sums decay by ``lam`` and add ``1 - lam`` times each outer
    product; ``weight`` sums those weights (``1 - lam^n`` from zero, 1 after a
    seed), and every estimate is a raw sum divided by it.
    """

    def __init__(self, group_of: Sequence[int], *, lam: float, ridge: float = 0.0) -> None:
        # ``ridge`` is added to F's diagonal before solving, as risk.py does
        # (1e-12) to keep F invertible; 0 is the textbook definition.
        self.ridge = ridge
        self.group_of = [int(g) for g in group_of]
        self.u = len(self.group_of)
        self.k = max(self.group_of) + 1
        self.lam = lam
        self.factor_cov = [[0.0] * self.k for _ in range(self.k)]
        self.cross = [[0.0] * self.k for _ in range(self.u)]
        self.variance = [0.0] * self.u
        self.weight = 0.0
        self.last: list[float] | None = None

    def factors(self, r: Sequence[float]) -> list[float]:
        out = []
        for k in range(self.k):
            members = [r[u] for u in range(self.u) if self.group_of[u] == k]
            out.append(sum(members) / len(members))
        return out

    def observe(self, levels: Sequence[float]) -> None:
        """Log returns against the previous levels; a missing level gives a zero return."""
        levels = [float(x) for x in levels]
        last, self.last = self.last, levels
        if last is None:
            return
        returns = []
        for now, before in zip(levels, last, strict=True):
            ok = not (math.isnan(now) or math.isnan(before)) and now > 0 and before > 0
            returns.append(math.log(now / before) if ok else 0.0)
        self.update(returns)

    def update(self, r: Sequence[float]) -> None:
        lam, w = self.lam, 1.0 - self.lam
        f = self.factors(r)
        for a in range(self.k):
            for b in range(self.k):
                self.factor_cov[a][b] = lam * self.factor_cov[a][b] + w * f[a] * f[b]
        for u in range(self.u):
            for k in range(self.k):
                self.cross[u][k] = lam * self.cross[u][k] + w * r[u] * f[k]
            self.variance[u] = lam * self.variance[u] + w * r[u] * r[u]
        self.weight = lam * self.weight + w

    def seed(self, returns: Sequence[Sequence[float]]) -> None:
        """Plain averages of the outer products of a history; weight 1."""
        t = len(returns)
        self.factor_cov = [[0.0] * self.k for _ in range(self.k)]
        self.cross = [[0.0] * self.k for _ in range(self.u)]
        self.variance = [0.0] * self.u
        for r in returns:
            f = self.factors(r)
            for a in range(self.k):
                for b in range(self.k):
                    self.factor_cov[a][b] += f[a] * f[b] / t
            for u in range(self.u):
                for k in range(self.k):
                    self.cross[u][k] += r[u] * f[k] / t
                self.variance[u] += r[u] * r[u] / t
        self.weight = 1.0

    def estimated_factor_cov(self) -> list[list[float]]:
        return [[x / self.weight for x in row] for row in self.factor_cov]

    def loadings(self) -> list[list[float]]:
        # B = C F^-1: each row b solves F b = c (F is symmetric).
        ridged = [
            [f + (self.ridge if i == j else 0.0) for j, f in enumerate(row)]
            for i, row in enumerate(self.estimated_factor_cov())
        ]
        return [solve(ridged, [c / self.weight for c in row]) for row in self.cross]

    def systematic(self, b: list[list[float]], u: int, v: int) -> float:
        """``(B F B')[u][v]``."""
        f = self.estimated_factor_cov()
        k = range(self.k)
        return sum(b[u][i] * f[i][j] * b[v][j] for i in k for j in k)

    def specific_variance(self) -> list[float]:
        b = self.loadings()
        return [
            max(self.variance[u] / self.weight - self.systematic(b, u, u), 0.0)
            for u in range(self.u)
        ]

    def covariance(self) -> list[list[float]]:
        """``B F B' + D`` element by element."""
        b, d = self.loadings(), self.specific_variance()
        return [
            [self.systematic(b, u, v) + (d[u] if u == v else 0.0) for v in range(self.u)]
            for u in range(self.u)
        ]


def parametric_var_scalar(
    weights: Sequence[float],
    covariance: Sequence[Sequence[float]],
    *,
    confidence: float,
    horizon_scale: float,
) -> float:
    """``z_c sqrt(w' Sigma w x horizon_scale)``."""
    n = len(weights)
    variance = sum(weights[i] * covariance[i][j] * weights[j] for i in range(n) for j in range(n))
    z = statistics.NormalDist().inv_cdf(confidence)
    return z * math.sqrt(max(variance, 0.0) * horizon_scale)


def quantile_linear(values: Sequence[float], p: float) -> float:
    """The ``p`` quantile with linear interpolation between order statistics."""
    ordered = sorted(values)
    h = (len(ordered) - 1) * p
    lo = math.floor(h)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (h - lo) * (ordered[hi] - ordered[lo])


def historical_var_scalar(
    entries: Sequence[tuple[int, float]],
    scenarios: Sequence[Sequence[float]],
    *,
    confidence: float,
    return_scale: float,
    options: Sequence[tuple[int, float]] = (),
    option_pnl: Sequence[Sequence[float]] = (),
) -> float:
    """Loss at the ``1 - c`` quantile of one account's scenario P&L.

    ``entries`` are (series, exposure): each moves by the series' simple
    return ``exp(r x return_scale) - 1``. ``options`` are (option row, units)
    whose P&L in scenario ``s`` is ``units x option_pnl[row][s]``.
    """
    pnl = []
    for s, scenario in enumerate(scenarios):
        total = 0.0
        for series, value in entries:
            total += value * (math.exp(scenario[series] * return_scale) - 1.0)
        for row, units in options:
            total += units * option_pnl[row][s]
        pnl.append(total)
    return -quantile_linear(pnl, 1.0 - confidence)


def option_scenario_pnl_scalar(
    spot: float,
    strike: float,
    t_years: float,
    vol: float,
    rate: float,
    dividend_yield: float,
    is_call: bool,
    log_return: float,
) -> float:
    """``V(S e^r) - V(S)`` of one option, by the textbook formula."""
    after = black_scholes_scalar(
        spot * math.exp(log_return),
        strike,
        t_years,
        vol,
        rate,
        is_call,
        dividend_yield=dividend_yield,
    )
    before = black_scholes_scalar(
        spot, strike, t_years, vol, rate, is_call, dividend_yield=dividend_yield
    )
    return after.price - before.price


# --- stress -----------------------------------------------------------------------------


RefStressPosition = namedtuple(
    "RefStressPosition", "instrument quantity_x_multiplier avg_cost fx_to_base is_foreign"
)


def shocked_mid(inst: RefInstrument, mid: float, base: str, equity: float, fx: float) -> float:
    """A mid under the scenario, seen from an account whose base currency is ``base``.

    Equity risk moves by ``equity``. Every currency other than ``base`` moves
    by ``fx`` against it, so an FX pair XXXYYY (the value of XXX in YYY) moves
    by (1 + fx if XXX is not the base) / (1 + fx if YYY is not the base).
    """
    if inst.is_equity_risk and not inst.is_option:
        return mid * (1.0 + equity)
    if inst.kind == "fx":
        move_base = 1.0 + fx if inst.pair_base != base else 1.0
        move_quote = 1.0 + fx if inst.currency != base else 1.0
        return mid * move_base / move_quote
    return mid


def reference_stress_pnl(
    positions: Sequence[RefStressPosition],
    cash_foreign: float,
    instruments: Sequence[RefInstrument],
    mids: Sequence[float],
    now_ns: int,
    *,
    base: str,
    equity: float,
    vol: float,
    fx: float,
) -> float:
    """One account's P&L under one scenario, every position fully revalued."""
    never_stale = [False] * len(instruments)
    shocked = [
        shocked_mid(inst, float(mid), base, equity, fx)
        for inst, mid in zip(instruments, mids, strict=True)
    ]
    pnl = 0.0
    for p in positions:
        inst = instruments[p.instrument]
        before = reference_mark(instruments, p.instrument, mids, never_stale, now_ns).mark
        after = reference_mark(
            instruments, p.instrument, shocked, never_stale, now_ns, vol_multiplier=1.0 + vol
        ).mark
        pnl += p.quantity_x_multiplier * (after - before) * p.fx_to_base
        if p.is_foreign:
            qm = p.quantity_x_multiplier
            value_after = qm * (after - p.avg_cost) if inst.is_margined else qm * after
            pnl += value_after * p.fx_to_base * fx
    return pnl + cash_foreign * fx
