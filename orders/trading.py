"""The trading state: the kill switch of order entry.

- ``ACTIVE``: orders are checked as usual.
- ``HALTED``: every new order is refused (``trading_halted``).
- ``REDUCING``: only orders that reduce a position without flipping it are
  accepted (``trading_reducing_only``).

The state applies to new orders. Cancels are always accepted (they reduce
risk), and payments are not trading, so neither is affected. Each change is
an audit event (``TradingStateChanged``) that the gateway logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from orders.types import PrincipalId

__all__ = ["TradingState", "TradingStatus"]


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    HALTED = "HALTED"
    REDUCING = "REDUCING"


@dataclass(frozen=True, slots=True)
class TradingStatus:
    """The current trading state, who set it, why and when (UNIX ns; 0 = at startup)."""

    state: TradingState = TradingState.ACTIVE
    reason: str = "startup"
    changed_by: PrincipalId | None = None
    ts_changed: int = 0
