"""The portfolio engine: incremental P&L on every tick batch, full revaluation on demand.

Dimensions: M = instruments, P = positions, N = accounts, C = currencies,
F = summed columns (``_SUMS``), K = per-instrument vectors (``SUM_VECTORS``),
A = accounts asked for, S = positions touched.

**Sums per cell.** Totals are kept per (account, currency) cell, in that
currency: row ``n * C + c`` of each block of ``_BLOCKS``, one column per sum,
the last block counting positions unpriced and stale. Each block is the
output of one product of the full revaluation, kept as it comes (no copy).
Market value, unrealised and day P&L share their price-based part
(``sum(q m x mark)``), which is stored once; they are told apart when read.
Totals convert to the account's base currency when read, at live rates, so an
FX move touches no position: it only marks the accounts holding a currency
that moved.

**Linear in instrument vectors.** Every sum is a sum over positions of a
position coefficient times a per-instrument vector (``_TERMS``), e.g.
unrealised P&L is ``sum(q m x mark) - sum(q m avg_cost x priced)``.

- An incremental update is, for the positions of the changed instruments,
  the coefficients times the change of the vectors, summed per cell.
- A full revaluation recomputes every sum from the positions and uses the
  algebra. Coefficients are stored in cell order, so the price-free sums
  (costs, day-trade values, realised P&L, commissions) are one sparse
  product of a cell x position segment matrix with them. ``q m`` and
  ``|q m|`` are the data of sparse cell x instrument matrices (one entry per
  position, in that same order), so the price-based sums are two sparse
  products over the vectors. Two small corrections cover the positions of
  unpriced instruments and those traded today (whose opening quantity
  differs).

After ``PriceBook.apply``, ``on_prices_changed`` revalues the changed
instruments and the options on them; ``revalue_all`` recomputes every sum
exactly (startup, reconciliation); tests check that both agree. Options are
also repriced for the passage of time by ``revalue_options``, on the risk
cadence.

**Every change is listed.** Each update returns a ``PortfolioChange`` naming
every position whose values moved and every account whose totals moved, so
that the rows a client holds always sum to the totals it was sent. A full
revaluation (including the one a large batch falls back to) re-marks every
instrument at ``now_ns``, options for the time that passed too: it finds
what moved by comparing the marks before and after, rather than trusting
the caller's list.

Status (fail closed): a position is ``UNPRICED`` when its price or the FX rate
from its currency to the account's base is missing, and ``STALE`` when
either is stale. Unpriced positions add nothing to the price-based sums, an
unpriced rate takes its whole currency out of the totals, and the account's
status and counts say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import scipy.sparse as sp

from portfolio.fx import FxTable
from portfolio.positions import PositionBook, gather_slices
from portfolio.types import CashMovement, Fill, Status
from portfolio.valuation import (
    SUM_VECTORS,
    InstrumentMarks,
    InstrumentTerms,
    PositionValues,
    position_values,
    sum_vectors,
)
from pricing.pricebook import PriceBook
from pricing.types import BoolArray1D, F64Array1D, F64Array2D, I64Array1D, U8Array1D

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

_BLOCKS: Final = (
    ("qm_mark", "net_exposure", "gamma", "vega", "theta", "rho", "open_prev"),
    ("cost", "margined_cost", "trade_value", "realised_pnl", "commission"),
    ("gross_exposure",),
    ("unpriced", "stale"),
)
"""Cell sums, in blocks: the price-based sums (one sparse product of q x m
with the instrument vectors): sum(q m mark), exposure, greeks and
sum(open m prev_mark); the price-free sums (one sparse product with the
coefficients): sum(q m avg_cost) of priced positions, the same of margined
ones, today's traded value of priced positions, realised P&L, commissions;
the gross exposure sum(|exposure|); and the counts of unpriced and stale
positions. Market value is ``qm_mark - margined_cost``, unrealised P&L
``qm_mark - cost`` and day P&L ``qm_mark - open_prev - trade_value``."""
_SUMS: Final = tuple(name for block in _BLOCKS for name in block)
_COL = {name: i for i, name in enumerate(_SUMS)}
_AT = {name: (b, j) for b, block in enumerate(_BLOCKS) for j, name in enumerate(block)}
_W: Final = len(_SUMS)
_V = {name: i for i, name in enumerate(SUM_VECTORS)}

_COEFFICIENTS: Final = (
    "qm",
    "cost",
    "margined_cost",
    "open",
    "trade_value",
    "abs_qm",
    "one",
    "realised",
    "commission",
)
"""Per position: q x m; q x m x avg_cost; the same for margined instruments
only; day_open_quantity x m; day_trade_value x m; |q x m|; 1; realised P&L;
commissions."""

# (sum column, coefficient, vector, sign): the sums as linear combinations.
_TERMS: Final = (
    (_COL["qm_mark"], "qm", "mark", 1.0),
    (_COL["margined_cost"], "margined_cost", "priced", 1.0),
    (_COL["cost"], "cost", "priced", 1.0),
    (_COL["open_prev"], "open", "prev_mark", 1.0),
    (_COL["trade_value"], "trade_value", "priced", 1.0),
    (_COL["gross_exposure"], "abs_qm", "abs_delta_exposure", 1.0),
    (_COL["net_exposure"], "qm", "delta_exposure", 1.0),
    (_COL["gamma"], "qm", "gamma", 1.0),
    (_COL["vega"], "qm", "vega", 1.0),
    (_COL["theta"], "qm", "theta", 1.0),
    (_COL["rho"], "qm", "rho", 1.0),
    (_COL["realised_pnl"], "realised", "constant", 1.0),
    (_COL["commission"], "commission", "constant", 1.0),
    (_COL["unpriced"], "one", "unpriced", 1.0),
    (_COL["stale"], "one", "stale", 1.0),
)


# The terms as index arrays and a (terms x sums) matrix, so a batch's change is
# (coefficients[:, _TERM_COEF] * vector_change[:, _TERM_VEC]) @ _TERM_TO_SUM.
_COEF_COL = {name: i for i, name in enumerate(_COEFFICIENTS)}
# The full revaluation's sparse products, and the price-free cell sums.
_QM_VECTORS = [
    _V[v] for v in ("mark", "delta_exposure", "gamma", "vega", "theta", "rho", "prev_mark")
]
_STATIC = ("cost", "margined_cost", "trade_value", "realised", "commission")
"""The coefficients summed into the price-free block, in its column order."""
_FULL_REVALUATION_SHARE: Final = 0.08
"""Above this share of all positions touched, a batch revalues everything."""
_TERM_COEF = np.array([_COEF_COL[t[1]] for t in _TERMS])
_TERM_VEC = np.array([_V[t[2]] for t in _TERMS])
_TERM_TO_SUM = np.zeros((len(_TERMS), _W))
_TERM_TO_SUM[np.arange(len(_TERMS)), [t[0] for t in _TERMS]] = [t[3] for t in _TERMS]


def _runs(starts: I64Array1D, counts: I64Array1D) -> I64Array1D:
    # Concatenated ranges [starts[i], starts[i] + counts[i]), without a loop.
    total = int(counts.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    shift = np.repeat(starts - (np.cumsum(counts) - counts), counts)
    return shift + np.arange(total, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class PortfolioChange:
    """What one update touched.

    Attributes
    ----------
    accounts : ndarray, shape (A,), int64
        Distinct account rows whose totals changed (in no particular order).
    positions : ndarray, shape (S,), int64
        Position rows whose values changed (in their instrument's currency).
    currencies : ndarray, shape (K,), int64
        Currencies whose USD rate or its status moved: every position in one
        of them, or held by an account based in one, converts differently.
    """

    accounts: I64Array1D
    positions: I64Array1D
    currencies: I64Array1D = field(default_factory=lambda: np.empty(0, dtype=np.int64))


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
    base_ix : ndarray, shape (A,), int64
        Each account's base currency.
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
        self.option_ix: I64Array1D = np.flatnonzero(terms.is_option).astype(np.int64)
        self._is_rate = np.zeros(m, dtype=np.bool_)
        self._is_rate[fx.rate_instruments] = True
        self._scratch = np.zeros(m, dtype=np.bool_)  # a set of instruments, kept all False
        under = terms.underlying_ix[self.option_ix]
        order = np.argsort(under, kind="stable")
        self._options_by_underlying = (
            self.option_ix[order],
            np.concatenate(([0], np.cumsum(np.bincount(under, minlength=m)))).astype(np.int64),
        )
        self.prev_mark = self._prev_marks(now_ns)
        self.usd_per: F64Array1D | None = None
        self.usd_status = np.zeros(self._c, dtype=np.uint8)
        self._layout: tuple[int, int] = (-1, -1)
        self.revalue_all(now_ns)

    # --- updates ------------------------------------------------------------------

    def revalue_all(self, now_ns: int) -> PortfolioChange:
        """Revalue every instrument and re-sum every account exactly.

        Returns the change: the positions of every instrument whose mark,
        greeks or status moved (options re-marked for the time since they
        were last valued included), the currencies whose rate moved, and
        the accounts either moves.
        """
        moved, fx_moved = self._revalue_everything(now_ns)
        return self._change_of(moved, fx_moved)

    def _revalue_everything(self, now_ns: int) -> tuple[I64Array1D, I64Array1D]:
        # The full revaluation; returns the instruments whose marks moved and
        # the currencies whose rate moved.
        mid, stale = self.prices.mid(), self.prices.is_stale
        before = self.marks.copy()
        fx_moved = self._update_fx(mid, stale)
        self.marks.update(self.terms, np.arange(mid.shape[0]), mid, stale, now_ns)
        self._vectors = sum_vectors(self.marks, self.prev_mark)
        if self._layout != (self.book.size_n, self.book.size_p):
            self._refresh_layout()
        v = self._vectors
        # Each block straight from its product: no copies into a combined array.
        price = np.asarray(self._qm_matrix @ v[:, _QM_VECTORS])
        static = np.asarray(self._segments @ self._price_free)
        gross = np.asarray(self._abs_qm_matrix @ v[:, _V["abs_delta_exposure"]]).reshape(-1, 1)
        flags = np.zeros((price.shape[0], 2))
        # C-contiguous, so each block's flat view is writable storage.
        self._blocks: list[F64Array2D] = [
            np.ascontiguousarray(block) for block in (price, static, gross, flags)
        ]
        coefficients = self._coefficients
        # Traded today: the day's base uses the opening quantity, not the current one.
        t = self._traded
        if t.size:
            rank = self._nonzero_of[t]
            open_gap = coefficients[rank, _COEF_COL["qm"]] - coefficients[rank, _COEF_COL["open"]]
            prev_t = v[self.book.pos_instrument[t], _V["prev_mark"]]
            np.subtract.at(self._column("open_prev"), self._cell[t], open_gap * prev_t)
        # Unpriced: the price-free sums above include them, the totals must not.
        u = self.book.positions_of_instruments(np.flatnonzero(v[:, _V["unpriced"]] > 0))
        if u.size:
            cell_u = self._cell[u]
            rank = self._nonzero_of[u]
            for column in ("margined_cost", "cost", "trade_value"):
                np.subtract.at(self._column(column), cell_u, coefficients[rank, _COEF_COL[column]])
            np.add.at(self._column("unpriced"), cell_u, 1.0)
        stale_positions = self.book.positions_of_instruments(np.flatnonzero(v[:, _V["stale"]] > 0))
        if stale_positions.size:
            np.add.at(self._column("stale"), self._cell[stale_positions], 1.0)
        return self.marks.moved_since(before), fx_moved

    def _change_of(self, instruments: I64Array1D, fx_moved: I64Array1D) -> PortfolioChange:
        # The positions of ``instruments`` (sorted, distinct), and the accounts
        # holding them or moved by the rates of ``fx_moved``.
        positions = self.book.positions_of_instruments(instruments)
        hit = self._holds(fx_moved) if fx_moved.size else np.zeros(self.book.size_n, np.bool_)
        hit[self.book.pos_account[positions]] = True
        return PortfolioChange(np.flatnonzero(hit).astype(np.int64), positions, fx_moved)

    def on_prices_changed(self, changed_ix: I64Array1D, now_ns: int) -> PortfolioChange:
        """Revalue what the changed instruments (sorted, unique) affect."""
        mid, stale = self.prices.mid(), self.prices.is_stale
        # Rates first: a large batch may fall back to ``revalue_all``, which
        # reads them too and would hide which currencies moved.
        fx_moved = np.empty(0, dtype=np.int64)
        if self._is_rate[changed_ix].any():
            fx_moved = self._update_fx(mid, stale)
        # The changed instruments and the options on them, sorted and distinct.
        self._scratch[changed_ix] = True
        self._scratch[self._options_on(changed_ix)] = True
        instruments = np.flatnonzero(self._scratch).astype(np.int64)
        self._scratch[instruments] = False
        change = self._reprice(instruments, mid, stale, now_ns)
        if fx_moved.size == 0:
            return change
        hit = self._holds(fx_moved)
        hit[change.accounts] = True
        currencies = np.union1d(fx_moved, change.currencies).astype(np.int64)
        return PortfolioChange(np.flatnonzero(hit).astype(np.int64), change.positions, currencies)

    def start_day(self, now_ns: int) -> None:
        """Roll to a new trading day and revalue everything.

        Today's opening quantities become the current ones, and day P&L is
        measured from the PriceBook's previous closes as they stand now.
        Positions change only through the engine (``apply_fills``, this, or
        a fresh engine), so its sums always match the book.
        """
        self.book.start_day()
        self.prev_mark = self._prev_marks(now_ns)
        if self._layout != (self.book.size_n, self.book.size_p):
            self._refresh_layout()
        else:
            self._set_coefficients(np.arange(self.book.size_p, dtype=np.int64))
        self.revalue_all(now_ns)

    def revalue_options(self, now_ns: int) -> PortfolioChange:
        """Reprice every option at ``now_ns`` (time decay) and update the sums."""
        mid, stale = self.prices.mid(), self.prices.is_stale
        return self._reprice(self.option_ix, mid, stale, now_ns)

    def apply_fills(self, fills: list[Fill]) -> PortfolioChange:
        """Apply fills (replays are ignored) and re-sum the accounts they touched."""
        applied = [result for fill in fills if (result := self.book.apply_fill(fill)) is not None]
        if not applied:
            return PortfolioChange(np.empty(0, np.int64), np.empty(0, np.int64))
        accounts = np.unique(np.array([n for n, _ in applied], dtype=np.int64))
        if self._layout != (self.book.size_n, self.book.size_p):
            self._refresh_layout()  # new positions or accounts: rebuild the matrices
            self._grow_sums()
        s = self.book.positions_of_accounts(accounts)
        self._set_coefficients(s)
        self._resum(accounts, s)
        rows = np.unique(np.array([p for _, p in applied], dtype=np.int64))
        return PortfolioChange(accounts, rows)

    def apply_cash(self, movements: list[CashMovement]) -> PortfolioChange:
        """Apply cash movements (replays are ignored); the accounts' totals change."""
        applied = [n for m in movements if (n := self.book.apply_cash(m)) is not None]
        return PortfolioChange(
            np.unique(np.array(applied, dtype=np.int64)), np.empty(0, dtype=np.int64)
        )

    # --- outputs --------------------------------------------------------------------

    def position_values(self, positions: I64Array1D) -> PositionValues:
        """Values of some positions, in their instruments' currencies; NaN where unpriced."""
        book = self.book
        return position_values(
            book.pos_instrument[positions],
            book.column("quantity")[positions],
            book.column("avg_cost")[positions],
            book.column("day_open_quantity")[positions],
            book.column("day_trade_value")[positions],
            self.terms,
            self.marks,
            self.prev_mark,
        )

    def fx_to_base(self, positions: I64Array1D) -> tuple[F64Array1D, U8Array1D]:
        """Rate and status from each position's currency to its account's base, shape (S,)."""
        ccy = self._pos_ccy[positions]
        base = self._pos_base[positions]
        return self.fx_rate[ccy, base], self.fx_status[ccy, base]

    def position_status(self, positions: I64Array1D) -> U8Array1D:
        """The worse of each position's price and FX statuses, shape (S,)."""
        _, fx_status = self.fx_to_base(positions)
        price_status = self.marks.status[self.book.pos_instrument[positions]]
        return np.maximum(price_status, fx_status)

    def totals(self, accounts: I64Array1D) -> AccountTotals:
        """Totals of ``accounts`` (shape (A,)) in their base currencies."""
        a = accounts.size
        c = self._c
        base = self.book.base_ix[accounts]
        rate = self.fx_rate[:, base].T  # (A, C): currency -> the account's base
        fx_status = self.fx_status[:, base].T
        cells = accounts[:, None] * c + np.arange(c)[None, :]
        sums = np.concatenate([block[cells] for block in self._blocks], axis=-1)  # (A, C, W)
        flags = np.rint(sums[:, :, _COL["unpriced"] :]).astype(np.int64)  # unpriced, stale
        sums = sums[:, :, : _COL["unpriced"]]
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

        qm_mark = s[:, _COL["qm_mark"]]
        mv = qm_mark - s[:, _COL["margined_cost"]]
        unrealised = qm_mark - s[:, _COL["cost"]]
        equity = cash_base + mv
        gross = s[:, _COL["gross_exposure"]]
        with np.errstate(divide="ignore", invalid="ignore"):
            leverage = np.where(equity > 0, gross / equity, np.nan)
        columns = {
            "cash": cash_base,
            "market_value": mv,
            "equity": equity,
            "unrealised_pnl": unrealised,
            "realised_pnl": s[:, _COL["realised_pnl"]],
            "commission": s[:, _COL["commission"]],
            "day_pnl": qm_mark - s[:, _COL["open_prev"]] - s[:, _COL["trade_value"]],
            "total_pnl": unrealised + s[:, _COL["realised_pnl"]] - s[:, _COL["commission"]],
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

    def _reprice(
        self, instruments: I64Array1D, mid: F64Array1D, stale: np.ndarray, now_ns: int
    ) -> PortfolioChange:
        # New marks for ``instruments``; the sums of the cells holding them move
        # by coefficient x (new vector - old vector).
        self.marks.update(self.terms, instruments, mid, stale, now_ns)
        old = self._vectors[instruments]
        new = sum_vectors(self.marks, self.prev_mark, rows=instruments)
        self._vectors[instruments] = new
        # Work in instrument-major order, where each instrument's positions are
        # one contiguous run (``_by_instrument``), not scattered across the book.
        order, ptr_all = self._by_instrument
        starts = ptr_all[instruments]
        counts = ptr_all[instruments + 1] - starts
        ranks = _runs(starts, counts)
        s = order[ranks]
        if s.size == 0:
            return PortfolioChange(s, s)
        cell = self._cell_by_instrument[ranks]
        hit = self._account_mask
        hit[cell // self._c] = True
        accounts = np.flatnonzero(hit).astype(np.int64)
        hit[accounts] = False
        if s.size > _FULL_REVALUATION_SHARE * self.book.size_p:
            # Touching this much, one exact full revaluation is cheaper. It
            # re-marks every instrument (options for the time that passed, any
            # rate that moved), so what it changed is more than ``s``: the
            # positions of both sets of instruments, merged as a mask.
            moved, fx_moved = self._revalue_everything(now_ns)
            scratch = self._scratch
            scratch[instruments] = True
            scratch[moved] = True
            both = np.flatnonzero(scratch).astype(np.int64)
            scratch[both] = False
            return self._change_of(both, fx_moved)
        change = new - old  # (I, K)
        ptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        everyone = np.arange(s.size, dtype=np.int64)
        # Each distinct (coefficient, vector) product once, over only the
        # positions whose instrument moved that vector (a plain price tick moves
        # the mark and the exposures, not the greeks). The products of a block
        # go into its flat (contiguous) storage in one unbuffered add.
        gathered: dict[str, F64Array1D] = {}
        products: dict[tuple[str, int], tuple[I64Array1D, F64Array1D] | None] = {}
        into: dict[int, list[tuple[I64Array1D, F64Array1D]]] = {}
        for col, name, vector, sign in _TERMS:
            k = _V[vector]
            key = (name, k)
            if key not in products:
                moved = np.flatnonzero(change[:, k])
                if moved.size == 0:
                    products[key] = None
                    continue
                if name not in gathered:
                    coefficient = self._coefficients_by_instrument[:, _COEF_COL[name]]
                    gathered[name] = coefficient[ranks]
                if moved.size == instruments.size:
                    products[key] = (cell, gathered[name] * np.repeat(change[:, k], counts))
                else:
                    rows = gather_slices(everyone, ptr, moved.astype(np.int64))
                    per_row = np.repeat(change[moved, k], counts[moved])
                    products[key] = (cell[rows], gathered[name][rows] * per_row)
            product = products[key]
            if product is not None:
                b, j = _AT[_SUMS[col]]
                width = self._blocks[b].shape[1]
                values = product[1] if sign > 0 else -product[1]
                into.setdefault(b, []).append((product[0] * width + j, values))
        for b, parts in into.items():
            flat = self._blocks[b].reshape(-1)  # a view: blocks are C-contiguous
            np.add.at(
                flat, np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
            )
        return PortfolioChange(accounts, s)

    def _column(self, name: str) -> F64Array1D:
        # A writable view of one sum's column.
        b, j = _AT[name]
        return self._blocks[b][:, j]

    def _resum(self, accounts: I64Array1D, s: I64Array1D) -> None:
        # Exact sums of some accounts from all of their positions ``s``.
        book = self.book
        cells = (accounts[:, None] * self._c + np.arange(self._c)[None, :]).ravel()
        local = np.searchsorted(cells, self._cell[s])
        vectors = self._vectors[book.pos_instrument[s]][:, _TERM_VEC]
        coefficients = self._coefficients[self._nonzero_of[s]]
        contribution = (coefficients[:, _TERM_COEF] * vectors) @ _TERM_TO_SUM
        for col, name in enumerate(_SUMS):
            self._column(name)[cells] = np.bincount(local, contribution[:, col], cells.size)

    def _refresh_layout(self) -> None:
        # Cells, coefficients and the sparse cell x instrument matrices; rebuilt
        # when positions or accounts are added (fills on existing positions only
        # rewrite coefficients in place).
        book = self.book
        p, m = book.size_p, self.terms.multiplier.shape[0]
        self._pos_ccy = self.terms.currency_ix[book.pos_instrument]
        self._pos_base = book.base_ix[book.pos_account]
        self._cell = book.pos_account * self._c + self._pos_ccy
        cells = book.size_n * self._c
        self.cell_positions = np.bincount(self._cell, minlength=cells).astype(np.int64)
        order = np.lexsort((book.pos_instrument, self._cell))
        self._nonzero_of = np.empty(p, dtype=np.int64)
        self._nonzero_of[order] = np.arange(p)
        indptr = np.zeros(cells + 1, dtype=np.int64)
        np.cumsum(self.cell_positions, out=indptr[1:])
        indices = book.pos_instrument[order]
        self._indptr = indptr
        # Coefficients in cell order (row ``_nonzero_of[p]`` for position ``p``),
        # the order of the sparse matrices' entries.
        self._coefficients = np.zeros((p, len(_COEFFICIENTS)), order="F")
        # Instrument-major copies for the incremental path (see _reprice).
        self._by_instrument = book.instrument_index()
        self._rank_by_instrument = np.empty(p, dtype=np.int64)
        self._rank_by_instrument[self._by_instrument[0]] = np.arange(p)
        self._cell_by_instrument = self._cell[self._by_instrument[0]]
        self._coefficients_by_instrument = np.zeros((p, len(_COEFFICIENTS)), order="F")
        self._cell_slot = np.zeros(cells, dtype=np.int64)
        self._account_mask = np.zeros(book.size_n, dtype=np.bool_)
        self._price_free = np.zeros((p, len(_STATIC)))  # row-major, for the product
        self._segments = sp.csr_matrix(
            (np.ones(p), np.arange(p, dtype=np.int64), indptr), shape=(cells, p)
        )
        self._qm_matrix = sp.csr_matrix((np.zeros(p), indices, indptr), shape=(cells, m))
        self._abs_qm_matrix = sp.csr_matrix((np.zeros(p), indices, indptr), shape=(cells, m))
        self._set_coefficients(np.arange(p, dtype=np.int64))
        self._layout = (book.size_n, p)

    def _set_coefficients(self, s: I64Array1D) -> None:
        book = self.book
        instrument = book.pos_instrument[s]
        m = self.terms.multiplier[instrument]
        qm = book.column("quantity")[s] * m
        cost = qm * book.column("avg_cost")[s]
        values = {
            "qm": qm,
            "cost": cost,
            "margined_cost": np.where(self.terms.is_margined[instrument], cost, 0.0),
            "open": book.column("day_open_quantity")[s] * m,
            "trade_value": book.column("day_trade_value")[s] * m,
            "abs_qm": np.abs(qm),
            "one": np.ones(s.size),
            "realised": book.column("realised_pnl")[s],
            "commission": book.column("commission")[s],
        }
        by_cell = self._nonzero_of[s]
        by_instrument = self._rank_by_instrument[s]
        for name, value in values.items():
            self._coefficients[by_cell, _COEF_COL[name]] = value
            self._coefficients_by_instrument[by_instrument, _COEF_COL[name]] = value
        for j, name in enumerate(_STATIC):
            self._price_free[by_cell, j] = values[name]
        self._qm_matrix.data[by_cell] = values["qm"]
        self._abs_qm_matrix.data[by_cell] = values["abs_qm"]
        quantity = book.column("quantity")
        self._traded = np.flatnonzero(quantity != book.column("day_open_quantity")).astype(np.int64)

    def _grow_sums(self) -> None:
        cells = self.book.size_n * self._c
        for b, block in enumerate(self._blocks):
            if block.shape[0] < cells:
                extra = np.zeros((cells - block.shape[0], block.shape[1]))
                self._blocks[b] = np.vstack([block, extra])

    def _holds(self, currencies: I64Array1D) -> BoolArray1D:
        # Marks (shape (N,)) the accounts whose totals move when these
        # currencies' rates move: those holding positions or cash in one of
        # them (other than their base), and those whose base is one of them
        # while holding anything foreign.
        book = self.book
        n, c = book.size_n, self._c
        holds = (self.cell_positions.reshape(n, c) > 0) | (book.cash != 0.0)
        foreign = holds.copy()
        foreign[np.arange(n), book.base_ix] = False
        moved = np.zeros(c, dtype=np.bool_)
        moved[currencies] = True
        hit = foreign[:, moved].any(axis=1) | (moved[book.base_ix] & foreign.any(axis=1))
        return np.asarray(hit, dtype=np.bool_)
