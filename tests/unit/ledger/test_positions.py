"""The ledger's exact average cost agrees with the portfolio engine's ``apply_fill``."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.money import to_minor
from ledger.positions import ExactPosition, apply_exact_fill
from portfolio.positions import apply_fill
from portfolio.types import PositionState

fills = st.lists(
    st.tuples(
        st.integers(min_value=-500, max_value=500).filter(bool),
        st.integers(min_value=1, max_value=500_000),  # price in cents
        st.integers(min_value=0, max_value=500),  # fee in cents
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(fills=fills, multiplier=st.sampled_from([1, 50, 100]))
def test_replaying_fills_matches_the_portfolio_engine(fills, multiplier):
    exact = ExactPosition()
    reference = PositionState()
    for quantity, cents, fee_cents in fills:
        price = Decimal(cents).scaleb(-2)
        fee = Decimal(fee_cents).scaleb(-2)
        exact, _ = apply_exact_fill(exact, Decimal(quantity), price, Decimal(multiplier), fee)
        reference = apply_fill(
            reference, float(quantity), float(price), float(multiplier), float(fee)
        ).position

    assert float(exact.quantity) == reference.quantity
    scale = max(1.0, abs(reference.avg_cost))
    assert abs(float(exact.avg_cost) - reference.avg_cost) <= 1e-9 * scale
    pnl_scale = max(1.0, abs(reference.realised_pnl))
    assert abs(float(exact.realised_pnl) - reference.realised_pnl) <= 1e-6 * pnl_scale
    assert abs(float(exact.commission) - reference.commission) <= 1e-6


def test_a_flip_realises_the_closed_part_and_opens_the_rest_at_the_fill_price():
    long = ExactPosition(Decimal(10), Decimal("100"))

    after, realised = apply_exact_fill(long, Decimal(-15), Decimal("110"), Decimal(1), Decimal(0))

    # 10 closed at +10 each; 5 short opened at 110.
    assert realised == Decimal(100)
    assert (after.quantity, after.avg_cost) == (Decimal(-5), Decimal("110"))


def test_rounding_to_the_minor_unit_is_half_to_even():
    assert to_minor(Decimal("0.125"), "USD") == 12
    assert to_minor(Decimal("0.135"), "USD") == 14
    assert to_minor(Decimal("2.5"), "JPY") == 2
