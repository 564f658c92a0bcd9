"""The accounts of a running gateway: the engine and what keeps it current.

Ticks reach the engine through the revaluation pacer, time through the risk
cadence, and fills, payments and the day roll through ``Accounts``, which pushes what
they changed to the ``portfolio`` channel and marks it for the position
cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gateway.accounts.positioncache import PositionCache
from gateway.accounts.riskworker import RiskWorker
from gateway.channels.pacing import RevaluationPacer
from gateway.channels.portfolio import PortfolioChannel
from portfolio.engine import PortfolioChange, PortfolioEngine
from portfolio.positions import PositionBook
from portfolio.types import CashMovement, Fill

__all__ = ["Accounts"]


@dataclass(slots=True)
class Accounts:
    """The accounts side of a running gateway."""

    positions: PositionBook
    engine: PortfolioEngine
    channel: PortfolioChannel
    pacer: RevaluationPacer
    risk: RiskWorker
    cache: PositionCache

    def has_account(self, account: str) -> bool:
        """Whether the engine holds ``account``."""
        return self.positions.has_account(account)

    def apply_fills(self, fills: list[Fill], now_ns: int) -> PortfolioChange:
        """Apply fills, push the changed accounts, and mark them for the position cache."""
        self.pacer.catch_up()
        change = self.engine.apply_fills(fills)
        self.channel.publish(change, now_ns)
        accounts = self.positions.accounts
        self.cache.mark_dirty([accounts[a] for a in change.accounts.tolist()])
        return change

    def apply_cash(self, movements: list[CashMovement], now_ns: int) -> PortfolioChange:
        """Apply settled payments, push the changed accounts' totals, mark them for the cache."""
        self.pacer.catch_up()
        change = self.engine.apply_cash(movements)
        self.channel.publish(change, now_ns)
        accounts = self.positions.accounts
        self.cache.mark_dirty([accounts[a] for a in change.accounts.tolist()])
        return change

    def roll_day(self, now_ns: int) -> None:
        """Start a new trading day, push every watched account, mark every account.

        Current mids become the previous closes, today's opening quantities
        the current ones; day P&L starts again from zero. The roll changes
        every account's opening quantities, so the cache writes them all.
        The day's close-to-close return then enters the daily risk model.
        """
        self.engine.prices.roll_close()
        self.engine.start_day(now_ns)
        book = self.engine.book
        every = PortfolioChange(
            np.arange(book.size_n, dtype=np.int64), np.arange(book.size_p, dtype=np.int64)
        )
        self.channel.publish(every, now_ns)
        self.cache.mark_dirty(list(self.positions.accounts))
        self.risk.roll_day()
