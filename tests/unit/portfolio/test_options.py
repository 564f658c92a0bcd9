"""Black-Scholes-Merton prices and greeks: the scalar twin, parity, finite differences, Hull.

Units under test (portfolio/options.py): vega per vol point (0.01), theta per
calendar day (-dV/dT / 365), rho per 1% (0.01). Every property is checked
with a continuous dividend yield drawn next to the other inputs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfolio.options import black_scholes
from pricing.errors import ShapeError
from tests.reference.portfolio import black_scholes_scalar

GREEKS = ("price", "delta", "gamma", "vega", "theta", "rho")
DAY = 1.0 / 365.0

option_inputs = st.tuples(
    st.floats(1.0, 1000.0),  # spot
    st.floats(0.5, 2.0),  # strike / spot
    st.floats(DAY, 3.0),  # years to expiry
    st.floats(0.05, 1.5),  # vol
    st.floats(-0.01, 0.1),  # rate
    st.booleans(),  # is_call
    st.floats(0.0, 0.08),  # dividend yield
)


def price_one(
    spot: float, strike: float, t: float, vol: float, rate: float, call: bool, q: float = 0.0
):
    return black_scholes(
        np.array([spot]),
        np.array([strike]),
        np.array([t]),
        np.array([vol]),
        np.array([rate]),
        np.array([call]),
        dividend_yield=np.array([q]),
    )


def price_of(
    spot: float, strike: float, t: float, vol: float, rate: float, call: bool, q: float = 0.0
) -> float:
    return float(price_one(spot, strike, t, vol, rate, call, q).price[0])


@settings(max_examples=60, deadline=None, database=None)
@given(st.lists(option_inputs, min_size=1, max_size=8))
def test_black_scholes_matches_scalar_twin(rows) -> None:
    spot, ratio, t, vol, rate, call, q = (np.array(column) for column in zip(*rows, strict=True))
    strike = spot * ratio

    values = black_scholes(spot, strike, t, vol, rate, call, dividend_yield=q)

    for o, (s, _, t_o, v, r, c, q_o) in enumerate(rows):
        expected = black_scholes_scalar(s, float(strike[o]), t_o, v, r, c, dividend_yield=q_o)
        for name in GREEKS:
            # Both sides evaluate the same closed form; the only differences are
            # ndtr vs erfc and the order of operations: ~1e-13 relative, or an
            # absolute 1e-11 x spot where a value underflows towards 0.
            assert float(getattr(values, name)[o]) == pytest.approx(
                getattr(expected, name), rel=1e-9, abs=1e-11 * s
            ), name


@settings(max_examples=100, deadline=None, database=None)
@given(option_inputs)
def test_put_call_parity_with_dividends_holds(row) -> None:
    spot, ratio, t, vol, rate, _, q = row
    strike = spot * ratio

    call = price_of(spot, strike, t, vol, rate, True, q)
    put = price_of(spot, strike, t, vol, rate, False, q)

    # C - P = S e^{-qT} - K e^{-rT}; both prices are O(spot), rounding ~1e-15 of that.
    parity = spot * math.exp(-q * t) - strike * math.exp(-rate * t)
    assert call - put == pytest.approx(parity, abs=1e-10 * spot)


def test_index_call_with_dividend_yield_matches_hulls_worked_example() -> None:
    # Hull, Options, Futures and Other Derivatives, the European call on a stock
    # index: S 930, K 900, r 8%, q 3%, vol 20%, two months. d1 = 0.5444,
    # d2 = 0.4628, N(d1) = 0.7069, N(d2) = 0.6782, c = 51.83.
    call = price_of(930.0, 900.0, 2.0 / 12.0, 0.20, 0.08, True, 0.03)

    assert call == pytest.approx(51.83, abs=0.005)


def test_a_dividend_yield_lowers_calls_and_raises_puts_by_the_forward_drop() -> None:
    # One year with r = q: the forward S e^{(r - q) T} is the spot, so by parity
    # the at-the-money call and put are worth the same; without the yield the
    # forward is above the strike and the call is worth more.
    with_yield = [price_of(100.0, 100.0, 1.0, 0.2, 0.03, c, 0.03) for c in (True, False)]
    without = [price_of(100.0, 100.0, 1.0, 0.2, 0.03, c, 0.0) for c in (True, False)]

    assert with_yield[0] == pytest.approx(with_yield[1], rel=1e-12)
    assert with_yield[0] < without[0]
    assert with_yield[1] > without[1]


def central(f, x: float, h: float) -> float:
    return (f(x + h) - f(x - h)) / (2.0 * h)


@settings(max_examples=60, deadline=None, database=None)
@given(option_inputs)
def test_delta_and_gamma_match_finite_differences_in_spot(row) -> None:
    spot, ratio, t, vol, rate, call, q = row
    strike = spot * ratio
    values = price_one(spot, strike, t, vol, rate, call, q)
    # A step of 0.1% of one standard deviation of log-spot keeps the O(h^2)
    # truncation near 1e-7 relative and the rounding of the second difference
    # (~1e-16 x price / h^2, about 1e-10 of gamma) far below the tolerance.
    h = spot * vol * math.sqrt(t) * 1e-3

    def price(s: float) -> float:
        return price_of(s, strike, t, vol, rate, call, q)

    fd_delta = central(price, spot, h)
    fd_gamma = (price(spot + h) - 2.0 * price(spot) + price(spot - h)) / (h * h)

    assert float(values.delta[0]) == pytest.approx(fd_delta, rel=1e-5, abs=1e-7)
    peak_gamma = 0.4 / (spot * vol * math.sqrt(t))  # gamma at the money, an upper bound
    assert float(values.gamma[0]) == pytest.approx(fd_gamma, rel=1e-5, abs=1e-6 * peak_gamma)


@settings(max_examples=60, deadline=None, database=None)
@given(option_inputs)
def test_vega_theta_rho_match_finite_differences_in_their_units(row) -> None:
    spot, ratio, t, vol, rate, call, q = row
    strike = spot * ratio
    values = price_one(spot, strike, t, vol, rate, call, q)

    vega = central(lambda v: price_of(spot, strike, t, v, rate, call, q), vol, 1e-5) * 0.01
    # Theta per calendar day: the rate of change as T shrinks, per year, / 365.
    theta = -central(lambda x: price_of(spot, strike, x, vol, rate, call, q), t, t * 1e-4) / 365
    rho = central(lambda r: price_of(spot, strike, t, vol, r, call, q), rate, 1e-5) * 0.01

    # First differences with steps ~1e-5 relative: truncation ~1e-10, rounding
    # ~1e-16 x price / step, so 1e-6 relative plus a 1e-8 x spot floor.
    tolerance = {"rel": 1e-6, "abs": 1e-8 * spot}
    assert float(values.vega[0]) == pytest.approx(vega, **tolerance)
    assert float(values.theta[0]) == pytest.approx(theta, **tolerance)
    assert float(values.rho[0]) == pytest.approx(rho, **tolerance)


@pytest.mark.parametrize(
    ("spot", "call", "price", "delta"),
    [
        (120.0, True, 20.0, 1.0),  # in the money call: S - K
        (80.0, True, 0.0, 0.0),  # out of the money call
        (80.0, False, 20.0, -1.0),  # in the money put: K - S
        (120.0, False, 0.0, 0.0),  # out of the money put
        (100.0, True, 0.0, 0.0),  # at the money: worth nothing, delta 0
    ],
)
@pytest.mark.parametrize("t", [0.0, -0.5])
def test_expired_option_is_intrinsic_with_step_delta_and_no_other_greeks(
    spot: float, call: bool, price: float, delta: float, t: float
) -> None:
    values = price_one(spot, 100.0, t, 0.3, 0.04, call)

    assert (float(values.price[0]), float(values.delta[0])) == (price, delta)
    assert [float(getattr(values, g)[0]) for g in ("gamma", "vega", "theta", "rho")] == [0.0] * 4


@pytest.mark.parametrize("t", [0.5, 0.0])
def test_nan_spot_gives_nan_price_and_greeks(t: float) -> None:
    values = price_one(math.nan, 100.0, t, 0.3, 0.04, True)

    assert all(math.isnan(float(getattr(values, g)[0])) for g in GREEKS)


def test_nan_spot_leaves_other_options_in_the_batch_priced() -> None:
    values = black_scholes(
        np.array([math.nan, 100.0]),
        np.array([100.0, 100.0]),
        np.array([0.5, 0.5]),
        np.array([0.3, 0.3]),
        np.array([0.04, 0.04]),
        np.array([True, True]),
        dividend_yield=np.zeros(2),
    )

    expected = black_scholes_scalar(100.0, 100.0, 0.5, 0.3, 0.04, True).price
    assert math.isnan(values.price[0])
    assert values.price[1] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("bad", ["strike", "t_years", "vol", "rate", "is_call", "dividend_yield"])
def test_mismatched_shapes_raise_shape_error_naming_the_argument(bad: str) -> None:
    arguments = {
        "spot": np.ones(3),
        "strike": np.ones(3),
        "t_years": np.ones(3),
        "vol": np.ones(3),
        "rate": np.ones(3),
        "is_call": np.ones(3, dtype=bool),
        "dividend_yield": np.ones(3),
    }
    arguments[bad] = arguments[bad][:2]

    with pytest.raises(ShapeError, match=bad):
        black_scholes(**arguments)
