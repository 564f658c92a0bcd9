"""Scalar reference twin of ``PriceBook.validate`` and ``PriceBook.apply``.

Dimensions: M = instruments, T = ticks in a batch.

Slow and obvious on purpose: plain lists for the book, one Python loop over the
ticks in batch order, one ``if`` per rule in ``RejectReason`` order. numpy is
touched only to read the batch columns (``tolist``). The rules, from the
``pricing.pricebook`` docstring:

- A row is refused for the first of: unknown instrument, an infinite field
  (NaN means "absent", not "non-finite"), a negative field, a one-sided quote
  (bid xor ask), a crossed quote (bid > ask), no quote and no last, a
  ``ts_event <= 0``, or a ``ts_event`` older than the book's ``ts_event`` for
  that instrument as it stood *before* the batch.
- Accepted rows apply in order, so an instrument's later quote and its later
  trade win; ``ts_event``, ``ts_recv`` and ``source_seq`` come from its latest
  accepted row, and it stops being stale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pricing.pricebook import RejectReason, TickBatch

__all__ = ["ReferenceApplyResult", "ReferencePriceBook", "ReferenceTick", "reference_ticks"]


@dataclass(frozen=True, slots=True)
class ReferenceTick:
    """One row of a batch as Python scalars."""

    instrument_ix: int
    bid: float
    ask: float
    last: float
    size: float
    ts_event: int
    ts_recv: int
    source_seq: int


@dataclass(frozen=True, slots=True)
class ReferenceApplyResult:
    """What one ``ReferencePriceBook.apply`` did, as Python lists."""

    changed_ix: list[int]
    rejected_rows: list[int]
    reasons: list[int]


def reference_ticks(batch: TickBatch) -> list[ReferenceTick]:
    """Read a batch into a list of scalar rows, in batch order."""
    columns = zip(
        batch.instrument_ix.tolist(),
        batch.bid.tolist(),
        batch.ask.tolist(),
        batch.last.tolist(),
        batch.size.tolist(),
        batch.ts_event.tolist(),
        batch.ts_recv.tolist(),
        batch.source_seq.tolist(),
        strict=True,
    )
    return [ReferenceTick(*row) for row in columns]


class ReferencePriceBook:
    """Top of book per instrument held in Python lists."""

    def __init__(self, size_m: int) -> None:
        self.size_m = size_m
        self.bid = [math.nan] * size_m
        self.ask = [math.nan] * size_m
        self.last = [math.nan] * size_m
        self.size = [math.nan] * size_m
        self.ts_event = [0] * size_m
        self.ts_recv = [0] * size_m
        self.source_seq = [-1] * size_m
        self.is_stale = [True] * size_m
        self.rejections = [0] * len(RejectReason)

    def reason(self, tick: ReferenceTick) -> RejectReason:
        """The reason the current book would refuse ``tick``; ``ACCEPTED`` if none."""
        if not 0 <= tick.instrument_ix < self.size_m:
            return RejectReason.UNKNOWN_INSTRUMENT
        fields = (tick.bid, tick.ask, tick.last, tick.size)
        if any(math.isinf(value) for value in fields):
            return RejectReason.NON_FINITE
        if any(value < 0 for value in fields if not math.isnan(value)):
            return RejectReason.NEGATIVE
        has_bid = not math.isnan(tick.bid)
        has_ask = not math.isnan(tick.ask)
        if has_bid != has_ask:
            return RejectReason.ONE_SIDED
        if has_bid and tick.bid > tick.ask:
            return RejectReason.CROSSED
        if not has_bid and math.isnan(tick.last):
            return RejectReason.EMPTY
        if tick.ts_event <= 0:
            return RejectReason.BAD_TIMESTAMP
        if tick.ts_event < self.ts_event[tick.instrument_ix]:
            return RejectReason.OUT_OF_ORDER
        return RejectReason.ACCEPTED

    def validate(self, batch: TickBatch) -> list[int]:
        """Reason code of every row, judged against the book before the batch."""
        return [int(self.reason(tick)) for tick in reference_ticks(batch)]

    def apply(self, batch: TickBatch) -> ReferenceApplyResult:
        """Apply the accepted rows in order; count and report the refused ones."""
        ticks = reference_ticks(batch)
        # Every row is judged before any row applies: out-of-order compares with
        # the book as it stood before the batch, not with earlier rows of it.
        reasons = self.validate(batch)
        changed: set[int] = set()
        rejected_rows: list[int] = []
        rejected_reasons: list[int] = []
        for row, (tick, reason) in enumerate(zip(ticks, reasons, strict=True)):
            if reason != RejectReason.ACCEPTED:
                self.rejections[reason] += 1
                rejected_rows.append(row)
                rejected_reasons.append(reason)
                continue
            ix = tick.instrument_ix
            if not math.isnan(tick.bid):
                self.bid[ix] = tick.bid
                self.ask[ix] = tick.ask
            if not math.isnan(tick.last):
                self.last[ix] = tick.last
                self.size[ix] = tick.size
            self.ts_event[ix] = tick.ts_event
            self.ts_recv[ix] = tick.ts_recv
            self.source_seq[ix] = tick.source_seq
            self.is_stale[ix] = False
            changed.add(ix)
        return ReferenceApplyResult(
            changed_ix=sorted(changed),
            rejected_rows=rejected_rows,
            reasons=rejected_reasons,
        )
