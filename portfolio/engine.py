"""The portfolio engine: incremental P&L on every tick batch, full revaluation on demand.

Dimensions: M = instruments, P = positions, N = accounts, C = currencies,
F = summed total fields (``SUM_FIELDS``).

After ``PriceBook.apply``, ``on_prices_changed`` revalues only what moved:
the changed instruments, the options whose underlying changed, and, when an
FX rate moved, every position whose currency or whose account's base
currency is that currency. Account totals are updated by the difference of
the revalued positions' contributions, so a batch costs in proportion to the
positions it touches. ``revalue_all`` recomputes everything and re-sums the
totals exactly (startup, reconciliation); tests check that both agree.

Options are revalued when their underlying moves; ``revalue_options`` also
reprices them all for the passage of time (theta), on the risk cadence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from portfolio.fx import FxTable
from portfolio.positions import PositionBook, gather_slices
from portfolio.types import Fill, Status
from portfolio.valuation import (
    SUM_FIELDS,
    InstrumentMarks,
    InstrumentTerms,
    PositionInputs,
    PositionValues,
)
from pricing.pricebook import PriceBook
from pricing.types import F64Array1D, F64Array2D, I64Array1D, U8Array1D

__all__ = ["TOTAL_FIELDS", "PortfolioChange", "PortfolioEngine"]

TOTAL_FIELDS = (
    "cash",
    "market_value",
    "equity",
    "unrealised_pnl",
    "realised_pnl",
    "commission",
    "day_pnl",
    "total_pnl",
    "gross_exposure",
    "net_exposure",
    "leverage",
    "buying_power",
    "delta",
    "gamma",
    "vega",
    "theta",
    "rho",
)
"""Account totals, in the base currency; ``leverage`` is a ratio."""

_COL = {name: i for i, name in enumerate(SUM_FIELDS)}
_UNPRICED, _STALE = 0, 1


@dataclass(frozen=True, slots=True)
class PortfolioChange:
    """What one update touched.

    Attributes
    ----------
    accounts : ndarray, shape (A,), int64
        Sorted account rows whose totals changed.
    positions : ndarray, shape (S,), int64
        Position rows that were revalued.
    """

    accounts: I64Array1D
    positions: I64Array1D


class PortfolioEngine:
    """P&L, exposures and greeks of every account, kept current with the PriceBook."""

    def __init__(
        self,
        prices: PriceBook,
        positions: PositionBook,
        fx: FxTable,
        terms: InstrumentTerms,
        *,
        max_leverage: float,
        now_ns: int,
    ) -> None:
        self.prices = prices
        self.book = positions
        self.fx = fx
        self.terms = terms
        self.max_leverage = max_leverage
        m = terms.multiplier.shape[0]
        self.marks = InstrumentMarks(m)
        self.values = PositionValues(positions.size_p)
        self.option_ix: I64Array1D = np.flatnonzero(terms.is_option).astype(np.int64)
        under = terms.underlying_ix[self.option_ix]
        order = np.argsort(under, kind="stable")
        self._options_by_underlying = (
            self.option_ix[order],
            np.concatenate(([0], np.cumsum(np.bincount(under, minlength=m)))).astype(np.int64),
        )
        self.prev_mark = self._prev_marks(now_ns)
        self.usd_per: F64Array1D | None = None
        self.usd_status = np.zeros(len(fx.currencies), dtype=np.uint8)
        self.revalue_all(now_ns)

    # --- updates ------------------------------------------------------------------

    def revalue_all(self, now_ns: int) -> None:
        """Revalue every instrument, position and account, and re-sum exactly."""
        book = self.book
        mid, stale = self.prices.mid(), self.prices.is_stale
        self._update_fx(mid, stale)
        self.marks.update(self.terms, np.arange(mid.shape[0]), mid, stale, now_ns)
        self.values.resize(book.size_p)
        everything = np.arange(book.size_p, dtype=np.int64)
        self.values.update(
            everything, self._inputs(everything), self.terms, self.marks, self.prev_mark
        )
        n = book.size_n
        contributions = self._contributions(everything)
        self.sums = np.empty((n, len(SUM_FIELDS)))
        for col in range(len(SUM_FIELDS)):
            self.sums[:, col] = np.bincount(book.pos_account, contributions[col], minlength=n)
        self.flags = np.stack(
            [
                np.bincount(
                    book.pos_account, self.values.status[: book.size_p] == Status.UNPRICED, n
                ),
                np.bincount(book.pos_account, self.values.status[: book.size_p] == Status.STALE, n),
            ],
            axis=1,
        ).astype(np.int64)
        self.cash_base = np.zeros(n)
        self.cash_status = np.zeros(n, dtype=np.uint8)
        self._update_cash(np.arange(n, dtype=np.int64))

    def on_prices_changed(self, changed_ix: I64Array1D, now_ns: int) -> PortfolioChange:
        """Revalue what the changed instruments (sorted, unique) affect."""
        mid, stale = self.prices.mid(), self.prices.is_stale
        instruments = np.union1d(changed_ix, self._options_on(changed_ix))
        moved = (
            self._update_fx(mid, stale)
            if np.isin(self.fx.rate_instruments, changed_ix).any()
            else None
        )
        self.marks.update(self.terms, instruments, mid, stale, now_ns)
        touched = self.book.positions_of_instruments(instruments)
        if moved is not None and moved.size:
            touched = np.union1d(touched, self._positions_in_currencies(moved))
        self._revalue_positions(touched)
        accounts = np.unique(self.book.pos_account[touched])
        if moved is not None and moved.size:
            cash_accounts = self._accounts_in_currencies(moved)
            self._update_cash(cash_accounts)
            accounts = np.union1d(accounts, cash_accounts)
        return PortfolioChange(accounts, touched)

    def revalue_options(self, now_ns: int) -> PortfolioChange:
        """Reprice every option at ``now_ns`` (time decay) and revalue their positions."""
        mid, stale = self.prices.mid(), self.prices.is_stale
        self.marks.update(self.terms, self.option_ix, mid, stale, now_ns)
        touched = self.book.positions_of_instruments(self.option_ix)
        self._revalue_positions(touched)
        return PortfolioChange(np.unique(self.book.pos_account[touched]), touched)

    def apply_fills(self, fills: list[Fill]) -> PortfolioChange:
        """Apply fills (replays are ignored) and revalue the accounts they touched."""
        applied = [result for fill in fills if (result := self.book.apply_fill(fill)) is not None]
        if not applied:
            return PortfolioChange(np.empty(0, np.int64), np.empty(0, np.int64))
        accounts = np.unique(np.array([n for n, _ in applied], dtype=np.int64))
        self.values.resize(self.book.size_p)
        touched = self.book.positions_of_accounts(accounts)
        self.values.update(touched, self._inputs(touched), self.terms, self.marks, self.prev_mark)
        self._resum(accounts)
        self._update_cash(accounts)
        rows = np.unique(np.array([p for _, p in applied], dtype=np.int64))
        return PortfolioChange(accounts, rows)

    # --- outputs --------------------------------------------------------------------

    def totals(self, accounts: I64Array1D) -> tuple[F64Array2D, U8Array1D]:
        """Totals of ``accounts`` (shape (A,)) in ``TOTAL_FIELDS`` order, and their status.

        Returns
        -------
        totals : ndarray, shape (A, len(TOTAL_FIELDS)), float64
        status : ndarray, shape (A,), uint8
        """
        s = self.sums[accounts]
        cash = self.cash_base[accounts]
        mv = s[:, _COL["market_value"]]
        equity = cash + mv
        gross = s[:, _COL["gross_exposure"]]
        with np.errstate(divide="ignore", invalid="ignore"):
            leverage = np.where(equity > 0, gross / equity, np.nan)
        columns = {
            "cash": cash,
            "market_value": mv,
            "equity": equity,
            "unrealised_pnl": s[:, _COL["unrealised_pnl"]],
            "realised_pnl": s[:, _COL["realised_pnl"]],
            "commission": s[:, _COL["commission"]],
            "day_pnl": s[:, _COL["day_pnl"]],
            "total_pnl": s[:, _COL["unrealised_pnl"]]
            + s[:, _COL["realised_pnl"]]
            - s[:, _COL["commission"]],
            "gross_exposure": gross,
            "net_exposure": s[:, _COL["net_exposure"]],
            "leverage": leverage,
            "buying_power": np.maximum(equity * self.max_leverage - gross, 0.0),
            "delta": s[:, _COL["net_exposure"]],
            "gamma": s[:, _COL["gamma"]],
            "vega": s[:, _COL["vega"]],
            "theta": s[:, _COL["theta"]],
            "rho": s[:, _COL["rho"]],
        }
        flags = self.flags[accounts]
        status = np.maximum(
            self.cash_status[accounts],
            np.where(
                flags[:, _UNPRICED] > 0,
                Status.UNPRICED,
                np.where(flags[:, _STALE] > 0, Status.STALE, Status.OK),
            ),
        ).astype(np.uint8)
        return np.stack([columns[name] for name in TOTAL_FIELDS], axis=1), status

    # --- internals ----------------------------------------------------------------------

    def _prev_marks(self, now_ns: int) -> F64Array1D:
        # Previous-close marks: the book's previous closes, and for options
        # their model price off the underlying's previous close.
        marks = InstrumentMarks(self.terms.multiplier.shape[0])
        close = self.prices.prev_close
        every = np.arange(close.shape[0], dtype=np.int64)
        marks.update(self.terms, every, close, np.zeros(close.shape[0], dtype=np.bool_), now_ns)
        return marks.mark

    def _options_on(self, underlyings: I64Array1D) -> I64Array1D:
        order, ptr = self._options_by_underlying
        return gather_slices(order, ptr, underlyings)

    def _update_fx(self, mid: F64Array1D, stale: np.ndarray) -> I64Array1D:
        # Returns the currencies whose rate or status changed.
        usd_per, status = self.fx.usd_per(mid, stale)
        old = self.usd_per
        if old is None:
            moved = np.arange(usd_per.shape[0], dtype=np.int64)
        else:
            same = (old == usd_per) | (np.isnan(old) & np.isnan(usd_per))
            moved = np.flatnonzero(~same | (self.usd_status != status)).astype(np.int64)
        self.usd_per, self.usd_status = usd_per, status
        self.fx_rate, self.fx_status = self.fx.matrix(usd_per, status)
        return moved

    def _inputs(self, s: I64Array1D) -> PositionInputs:
        book = self.book
        instrument = book.pos_instrument[s]
        ccy = self.terms.currency_ix[instrument]
        base = book.base_ix[book.pos_account[s]]
        return PositionInputs(
            instrument=instrument,
            quantity=book.column("quantity")[s],
            avg_cost=book.column("avg_cost")[s],
            realised_pnl=book.column("realised_pnl")[s],
            commission=book.column("commission")[s],
            day_open_quantity=book.column("day_open_quantity")[s],
            day_trade_value=book.column("day_trade_value")[s],
            fx_to_base=self.fx_rate[ccy, base],
            fx_status=self.fx_status[ccy, base],
        )

    def _contributions(self, s: I64Array1D) -> F64Array2D:
        book = self.book
        return self.values.contributions(
            s, book.column("realised_pnl")[s], book.column("commission")[s]
        )

    def _flags(self, s: I64Array1D) -> np.ndarray:
        status = self.values.status[s]
        return np.stack([status == Status.UNPRICED, status == Status.STALE]).astype(np.int64)

    def _revalue_positions(self, s: I64Array1D) -> None:
        # Update the totals by the difference of the positions' contributions.
        if s.size == 0:
            return
        old, old_flags = self._contributions(s), self._flags(s)
        self.values.update(s, self._inputs(s), self.terms, self.marks, self.prev_mark)
        delta = self._contributions(s) - old
        delta_flags = self._flags(s) - old_flags
        accounts, local = np.unique(self.book.pos_account[s], return_inverse=True)
        for col in range(len(SUM_FIELDS)):
            self.sums[accounts, col] += np.bincount(local, delta[col], minlength=accounts.size)
        for col in (_UNPRICED, _STALE):
            self.flags[accounts, col] += np.bincount(
                local, delta_flags[col], minlength=accounts.size
            ).astype(np.int64)

    def _resum(self, accounts: I64Array1D) -> None:
        # Exact totals of some accounts from all of their positions.
        self._grow_accounts()
        s = self.book.positions_of_accounts(accounts)
        local = np.searchsorted(accounts, self.book.pos_account[s])
        contributions = self._contributions(s)
        for col in range(len(SUM_FIELDS)):
            self.sums[accounts, col] = np.bincount(
                local, contributions[col], minlength=accounts.size
            )
        flags = self._flags(s)
        for col in (_UNPRICED, _STALE):
            self.flags[accounts, col] = np.bincount(local, flags[col], minlength=accounts.size)

    def _grow_accounts(self) -> None:
        n = self.book.size_n
        if self.sums.shape[0] < n:
            extra = n - self.sums.shape[0]
            self.sums = np.vstack([self.sums, np.zeros((extra, len(SUM_FIELDS)))])
            self.flags = np.vstack([self.flags, np.zeros((extra, 2), dtype=np.int64)])
            self.cash_base = np.concatenate([self.cash_base, np.zeros(extra)])
            self.cash_status = np.concatenate([self.cash_status, np.zeros(extra, np.uint8)])

    def _update_cash(self, accounts: I64Array1D) -> None:
        # Cash of each account converted to its base currency, with the worst
        # status of the rates of the currencies it actually holds.
        cash = self.book.cash[accounts]
        base = self.book.base_ix[accounts]
        rate = self.fx_rate[:, base].T
        status = self.fx_status[:, base].T
        held = cash != 0.0
        usable = held & (status != Status.UNPRICED)
        self.cash_base[accounts] = np.where(usable, cash * rate, 0.0).sum(axis=1)
        self.cash_status[accounts] = np.where(held, status, Status.OK).max(axis=1, initial=0)

    def _positions_in_currencies(self, currencies: I64Array1D) -> I64Array1D:
        book = self.book
        ccy = self.terms.currency_ix[book.pos_instrument]
        base = book.base_ix[book.pos_account]
        return np.flatnonzero(np.isin(ccy, currencies) | np.isin(base, currencies)).astype(np.int64)

    def _accounts_in_currencies(self, currencies: I64Array1D) -> I64Array1D:
        book = self.book
        holds = (book.cash[:, currencies] != 0.0).any(axis=1)
        return np.flatnonzero(holds | np.isin(book.base_ix, currencies)).astype(np.int64)
