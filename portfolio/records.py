"""Converting between account records (the store's form) and the position book."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields

import numpy as np

from portfolio.positions import PositionBook
from portfolio.store import AccountRecord
from portfolio.types import PositionState

__all__ = ["load_records", "record_of", "record_problem", "records_of"]

_FIELDS = tuple(f.name for f in fields(PositionState))
"""PositionState's fields in order: each is a column of the book."""


def record_problem(
    record: AccountRecord, symbol_index: Mapping[str, int], currencies: Sequence[str]
) -> str | None:
    """Why ``record`` cannot be loaded here (a symbol or currency unknown), or None."""
    if record.base_currency not in currencies:
        return f"account {record.account}: unknown base currency {record.base_currency!r}"
    for currency in record.cash:
        if currency not in currencies:
            return f"account {record.account}: unknown cash currency {currency!r}"
    for symbol in record.positions:
        if symbol not in symbol_index:
            return f"account {record.account}: unknown instrument {symbol!r}"
    return None


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


def records_of(
    book: PositionBook, symbols: Sequence[str], accounts: Sequence[int]
) -> list[AccountRecord]:
    """The current records of some accounts (rows) of ``book``, in that order.

    One pass over their positions: the columns are read once, not per account.
    """
    rows = book.positions_of_accounts(np.asarray(accounts, dtype=np.int64))
    owner = book.pos_account[rows].tolist()
    instrument = book.pos_instrument[rows].tolist()
    columns = [book.column(name)[rows].tolist() for name in _FIELDS]
    positions: dict[int, dict[str, PositionState]] = {a: {} for a in accounts}
    for k, (a, ix) in enumerate(zip(owner, instrument, strict=True)):
        positions[a][symbols[ix]] = PositionState(*(column[k] for column in columns))
    cash = book.cash[list(accounts)].tolist()
    return [
        AccountRecord(
            account=book.accounts[a],
            base_currency=book.currencies[int(book.base_ix[a])],
            version=int(book.version[a]),
            cash={c: amount for c, amount in zip(book.currencies, cash[i], strict=True) if amount},
            positions=positions[a],
        )
        for i, a in enumerate(accounts)
    ]


def record_of(book: PositionBook, symbols: Sequence[str], account_ix: int) -> AccountRecord:
    """The current record of one account of ``book``."""
    return records_of(book, symbols, [account_ix])[0]
