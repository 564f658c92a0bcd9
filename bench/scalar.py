"""The scalar baseline: the obvious Python loop that revalues positions one by one.

It does per position what the vectorised kernels do for all of them: mark
(Black-Scholes-Merton with ``math.erf`` for options), market value, unrealised and
day P&L, exposure and greeks, conversion to the account's base through USD,
and the account sums. The benchmark times it on a sample and scales the time
per position to the whole book.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from bench.universe import Universe

__all__ = ["ScalarInputs", "sample_positions", "scalar_revalue"]

_NS_PER_YEAR = 365.0 * 86_400 * 1e9


def _ncdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _black_scholes(
    s: float, k: float, t: float, vol: float, r: float, q: float, call: bool
) -> tuple[float, ...]:
    sign = 1.0 if call else -1.0
    if t <= 0:
        return max(sign * (s - k), 0.0), (sign if sign * (s - k) > 0 else 0.0), 0.0, 0.0, 0.0, 0.0
    sq = math.sqrt(t)
    d1 = (math.log(s / k) + (r - q + 0.5 * vol * vol) * t) / (vol * sq)
    d2 = d1 - vol * sq
    disc = math.exp(-r * t)
    carry = math.exp(-q * t)
    pdf = math.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi)
    n1, n2 = _ncdf(sign * d1), _ncdf(sign * d2)
    price = sign * (s * carry * n1 - k * disc * n2)
    delta = sign * carry * n1
    gamma = carry * pdf / (s * vol * sq)
    vega = s * carry * pdf * sq * 0.01
    theta = (-s * carry * pdf * vol / (2 * sq) - sign * r * k * disc * n2) / 365.0
    theta += sign * q * s * carry * n1 / 365.0
    rho = sign * k * t * disc * n2 * 0.01
    return price, delta, gamma, vega, theta, rho


class ScalarInputs:
    """Plain Python lists of what the loop reads, for a sample of positions.

    Built before the timing starts, so the loop is measured alone.
    """

    def __init__(self, u: Universe, sample: Sequence[int]) -> None:
        book, terms = u.positions, u.terms
        rows = np.asarray(sample, dtype=np.int64)
        self.account = book.pos_account[rows].tolist()
        self.instrument = book.pos_instrument[rows].tolist()
        self.quantity = book.column("quantity")[rows].tolist()
        self.cost = book.column("avg_cost")[rows].tolist()
        self.day_open = book.column("day_open_quantity")[rows].tolist()
        self.day_value = book.column("day_trade_value")[rows].tolist()
        self.base = book.base_ix.tolist()
        self.mid = u.prices.mid().tolist()
        self.prev = u.prices.prev_close.tolist()
        self.usd_per = u.fx.usd_per(u.prices.mid(), u.prices.is_stale)[0].tolist()
        self.multiplier = terms.multiplier.tolist()
        self.currency = terms.currency_ix.tolist()
        self.margined = terms.is_margined.tolist()
        self.option = terms.is_option.tolist()
        self.underlying = terms.underlying_ix.tolist()
        self.strike = terms.strike.tolist()
        self.expiry = terms.expiry_ns.tolist()
        self.call = terms.is_call.tolist()
        self.vol = terms.implied_vol.tolist()
        self.rate = terms.rate.tolist()
        self.dividend_yield = terms.dividend_yield.tolist()
        self.now = u.now_ns


def scalar_revalue(x: ScalarInputs) -> dict[int, list[float]]:
    """Revalue the sampled positions one by one; return base-currency sums per account."""
    sums: dict[int, list[float]] = defaultdict(lambda: [0.0] * 9)
    for k, i in enumerate(x.instrument):
        q, m = x.quantity[k], x.multiplier[i]
        if x.option[i]:
            u = x.underlying[i]
            s = x.mid[u]
            t = (x.expiry[i] - x.now) / _NS_PER_YEAR
            r, y = x.rate[i], x.dividend_yield[i]
            mark, delta, gamma, vega, theta, rho = _black_scholes(
                s, x.strike[i], t, x.vol[i], r, y, x.call[i]
            )
            prev_mark = _black_scholes(x.prev[u], x.strike[i], t, x.vol[i], r, y, x.call[i])[0]
        else:
            s = mark = x.mid[i]
            prev_mark = x.prev[i]
            delta, gamma, vega, theta, rho = 1.0, 0.0, 0.0, 0.0, 0.0
        unrealised = q * m * (mark - x.cost[k])
        market_value = unrealised if x.margined[i] else q * m * mark
        day = (q * mark - x.day_open[k] * prev_mark - x.day_value[k]) * m
        exposure = q * m * delta * s
        account = x.account[k]
        fx = x.usd_per[x.currency[i]] / x.usd_per[x.base[account]]
        row = sums[account]
        for j, value in enumerate(
            (
                market_value,
                unrealised,
                day,
                abs(exposure),
                exposure,
                q * m * gamma * s * s * 0.01,
                q * m * vega,
                q * m * theta,
                q * m * rho,
            )
        ):
            row[j] += value * fx
    return sums


def sample_positions(u: Universe, size: int, rng: np.random.Generator) -> list[int]:
    """A uniform random sample of position rows (options in proportion)."""
    picked = rng.choice(u.positions.size_p, size=min(size, u.positions.size_p), replace=False)
    return sorted(picked.tolist())
