"""Pre-trade risk's view of live state: accounts from the engine, prices from the PriceBook.

The engine computes in float64; pre-trade checks compare exact decimals, so
cash is rounded to its currency's minor unit and quantities to the
instrument's quantity decimals on the way out. The checks are advisory (the
ledger's own floor is the law), so a rounding at the last digit changes no
decision that matters.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np

from ledger.money import minor_digits, quantity_digits
from orders.risk import AccountSnapshot, MarketQuote
from orders.types import AccountId
from portfolio.positions import PositionBook
from pricing.instruments import InstrumentMaster
from pricing.pricebook import PriceBook

__all__ = ["EngineAccountView"]


class EngineAccountView:
    """``orders.risk.AccountView`` over the engine's positions and the PriceBook (in memory)."""

    def __init__(
        self, positions: PositionBook, prices: PriceBook, master: InstrumentMaster
    ) -> None:
        self._positions = positions
        self._prices = prices
        self._master = master
        self._quantity_digits = [quantity_digits(i) for i in master]

    async def account(self, account_id: AccountId) -> AccountSnapshot | None:
        book = self._positions
        if not book.has_account(account_id):
            return None
        n = book.account_ix(account_id)
        cash = {
            currency: _decimal(amount, minor_digits(currency))
            for currency, amount in zip(book.currencies, book.cash[n].tolist(), strict=True)
            if amount != 0.0
        }
        rows = book.positions_of_accounts(np.array([n], dtype=np.int64))
        quantities = book.column("quantity")[rows].tolist()
        positions = {
            self._master.symbols[ix]: _decimal(q, self._quantity_digits[ix])
            for ix, q in zip(book.pos_instrument[rows].tolist(), quantities, strict=True)
            if q != 0.0
        }
        base = book.currencies[int(book.base_ix[n])]
        return AccountSnapshot(account_id, base, cash, positions)

    async def quote(self, symbol: str) -> MarketQuote | None:
        ix = self._master.symbol_index.get(symbol)
        if ix is None:
            return None
        prices = self._prices
        digits = self._master[ix].price_decimals
        bid, ask, last = (float(prices.bid[ix]), float(prices.ask[ix]), float(prices.last[ix]))
        if all(math.isnan(v) for v in (bid, ask, last)):
            return None
        return MarketQuote(
            last=_price(last, digits),
            bid=_price(bid, digits),
            ask=_price(ask, digits),
            is_stale=bool(prices.is_stale[ix]),
        )


def _decimal(value: float, digits: int) -> Decimal:
    return Decimal(repr(round(value, digits))).quantize(Decimal(1).scaleb(-digits))


def _price(value: float, digits: int) -> Decimal | None:
    if not math.isfinite(value) or value <= 0:
        return None
    return _decimal(value, digits)
