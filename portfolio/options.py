"""Vectorised Black-Scholes-Merton prices and greeks for European options.

Dimensions: O = options. The underlying pays a continuous dividend yield
``q`` (Merton's extension: the forward is ``S e^{(r - q) T}``). American-style
listed equity options are valued as European, which leaves out their
early-exercise premium (small for calls at these yields and for puts at
these rates).

Units: ``vega`` per 1 volatility point (0.01), ``theta`` per calendar day,
``rho`` per 1% (0.01) change in the rate. ``delta`` and ``gamma`` are per
unit of the underlying. ``theta`` is the analytic rate ``dV/dt`` (``t``
calendar time, so ``-dV/dT`` for time to expiry ``T``) divided by
``DAYS_PER_YEAR``: the instantaneous rate of decay expressed per calendar
day, not the difference between today's value and tomorrow's (which also
carries the curvature of the decay, large in the last days of an option).

NaN policy: NaN in ``spot`` (no underlying price) gives NaN outputs. At or
after expiry (``t_years <= 0``) the option is worth its intrinsic value,
delta is 1 / 0 (call in / out of the money; -1 / 0 for puts) and the other
greeks are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from pricing.errors import ShapeError
from pricing.types import BoolArray1D, F64Array1D

__all__ = ["DAYS_PER_YEAR", "OptionValues", "black_scholes"]

DAYS_PER_YEAR = 365.0
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


@dataclass(frozen=True, slots=True)
class OptionValues:
    """Price and greeks per option, each shape (O,), float64."""

    price: F64Array1D
    delta: F64Array1D
    gamma: F64Array1D
    vega: F64Array1D
    theta: F64Array1D
    rho: F64Array1D


def black_scholes(
    spot: F64Array1D,
    strike: F64Array1D,
    t_years: F64Array1D,
    vol: F64Array1D,
    rate: F64Array1D,
    is_call: BoolArray1D,
    *,
    dividend_yield: F64Array1D,
) -> OptionValues:
    """Price European options and their greeks (Black-Scholes-Merton).

    Parameters
    ----------
    spot, strike : ndarray, shape (O,), float64
        Underlying price and strike, in the same currency.
    t_years : ndarray, shape (O,), float64
        Time to expiry in years of ``DAYS_PER_YEAR`` calendar days.
    vol : ndarray, shape (O,), float64
        Annualised implied volatility (0.25 = 25%), positive.
    rate : ndarray, shape (O,), float64
        Continuously compounded risk-free rate of the option's currency.
    is_call : ndarray, shape (O,), bool
        True for calls, False for puts.
    dividend_yield : ndarray, shape (O,), float64
        Continuous dividend yield of the underlying (0.012 = 1.2% a year).

    Returns
    -------
    OptionValues
        Arrays of shape (O,).
    """
    s = np.asarray(spot, dtype=np.float64)
    k = np.asarray(strike, dtype=np.float64)
    t = np.asarray(t_years, dtype=np.float64)
    sigma = np.asarray(vol, dtype=np.float64)
    r = np.asarray(rate, dtype=np.float64)
    call = np.asarray(is_call, dtype=np.bool_)
    q = np.asarray(dividend_yield, dtype=np.float64)
    for name, array in (
        ("strike", k),
        ("t_years", t),
        ("vol", sigma),
        ("rate", r),
        ("is_call", call),
        ("dividend_yield", q),
    ):
        if array.shape != s.shape:
            raise ShapeError(name, s.shape, array.shape)

    live = t > 0
    t_live = np.where(live, t, 1.0)  # placeholders keep the dead lanes finite
    sqrt_t = np.sqrt(t_live)
    sig_sqrt_t = sigma * sqrt_t
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = (np.log(s / k) + (r - q + 0.5 * sigma * sigma) * t_live) / sig_sqrt_t
    d2 = d1 - sig_sqrt_t
    discount = np.exp(-r * t_live)
    s_q = s * np.exp(-q * t_live)  # the spot less the dividends paid before expiry
    sign: F64Array1D = np.where(call, 1.0, -1.0).astype(np.float64)
    nd1 = ndtr(sign * d1)
    nd2 = ndtr(sign * d2)
    pdf_d1 = _INV_SQRT_2PI * np.exp(-0.5 * d1 * d1)

    price = sign * (s_q * nd1 - k * discount * nd2)
    delta = sign * (s_q / s) * nd1
    gamma = (s_q / s) * pdf_d1 / (s * sig_sqrt_t)
    vega = s_q * pdf_d1 * sqrt_t * 0.01
    theta_year = (
        -s_q * pdf_d1 * sigma / (2.0 * sqrt_t)
        - sign * r * k * discount * nd2
        + sign * q * s_q * nd1
    )
    theta = theta_year / DAYS_PER_YEAR
    rho = sign * k * t_live * discount * nd2 * 0.01

    # At or after expiry: intrinsic value, a step delta, no other greeks.
    intrinsic = np.maximum(sign * (s - k), 0.0)
    in_the_money = sign * (s - k) > 0
    zero = np.zeros_like(s)
    nan_spot = np.isnan(s)
    dead_delta = np.where(nan_spot, np.nan, np.where(in_the_money, sign, 0.0))
    dead_zero = np.where(nan_spot, np.nan, zero)
    return OptionValues(
        price=np.where(live, price, intrinsic),
        delta=np.where(live, delta, dead_delta),
        gamma=np.where(live, gamma, dead_zero),
        vega=np.where(live, vega, dead_zero),
        theta=np.where(live, theta, dead_zero),
        rho=np.where(live, rho, dead_zero),
    )
