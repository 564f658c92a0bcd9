"""Converting between account records (the store's form) and the position book."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from portfolio.positions import PositionBook
from portfolio.store import AccountRecord

__all__ = ["load_records", "record_of"]


def load_records(
    book: PositionBook, records: Iterable[AccountRecord], symbol_index: Mapping[str, int]
) -> None:
    """Add each record's account and positions to ``book``.

    Positions in symbols the instrument master does not list are an error:
    dropping them would misstate the account.
    """
    for record in records:
        n = book.add_account(
            record.account, record.base_currency, record.cash, version=record.version
        )
        for symbol, state in record.positions.items():
            ix = symbol_index.get(symbol)
            if ix is None:
                raise ValueError(f"account {record.account}: unknown instrument {symbol!r}")
            book.set_position(n, ix, state)


def record_of(book: PositionBook, symbols: Sequence[str], account_ix: int) -> AccountRecord:
    """The current record of one account of ``book``."""
    rows = book.positions_of_accounts(np.array([account_ix], dtype=np.int64))
    instruments = book.pos_instrument[rows]
    cash = book.cash[account_ix]
    return AccountRecord(
        account=book.accounts[account_ix],
        base_currency=book.currencies[int(book.base_ix[account_ix])],
        version=int(book.version[account_ix]),
        cash={c: float(cash[i]) for i, c in enumerate(book.currencies) if cash[i] != 0.0},
        positions={
            symbols[int(ix)]: book.position_state(int(p))
            for ix, p in zip(instruments.tolist(), rows.tolist(), strict=True)
        },
    )
