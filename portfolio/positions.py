"""Positions: the average-cost fill rule, and accounts with positions in array form.

Dimensions: N = accounts, P = positions, C = currencies, M = instruments.

**Average-cost method.** A fill that opens or adds to a position moves the
average cost to the quantity-weighted average of the old cost and the fill
price. A fill that reduces a position realises ``(price - avg_cost) x closed
quantity x multiplier`` (with the sign of the position) and leaves the
average cost unchanged. A fill larger than the position is split: the part
that closes it realises P&L, the rest opens a new position at the fill price.
Realised P&L comes only from reducing fills.

**Cash.** Equities and options settle their notional in cash at the fill
(buying costs ``quantity x price x multiplier``). Futures and FX pairs are
margined: a fill moves no notional, and realised P&L is credited to cash in
the instrument's currency. Commissions are debited from cash in their own
currency and accumulated on the position in the instrument's currency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from portfolio.errors import PortfolioError, UnknownAccount
from portfolio.types import AccountId, CashMovement, Fill, PositionState
from pricing.types import F64Array1D, I64Array1D

__all__ = ["FillOutcome", "PositionBook", "apply_fill", "gather_slices"]


@dataclass(frozen=True, slots=True)
class FillOutcome:
    """A position after a fill, and the P&L the fill realised (instrument currency)."""

    position: PositionState
    realised_pnl: float


def apply_fill(
    position: PositionState, quantity: float, price: float, multiplier: float, commission: float
) -> FillOutcome:
    """Apply one fill of signed ``quantity`` at ``price`` under the average-cost method.

    ``commission`` is in the instrument's currency and is only accumulated.
    """
    held, cost = position.quantity, position.avg_cost
    realised = 0.0
    if held == 0 or (held > 0) == (quantity > 0):
        new_quantity = held + quantity
        new_cost = (held * cost + quantity * price) / new_quantity
    else:
        # The part of the fill that reduces the position has the fill's sign.
        closing = -held if abs(quantity) >= abs(held) else quantity
        realised = (price - cost) * -closing * multiplier
        opening = quantity - closing
        if opening != 0:  # a flip: close, then open the rest at the fill price
            new_quantity, new_cost = opening, price
        else:
            new_quantity = held + closing
            new_cost = cost if new_quantity != 0 else 0.0
    return FillOutcome(
        PositionState(
            quantity=new_quantity,
            avg_cost=new_cost,
            realised_pnl=position.realised_pnl + realised,
            commission=position.commission + commission,
            day_open_quantity=position.day_open_quantity,
            day_trade_value=position.day_trade_value + quantity * price,
        ),
        realised,
    )


def gather_slices(order: I64Array1D, ptr: I64Array1D, keys: I64Array1D) -> I64Array1D:
    """Concatenate ``order[ptr[k]:ptr[k+1]]`` for every key, without a Python loop.

    Parameters
    ----------
    order : ndarray, shape (P,), int64
        Items sorted by key (a CSR permutation).
    ptr : ndarray, shape (K + 1,), int64
        Start of each key's run in ``order``.
    keys : ndarray, shape (Q,), int64
        Keys to gather, in the order wanted.

    Returns
    -------
    ndarray, shape (sum of run lengths,), int64
    """
    starts = ptr[keys]
    lengths = ptr[keys + 1] - starts
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return order[shift + np.arange(total, dtype=np.int64)]


_POSITION_COLUMNS = (
    "quantity",
    "avg_cost",
    "realised_pnl",
    "commission",
    "day_open_quantity",
    "day_trade_value",
)


class PositionBook:
    """Accounts (base currency, cash per currency, version) and their positions.

    Attributes (views of the live rows)
    -----------------------------------
    base_ix : ndarray, shape (N,), int64
        Currency index of each account's base currency.
    cash : ndarray, shape (N, C), float64
        Cash per account and currency.
    version : ndarray, shape (N,), int64
        Ledger sequence of the last fill each account reflects.
    pos_account, pos_instrument : ndarray, shape (P,), int64
        Account and instrument of each position.
    quantity, avg_cost, realised_pnl, commission, day_open_quantity,
    day_trade_value : ndarray, shape (P,), float64
        ``PositionState`` fields per position.
    """

    def __init__(
        self,
        currencies: Sequence[str],
        *,
        currency_ix: I64Array1D,
        multiplier: F64Array1D,
        is_margined: np.ndarray,
    ) -> None:
        self.currencies = tuple(currencies)
        self._currency_index = {c: i for i, c in enumerate(self.currencies)}
        self._instrument_currency = np.asarray(currency_ix, dtype=np.int64)
        self._multiplier = np.asarray(multiplier, dtype=np.float64)
        self._is_margined = np.asarray(is_margined, dtype=np.bool_)
        self.accounts: list[AccountId] = []
        self._account_index: dict[str, int] = {}
        self._n = 0
        self._p = 0
        self._base_ix = np.zeros(16, dtype=np.int64)
        self._cash = np.zeros((16, len(self.currencies)))
        self._version = np.zeros(16, dtype=np.int64)
        self._pos_account = np.zeros(64, dtype=np.int64)
        self._pos_instrument = np.zeros(64, dtype=np.int64)
        self._columns = {name: np.zeros(64) for name in _POSITION_COLUMNS}
        self._position_of: dict[tuple[int, int], int] = {}
        self._index_valid_for = -1
        self._by_account: tuple[I64Array1D, I64Array1D] = (np.empty(0, np.int64),) * 2
        self._by_instrument: tuple[I64Array1D, I64Array1D] = (np.empty(0, np.int64),) * 2

    # --- sizes and views ----------------------------------------------------------

    @property
    def size_n(self) -> int:
        """Number of accounts."""
        return self._n

    @property
    def size_p(self) -> int:
        """Number of positions (flat ones included)."""
        return self._p

    @property
    def base_ix(self) -> I64Array1D:
        return self._base_ix[: self._n]

    @property
    def cash(self) -> np.ndarray:
        return self._cash[: self._n]

    @property
    def version(self) -> I64Array1D:
        return self._version[: self._n]

    @property
    def pos_account(self) -> I64Array1D:
        return self._pos_account[: self._p]

    @property
    def pos_instrument(self) -> I64Array1D:
        return self._pos_instrument[: self._p]

    def column(self, name: str) -> F64Array1D:
        """A ``PositionState`` field for every position, shape (P,)."""
        return self._columns[name][: self._p]

    def account_ix(self, account: str) -> int:
        """Row of ``account``; raises ``UnknownAccount``."""
        try:
            return self._account_index[account]
        except KeyError:
            raise UnknownAccount(account) from None

    def has_account(self, account: str) -> bool:
        """Whether the book holds ``account``."""
        return account in self._account_index

    # --- building -------------------------------------------------------------

    def add_account(
        self,
        account: AccountId,
        base_currency: str,
        cash: Mapping[str, float] | None = None,
        *,
        version: int = 0,
    ) -> int:
        """Add an account and return its row."""
        if account in self._account_index:
            raise PortfolioError(f"account {account!r} exists already")
        base = self._currency(base_currency)
        n = self._n
        if n == self._base_ix.shape[0]:
            self._base_ix = _grow(self._base_ix)
            self._cash = _grow(self._cash)
            self._version = _grow(self._version)
        self._base_ix[n] = base
        self._cash[n] = 0.0
        for currency, amount in (cash or {}).items():
            self._cash[n, self._currency(currency)] = amount
        self._version[n] = version
        self.accounts.append(account)
        self._account_index[account] = n
        self._n = n + 1
        return n

    def add_accounts(
        self,
        accounts: Sequence[AccountId],
        base_ix: I64Array1D,
        cash: np.ndarray,
        version: I64Array1D,
    ) -> I64Array1D:
        """Add many accounts at once; ``cash`` has shape (len(accounts), C).

        Returns
        -------
        ndarray, shape (len(accounts),), int64
            Their rows.
        """
        k = len(accounts)
        if len(set(accounts)) != k or any(a in self._account_index for a in accounts):
            raise PortfolioError("accounts must be new and distinct")
        n = self._n
        while n + k > self._base_ix.shape[0]:
            self._base_ix = _grow(self._base_ix)
            self._cash = _grow(self._cash)
            self._version = _grow(self._version)
        self._base_ix[n : n + k] = base_ix
        self._cash[n : n + k] = cash
        self._version[n : n + k] = version
        for i, account in enumerate(accounts):
            self._account_index[account] = n + i
        self.accounts.extend(accounts)
        self._n = n + k
        return np.arange(n, n + k, dtype=np.int64)

    def add_positions(
        self, account_ix: I64Array1D, instrument_ix: I64Array1D, columns: Mapping[str, F64Array1D]
    ) -> I64Array1D:
        """Add many new positions at once (each pair new and distinct).

        ``columns`` maps ``PositionState`` field names to arrays of shape (K,);
        missing fields are 0.
        """
        k = account_ix.shape[0]
        keys = list(zip(account_ix.tolist(), instrument_ix.tolist(), strict=True))
        if len(set(keys)) != k or any(key in self._position_of for key in keys):
            raise PortfolioError("positions must be new and distinct")
        p = self._p
        while p + k > self._pos_account.shape[0]:
            self._pos_account = _grow(self._pos_account)
            self._pos_instrument = _grow(self._pos_instrument)
            self._columns = {name: _grow(column) for name, column in self._columns.items()}
        self._pos_account[p : p + k] = account_ix
        self._pos_instrument[p : p + k] = instrument_ix
        for name, column in self._columns.items():
            column[p : p + k] = columns.get(name, 0.0)
        self._position_of.update(zip(keys, range(p, p + k), strict=True))
        self._p = p + k
        return np.arange(p, p + k, dtype=np.int64)

    def set_position(self, account_ix: int, instrument_ix: int, state: PositionState) -> int:
        """Set (creating if needed) the position of an account in an instrument."""
        p = self._position_row(account_ix, instrument_ix)
        for name in _POSITION_COLUMNS:
            self._columns[name][p] = getattr(state, name)
        return p

    def position_state(self, p: int) -> PositionState:
        """The state of position row ``p``."""
        return PositionState(**{name: float(self._columns[name][p]) for name in _POSITION_COLUMNS})

    def position_row(self, account_ix: int, instrument_ix: int) -> int | None:
        """Row of an account's position in an instrument, if it has one."""
        return self._position_of.get((account_ix, instrument_ix))

    def apply_fill(self, fill: Fill) -> tuple[int, int] | None:
        """Apply a fill; return (account row, position row), or None for a replay.

        A fill whose ``ledger_seq`` is not above the account's version was
        applied already and changes nothing, so fills are idempotent.
        """
        n = self.account_ix(fill.account)
        if fill.ledger_seq <= self._version[n]:
            return None
        ix = fill.instrument_ix
        ccy = int(self._instrument_currency[ix])
        # Resolve everything that can fail before anything changes.
        commission_ccy = self._currency(fill.commission_currency or self.currencies[ccy])
        multiplier = float(self._multiplier[ix])
        commission = fill.commission * fill.commission_fx
        p = self._position_row(n, ix)
        outcome = apply_fill(
            self.position_state(p), fill.quantity, fill.price, multiplier, commission
        )
        self.set_position(n, ix, outcome.position)
        if self._is_margined[ix]:
            self._cash[n, ccy] += outcome.realised_pnl
        else:
            self._cash[n, ccy] -= fill.quantity * fill.price * multiplier
        self._cash[n, commission_ccy] -= fill.commission
        self._version[n] = fill.ledger_seq
        return n, p

    def apply_cash(self, movement: CashMovement) -> int | None:
        """Apply a cash movement; return the account row, or None for a replay.

        Like fills, a movement whose ``ledger_seq`` is not above the account's
        version was applied already and changes nothing.
        """
        n = self.account_ix(movement.account)
        if movement.ledger_seq <= self._version[n]:
            return None
        self._cash[n, self._currency(movement.currency)] += movement.amount
        self._version[n] = movement.ledger_seq
        return n

    def start_day(self) -> None:
        """Roll to a new day: today's opening quantities are the current ones."""
        self.column("day_open_quantity")[:] = self.column("quantity")
        self.column("day_trade_value")[:] = 0.0

    # --- indices ----------------------------------------------------------------

    def positions_of_accounts(self, accounts: I64Array1D) -> I64Array1D:
        """Every position row of the given accounts, grouped by account in row order."""
        order, ptr = self._index()[0]
        return gather_slices(order, ptr, accounts)

    def positions_of_instruments(self, instruments: I64Array1D) -> I64Array1D:
        """Every position row in the given instruments."""
        order, ptr = self._index()[1]
        return gather_slices(order, ptr, instruments)

    def instrument_index(self) -> tuple[I64Array1D, I64Array1D]:
        """The CSR index by instrument: (position rows sorted by instrument, pointers).

        ``order[ptr[i]:ptr[i + 1]]`` are the positions in instrument ``i``.
        """
        return self._index()[1]

    def _index(self) -> tuple[tuple[I64Array1D, I64Array1D], tuple[I64Array1D, I64Array1D]]:
        # CSR permutations by account and by instrument, rebuilt only after a
        # position was added (fills on existing positions keep them valid).
        if self._index_valid_for != self._p:
            self._by_account = _csr(self.pos_account, self._n)
            self._by_instrument = _csr(self.pos_instrument, self._instrument_currency.shape[0])
            self._index_valid_for = self._p
        return self._by_account, self._by_instrument

    def _position_row(self, account_ix: int, instrument_ix: int) -> int:
        key = (account_ix, instrument_ix)
        p = self._position_of.get(key)
        if p is not None:
            return p
        p = self._p
        if p == self._pos_account.shape[0]:
            self._pos_account = _grow(self._pos_account)
            self._pos_instrument = _grow(self._pos_instrument)
            self._columns = {name: _grow(column) for name, column in self._columns.items()}
        self._pos_account[p] = account_ix
        self._pos_instrument[p] = instrument_ix
        for column in self._columns.values():
            column[p] = 0.0
        self._position_of[key] = p
        self._p = p + 1
        return p

    def _currency(self, code: str) -> int:
        try:
            return self._currency_index[code]
        except KeyError:
            raise PortfolioError(
                f"currency must be one of {self.currencies}, was {code!r}"
            ) from None


def _grow(array: np.ndarray) -> np.ndarray:
    grown = np.zeros((array.shape[0] * 2, *array.shape[1:]), dtype=array.dtype)
    grown[: array.shape[0]] = array
    return grown


def _csr(keys: I64Array1D, size: int) -> tuple[I64Array1D, I64Array1D]:
    order = np.argsort(keys, kind="stable").astype(np.int64)
    ptr = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=size), out=ptr[1:])
    return order, ptr
