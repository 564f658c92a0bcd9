"""Exact positions under the average-cost method (the ledger's twin of ``portfolio.positions``).

The rule is the portfolio engine's ``apply_fill``, in ``Decimal``: a fill
that opens or adds to a position moves the average cost to the
quantity-weighted average (rounded half to even to ``AVG_COST_DIGITS``
decimal places); a reducing fill realises ``(price - avg_cost) x closed x
multiplier`` exactly and leaves the average cost; a fill larger than the
position closes it and opens the rest at the fill price. Quantities here
are in the instrument's quantity (not units).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Final

__all__ = ["AVG_COST_DIGITS", "ExactPosition", "apply_exact_fill"]

AVG_COST_DIGITS: Final = 12
"""Decimal places the average cost is kept to."""

_CONTEXT: Final = Context(prec=50, rounding=ROUND_HALF_EVEN)
_AVG_QUANTUM: Final = Decimal(1).scaleb(-AVG_COST_DIGITS)
_ZERO: Final = Decimal(0)


@dataclass(frozen=True, slots=True)
class ExactPosition:
    """A position: signed ``quantity``, ``avg_cost`` (0 when flat), cumulative
    ``realised_pnl`` and ``commission`` in the instrument's currency."""

    quantity: Decimal = _ZERO
    avg_cost: Decimal = _ZERO
    realised_pnl: Decimal = _ZERO
    commission: Decimal = _ZERO


def apply_exact_fill(
    position: ExactPosition,
    quantity: Decimal,
    price: Decimal,
    multiplier: Decimal,
    commission: Decimal,
) -> tuple[ExactPosition, Decimal]:
    """Apply one fill of signed ``quantity``; return the new position and the realised P&L."""
    held, cost = position.quantity, position.avg_cost
    realised = _ZERO
    if held == 0 or (held > 0) == (quantity > 0):
        new_quantity = held + quantity
        total = _CONTEXT.add(_CONTEXT.multiply(held, cost), _CONTEXT.multiply(quantity, price))
        new_cost = _CONTEXT.divide(total, new_quantity).quantize(
            _AVG_QUANTUM, rounding=ROUND_HALF_EVEN, context=_CONTEXT
        )
    else:
        closing = -held if abs(quantity) >= abs(held) else quantity
        realised = _CONTEXT.multiply(_CONTEXT.multiply(price - cost, -closing), multiplier)
        opening = quantity - closing
        if opening != 0:
            new_quantity, new_cost = opening, price
        else:
            new_quantity = held + closing
            new_cost = cost if new_quantity != 0 else _ZERO
    return (
        ExactPosition(
            quantity=new_quantity,
            avg_cost=new_cost,
            realised_pnl=position.realised_pnl + realised,
            commission=position.commission + commission,
        ),
        realised,
    )
