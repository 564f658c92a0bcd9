"""The PriceBook: top of book per instrument as numpy columns.

Dimensions: M = instruments, T = ticks in a batch.

NaN policy: in a ``TickBatch`` NaN means "this tick does not carry the field"
(a trade tick has no bid/ask). Infinite and negative values are rejected. In
the book NaN means "no price yet".

A tick is either a quote (``bid`` and ``ask`` together), a trade (``last``
with an optional ``size``), or both. Ticks in one batch apply in order: when an
instrument appears twice, its later quote and its later trade win.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from pricing.errors import ShapeError
from pricing.types import BoolArray1D, F64Array1D, I64Array1D, U8Array1D

__all__ = ["ApplyResult", "PriceBook", "RejectReason", "TickBatch"]


class RejectReason(IntEnum):
    """Why ``PriceBook.apply`` refused a tick; 0 means accepted.

    When several apply, the lowest code is reported.
    """

    ACCEPTED = 0
    UNKNOWN_INSTRUMENT = 1
    NON_FINITE = 2
    NEGATIVE = 3
    ONE_SIDED = 4
    CROSSED = 5
    EMPTY = 6
    BAD_TIMESTAMP = 7
    OUT_OF_ORDER = 8

    @property
    def label(self) -> str:
        """Lower-case name used in metrics, logs and dead letters."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class TickBatch:
    """A batch of ticks as parallel columns.

    Attributes
    ----------
    instrument_ix : ndarray, shape (T,), int64
        Row in the instrument master; -1 for a symbol the master lacks.
    bid, ask, last, size : ndarray, shape (T,), float64
        NaN where the tick does not carry the field.
    ts_event : ndarray, shape (T,), int64
        Source time, UNIX ns.
    ts_recv : ndarray, shape (T,), int64
        When tickgate received the tick, UNIX ns.
    source_seq : ndarray, shape (T,), int64
        The source's own sequence number (Kafka offset, feed seq); -1 if none.
    """

    instrument_ix: I64Array1D
    bid: F64Array1D
    ask: F64Array1D
    last: F64Array1D
    size: F64Array1D
    ts_event: I64Array1D
    ts_recv: I64Array1D
    source_seq: I64Array1D

    @classmethod
    def from_columns(
        cls,
        instrument_ix: object,
        bid: object,
        ask: object,
        last: object,
        size: object,
        ts_event: object,
        ts_recv: object,
        source_seq: object | None = None,
    ) -> TickBatch:
        """Build a batch, converting dtypes and checking every column has shape (T,)."""
        ix = np.asarray(instrument_ix, dtype=np.int64)
        if ix.ndim != 1:
            raise ShapeError("instrument_ix", (-1,), ix.shape)
        n = ix.shape[0]
        seq = np.full(n, -1, dtype=np.int64) if source_seq is None else source_seq
        batch = cls(
            instrument_ix=ix,
            bid=np.asarray(bid, dtype=np.float64),
            ask=np.asarray(ask, dtype=np.float64),
            last=np.asarray(last, dtype=np.float64),
            size=np.asarray(size, dtype=np.float64),
            ts_event=np.asarray(ts_event, dtype=np.int64),
            ts_recv=np.asarray(ts_recv, dtype=np.int64),
            source_seq=np.asarray(seq, dtype=np.int64),
        )
        for name in ("bid", "ask", "last", "size", "ts_event", "ts_recv", "source_seq"):
            shape = getattr(batch, name).shape
            if shape != (n,):
                raise ShapeError(name, (n,), shape)
        return batch

    @classmethod
    def empty(cls) -> TickBatch:
        """A batch with no ticks."""
        return cls.from_columns(*([()] * 7))

    @classmethod
    def concat(cls, batches: Sequence[TickBatch]) -> TickBatch:
        """Join batches in order into one."""
        if len(batches) == 1:
            return batches[0]
        if not batches:
            return cls.empty()
        return cls(
            instrument_ix=np.concatenate([b.instrument_ix for b in batches]),
            bid=np.concatenate([b.bid for b in batches]),
            ask=np.concatenate([b.ask for b in batches]),
            last=np.concatenate([b.last for b in batches]),
            size=np.concatenate([b.size for b in batches]),
            ts_event=np.concatenate([b.ts_event for b in batches]),
            ts_recv=np.concatenate([b.ts_recv for b in batches]),
            source_seq=np.concatenate([b.source_seq for b in batches]),
        )

    def __len__(self) -> int:
        return int(self.instrument_ix.shape[0])


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What one ``PriceBook.apply`` did.

    Attributes
    ----------
    changed_ix : ndarray, shape (C,), int64
        Sorted unique instruments whose prices changed in this batch.
    rejected_rows : ndarray, shape (R,), int64
        Rows of the batch that were refused.
    reasons : ndarray, shape (R,), uint8
        ``RejectReason`` of each refused row.
    """

    changed_ix: I64Array1D
    rejected_rows: I64Array1D
    reasons: U8Array1D

    @property
    def accepted(self) -> int:
        """Number of instruments updated."""
        return int(self.changed_ix.shape[0])


class PriceBook:
    """Latest top of book per instrument, with validation and staleness.

    Attributes
    ----------
    bid, ask, last, size : ndarray, shape (M,), float64
        Latest values; NaN until the first tick that carries them.
    ts_event, ts_recv : ndarray, shape (M,), int64
        Source and receive time of the latest accepted tick, UNIX ns; 0 if none.
    source_seq : ndarray, shape (M,), int64
        Source sequence number of the latest accepted tick; -1 if none.
    prev_close : ndarray, shape (M,), float64
        Previous close, the reference for day P&L.
    is_stale : ndarray, shape (M,), bool
        True when the instrument has no price, has not ticked within
        ``stale_after_ns``, or its feed is down. Updated by ``apply`` and
        ``refresh_staleness``.
    rejections : ndarray, shape (len(RejectReason),), int64
        Refused ticks counted by reason code (index 0 is unused).
    """

    def __init__(self, prev_close: F64Array1D, *, stale_after_ns: int) -> None:
        prev = np.asarray(prev_close, dtype=np.float64)
        if prev.ndim != 1:
            raise ShapeError("prev_close", (-1,), prev.shape)
        if stale_after_ns <= 0:
            raise ValueError(f"stale_after_ns must be positive, was {stale_after_ns}")
        m = prev.shape[0]
        self.size_m = m
        self.stale_after_ns = stale_after_ns
        self.prev_close = prev.copy()
        self.bid = np.full(m, np.nan)
        self.ask = np.full(m, np.nan)
        self.last = np.full(m, np.nan)
        self.size = np.full(m, np.nan)
        self.ts_event = np.zeros(m, dtype=np.int64)
        self.ts_recv = np.zeros(m, dtype=np.int64)
        self.source_seq = np.full(m, -1, dtype=np.int64)
        self.is_stale = np.ones(m, dtype=np.bool_)
        self.rejections = np.zeros(len(RejectReason), dtype=np.int64)

    def roll_close(self) -> None:
        """Start a new day: the current mid becomes the previous close, where there is one."""
        mid = self.mid()
        self.prev_close = np.where(np.isnan(mid), self.prev_close, mid)

    def has_price(self) -> BoolArray1D:
        """Mask, shape (M,), bool, of instruments with a quote or a trade."""
        has_price: BoolArray1D = np.isnan(self.bid) & np.isnan(self.last)
        np.logical_not(has_price, out=has_price)
        return has_price

    def mid(self) -> F64Array1D:
        """Mid price, shape (M,); the last trade where there is no quote; NaN if neither."""
        mid = (self.bid + self.ask) * 0.5
        return np.where(np.isnan(mid), self.last, mid)

    def validate(self, batch: TickBatch) -> U8Array1D:
        """Return the ``RejectReason`` of every row, shape (T,), uint8; 0 = acceptable."""
        ix = batch.instrument_ix
        bid, ask, last, size = batch.bid, batch.ask, batch.last, batch.size
        known = (ix >= 0) & (ix < self.size_m)
        safe_ix = np.where(known, ix, 0)
        with np.errstate(invalid="ignore"):
            non_finite = np.isinf(bid) | np.isinf(ask) | np.isinf(last) | np.isinf(size)
            negative = (bid < 0) | (ask < 0) | (last < 0) | (size < 0)
            has_bid, has_ask = ~np.isnan(bid), ~np.isnan(ask)
            crossed = has_bid & has_ask & (bid > ask)
        one_sided = has_bid != has_ask
        empty = ~has_bid & np.isnan(last)
        bad_ts = batch.ts_event <= 0
        out_of_order = batch.ts_event < self.ts_event[safe_ix]
        # np.select takes the first matching condition, so the order is the precedence.
        conditions = [
            ~known,
            non_finite,
            negative,
            one_sided,
            crossed,
            empty,
            bad_ts,
            out_of_order,
        ]
        choices = [
            RejectReason.UNKNOWN_INSTRUMENT,
            RejectReason.NON_FINITE,
            RejectReason.NEGATIVE,
            RejectReason.ONE_SIDED,
            RejectReason.CROSSED,
            RejectReason.EMPTY,
            RejectReason.BAD_TIMESTAMP,
            RejectReason.OUT_OF_ORDER,
        ]
        return np.select(conditions, choices, default=0).astype(np.uint8)

    def apply(self, batch: TickBatch) -> ApplyResult:
        """Apply a batch of ticks and return which instruments changed.

        Refused rows are counted in ``rejections`` and reported in the result;
        they change nothing.
        """
        reasons = self.validate(batch)
        ok = reasons == 0
        rejected_rows = np.flatnonzero(~ok)
        if rejected_rows.size:
            self.rejections += np.bincount(reasons[rejected_rows], minlength=len(RejectReason))
        ok_rows = np.flatnonzero(ok)
        if ok_rows.size == 0:
            return ApplyResult(
                changed_ix=np.empty(0, dtype=np.int64),
                rejected_rows=rejected_rows,
                reasons=reasons[rejected_rows],
            )
        ix = batch.instrument_ix
        quote_rows = _last_row_per_instrument(
            ix, ok_rows[~np.isnan(batch.bid[ok_rows])], self.size_m
        )
        trade_rows = _last_row_per_instrument(
            ix, ok_rows[~np.isnan(batch.last[ok_rows])], self.size_m
        )
        any_rows = _last_row_per_instrument(ix, ok_rows, self.size_m)

        quote_ix = ix[quote_rows]
        self.bid[quote_ix] = batch.bid[quote_rows]
        self.ask[quote_ix] = batch.ask[quote_rows]
        trade_ix = ix[trade_rows]
        self.last[trade_ix] = batch.last[trade_rows]
        self.size[trade_ix] = batch.size[trade_rows]
        changed = ix[any_rows]
        self.ts_event[changed] = batch.ts_event[any_rows]
        self.ts_recv[changed] = batch.ts_recv[any_rows]
        self.source_seq[changed] = batch.source_seq[any_rows]
        self.is_stale[changed] = False
        return ApplyResult(
            changed_ix=changed,
            rejected_rows=rejected_rows,
            reasons=reasons[rejected_rows],
        )

    def refresh_staleness(self, now_ns: int, *, is_feed_up: bool) -> I64Array1D:
        """Recompute ``is_stale`` and return the instruments whose flag flipped.

        Returns
        -------
        ndarray, shape (F,), int64
            Sorted indices whose staleness changed.
        """
        if is_feed_up:
            stale = ~self.has_price() | (now_ns - self.ts_recv > self.stale_after_ns)
        else:
            stale = np.ones(self.size_m, dtype=np.bool_)
        flipped = np.flatnonzero(stale != self.is_stale)
        self.is_stale = stale
        return flipped


def _last_row_per_instrument(ix: I64Array1D, rows: I64Array1D, m: int) -> I64Array1D:
    # Rows in `rows` are ascending. Take, per instrument, the latest of them;
    # the result is ordered by instrument. An unbuffered maximum per
    # instrument is linear, where a sort-based unique is not.
    if rows.size == 0:
        return rows
    last = np.full(m, -1, dtype=np.int64)
    np.maximum.at(last, ix[rows], rows)
    return last[last >= 0]
