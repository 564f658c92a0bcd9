"""The portfolio engine: incremental P&L on every tick batch, full revaluation on demand.

Dimensions: M = instruments, P = positions, N = accounts, C = currencies,
F = summed fields (``SUM_FIELDS``), A = accounts asked for.

Sums are kept per (account, currency) cell in the currency of the
positions: ``sums[n * C + c, f]``, with two more columns counting the
positions whose price is missing or stale. Base-currency totals are converted when they are read,
with the live rates, so an FX move touches no position: it only marks the
accounts holding a currency that moved.

After ``PriceBook.apply``, ``on_prices_changed`` revalues only the positions
in the changed instruments and in options whose underlying changed, and
updates the sums by the difference of their contributions (kept per
position, shape (P, F + 2)), aggregated per cell with one sort and one
``np.add.reduceat``. A batch costs in proportion to the positions it
touches. ``revalue_all`` recomputes everything and re-sums exactly (startup,
reconciliation); tests check that both agree.

Options are revalued when their underlying moves; ``revalue_options`` also
reprices them all for the passage of time (theta), on the risk cadence.

Status (fail closed): a position is ``UNPRICED`` when its price or the FX rate
from its currency to the account's base is missing, and ``STALE`` when
either is stale. Unpriced positions add nothing to the price-based totals,
an unpriced rate takes its whole currency out of the totals, and the
account's status and counts say so.
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

__all__ = ["TOTAL_FIELDS", "AccountTotals", "PortfolioChange", "PortfolioEngine"]

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
_F = len(SUM_FIELDS)
_UNPRICED, _STALE = _F, _F + 1  # flag columns after the sums


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


@dataclass(frozen=True, slots=True)
class AccountTotals:
    """Totals of some accounts, in their base currencies.

    Attributes
    ----------
    values : ndarray, shape (A, len(TOTAL_FIELDS)), float64
    status : ndarray, shape (A,), uint8
    unpriced : ndarray, shape (A,), int64
        Positions left out for a missing price or FX rate.
    stale : ndarray, shape (A,), int64
        Positions valued from a stale price or FX rate.
    """

    values: F64Array2D
    status: U8Array1D
    unpriced: I64Array1D
    stale: I64Array1D
    base_ix: I64Array1D


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
        self._c = len(fx.currencies)
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
        self.usd_status = np.zeros(self._c, dtype=np.uint8)
        self.revalue_all(now_ns)

    # --- updates ------------------------------------------------------------------

    def revalue_all(self, now_ns: int) -> None:
        """Revalue every instrument and position, and re-sum every account exactly."""
        mid, stale = self.prices.mid(), self.prices.is_stale
        self._update_fx(mid, stale)
        self.marks.update(self.terms, np.arange(mid.shape[0]), mid, stale, now_ns)
        p = self.book.size_p
        self.values.resize(p)
        everything = np.arange(p, dtype=np.int64)
        self.values.update(
            everything, self._inputs(everything), self.terms, self.marks, self.prev_mark
        )
        self._refresh_layout()
        self._contrib = self._contributions(everything)
        cells = self.book.size_n * self._c
        self.sums = np.empty((cells, _F + 2))
        for f in range(_F + 2):
            self.sums[:, f] = np.bincount(self._cell, self._contrib[:, f], cells)

    def on_prices_changed(self, changed_ix: I64Array1D, now_ns: int) -> PortfolioChange:
        """Revalue what the changed instruments (sorted, unique) affect."""
        mid, stale = self.prices.mid(), self.prices.is_stale
        instruments = np.union1d(changed_ix, self._options_on(changed_ix))
        self.marks.update(self.terms, instruments, mid, stale, now_ns)
        touched = self.book.positions_of_instruments(instruments)
        accounts = self._revalue_positions(touched)
        if np.isin(self.fx.rate_instruments, changed_ix).any():
            moved = self._update_fx(mid, stale)
            if moved.size:
                accounts = np.union1d(accounts, self._accounts_holding(moved))
        return PortfolioChange(accounts, touched)

    def revalue_options(self, now_ns: int) -> PortfolioChange:
        """Reprice every option at ``now_ns`` (time decay) and revalue their positions."""
        mid, stale = self.prices.mid(), self.prices.is_stale
        self.marks.update(self.terms, self.option_ix, mid, stale, now_ns)
        touched = self.book.positions_of_instruments(self.option_ix)
        return PortfolioChange(self._revalue_positions(touched), touched)

    def apply_fills(self, fills: list[Fill]) -> PortfolioChange:
        """Apply fills (replays are ignored) and revalue the accounts they touched."""
        applied = [result for fill in fills if (result := self.book.apply_fill(fill)) is not None]
        if not applied:
            return PortfolioChange(np.empty(0, np.int64), np.empty(0, np.int64))
        accounts = np.unique(np.array([n for n, _ in applied], dtype=np.int64))
        self._grow()
        touched = self.book.positions_of_accounts(accounts)
        self.values.update(touched, self._inputs(touched), self.terms, self.marks, self.prev_mark)
        self._resum(accounts, touched)
        rows = np.unique(np.array([p for _, p in applied], dtype=np.int64))
        return PortfolioChange(accounts, rows)

    # --- outputs --------------------------------------------------------------------

    def fx_to_base(self, positions: I64Array1D) -> tuple[F64Array1D, U8Array1D]:
        """Rate and status from each position's currency to its account's base, shape (S,)."""
        ccy = self._pos_ccy[positions]
        base = self._pos_base[positions]
        return self.fx_rate[ccy, base], self.fx_status[ccy, base]

    def position_status(self, positions: I64Array1D) -> U8Array1D:
        """The worse of each position's price and FX statuses, shape (S,)."""
        _, fx_status = self.fx_to_base(positions)
        return np.maximum(self.values.status[positions], fx_status)

    def totals(self, accounts: I64Array1D) -> AccountTotals:
        """Totals of ``accounts`` (shape (A,)) in their base currencies."""
        a = accounts.size
        c = self._c
        base = self.book.base_ix[accounts]
        rate = self.fx_rate[:, base].T  # (A, C): currency -> the account's base
        fx_status = self.fx_status[:, base].T
        cells = accounts[:, None] * c + np.arange(c)[None, :]
        sums = self.sums[cells]  # (A, C, F + 2)
        flags = np.rint(sums[:, :, _F:]).astype(np.int64)  # counts of unpriced, stale
        sums = sums[:, :, :_F]
        holdings = self.cell_positions[cells]  # (A, C)
        cash = self.book.cash[accounts]
        usable = fx_status != Status.UNPRICED
        weight = np.where(usable, rate, 0.0)
        s = np.einsum("acf,ac->af", np.where(usable[:, :, None], sums, 0.0), weight)
        cash_base = np.where(usable & (cash != 0.0), cash * weight, 0.0).sum(axis=1)
        fx_unpriced = ~usable
        fx_stale = fx_status == Status.STALE
        unpriced = np.where(fx_unpriced, holdings, flags[:, :, 0]).sum(axis=1)
        stale = np.where(
            fx_unpriced, 0, np.where(fx_stale, holdings - flags[:, :, 0], flags[:, :, 1])
        ).sum(axis=1)
        held = (holdings > 0) | (cash != 0.0)
        cash_or_holding_status = np.where(held, fx_status, Status.OK).max(axis=1, initial=0)
        status = np.maximum(
            cash_or_holding_status,
            np.where(unpriced > 0, Status.UNPRICED, np.where(stale > 0, Status.STALE, Status.OK)),
        ).astype(np.uint8)

        mv = s[:, _COL["market_value"]]
        equity = cash_base + mv
        gross = s[:, _COL["gross_exposure"]]
        with np.errstate(divide="ignore", invalid="ignore"):
            leverage = np.where(equity > 0, gross / equity, np.nan)
        columns = {
            "cash": cash_base,
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
        values = np.stack([columns[name] for name in TOTAL_FIELDS], axis=1).reshape(a, -1)
        return AccountTotals(
            values, status, unpriced.astype(np.int64), stale.astype(np.int64), base.copy()
        )

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
        return PositionInputs(
            instrument=book.pos_instrument[s],
            quantity=book.column("quantity")[s],
            avg_cost=book.column("avg_cost")[s],
            day_open_quantity=book.column("day_open_quantity")[s],
            day_trade_value=book.column("day_trade_value")[s],
        )

    def _contributions(self, s: I64Array1D) -> F64Array2D:
        book = self.book
        return self.values.contributions(
            s, book.column("realised_pnl")[s], book.column("commission")[s]
        )

    def _revalue_positions(self, s: I64Array1D) -> I64Array1D:
        # Update the sums by the difference of the positions' contributions;
        # returns the accounts touched (sorted).
        if s.size == 0:
            return s
        self.values.update(s, self._inputs(s), self.terms, self.marks, self.prev_mark)
        new = self._contributions(s)
        delta = new - self._contrib[s]
        self._contrib[s] = new
        cell = self._cell[s]
        order = np.argsort(cell, kind="stable")
        cell = cell[order]
        starts = np.flatnonzero(np.concatenate(([True], cell[1:] != cell[:-1])))
        cells = cell[starts]
        self.sums[cells] += np.add.reduceat(delta[order], starts, axis=0)
        accounts = cells // self._c
        return accounts[np.concatenate(([True], accounts[1:] != accounts[:-1]))]

    def _resum(self, accounts: I64Array1D, s: I64Array1D) -> None:
        # Exact sums of some accounts from all of their positions ``s``.
        contributions = self._contributions(s)
        self._contrib[s] = contributions
        cells = (accounts[:, None] * self._c + np.arange(self._c)[None, :]).ravel()
        local = np.searchsorted(cells, self._cell[s])
        for f in range(_F + 2):
            self.sums[cells, f] = np.bincount(local, contributions[:, f], cells.size)

    def _refresh_layout(self) -> None:
        # Per-position currency, base currency and (account, currency) cell,
        # and the positions per cell; rebuilt when positions or accounts are added.
        book = self.book
        self._pos_ccy = self.terms.currency_ix[book.pos_instrument]
        self._pos_base = book.base_ix[book.pos_account]
        self._cell = book.pos_account * self._c + self._pos_ccy
        cells = book.size_n * self._c
        self.cell_positions = np.bincount(self._cell, minlength=cells).astype(np.int64)
        self._layout = (book.size_n, book.size_p)

    def _grow(self) -> None:
        book = self.book
        if self._layout == (book.size_n, book.size_p):
            return
        old_cells, old_p = self.sums.shape[0], self._contrib.shape[0]
        self.values.resize(book.size_p)
        self._refresh_layout()
        cells = book.size_n * self._c
        self.sums = np.vstack([self.sums, np.zeros((cells - old_cells, _F + 2))])
        self._contrib = np.vstack([self._contrib, np.zeros((book.size_p - old_p, _F + 2))])

    def _accounts_holding(self, currencies: I64Array1D) -> I64Array1D:
        # Accounts whose totals move when these currencies' rates move: those
        # holding positions or cash in one of them (other than their base), and
        # those whose base is one of them while holding anything foreign.
        book = self.book
        n, c = book.size_n, self._c
        holds = (self.cell_positions.reshape(n, c) > 0) | (book.cash != 0.0)
        foreign = holds.copy()
        foreign[np.arange(n), book.base_ix] = False
        moved = np.zeros(c, dtype=np.bool_)
        moved[currencies] = True
        hit = foreign[:, moved].any(axis=1) | (moved[book.base_ix] & foreign.any(axis=1))
        return np.flatnonzero(hit).astype(np.int64)
