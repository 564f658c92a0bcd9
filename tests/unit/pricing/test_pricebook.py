"""PriceBook validation, application, staleness and TickBatch construction.

Expected prices are typed in by hand; the property test checks the vectorised
book against the scalar twin in ``tests/reference/pricebook.py``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing.errors import ShapeError
from pricing.pricebook import PriceBook, RejectReason, TickBatch
from tests.builders import NS, make_batch
from tests.reference.pricebook import ReferencePriceBook

M = 3
STALE_AFTER_NS = 5 * NS
T0_NS = 1_800_000_000 * NS
INF = math.inf
NAN = math.nan
BOOK_FIELDS = ("bid", "ask", "last", "size", "ts_event", "ts_recv", "source_seq", "is_stale")


def new_book() -> PriceBook:
    return PriceBook(np.array([100.0, 50.0, 10.0]), stale_after_ns=STALE_AFTER_NS)


def primed_book() -> PriceBook:
    # Instrument 0 has a quote and a trade at ts_event 5_000; 1 and 2 have nothing.
    book = new_book()
    book.apply(make_batch([0], bid=[99.0], ask=[101.0], last=[100.0], size=[10.0], ts_event=5_000))
    return book


def book_state(book: PriceBook) -> dict[str, np.ndarray]:
    return {name: getattr(book, name).copy() for name in BOOK_FIELDS}


def assert_book_unchanged(book: PriceBook, before: dict[str, np.ndarray]) -> None:
    for name in BOOK_FIELDS:
        # assert_array_equal treats NaN as equal to NaN, which "no price yet" needs.
        np.testing.assert_array_equal(getattr(book, name), before[name], err_msg=name)


def counts_of(reason: RejectReason) -> list[int]:
    counts = [0] * len(RejectReason)
    counts[reason] = 1
    return counts


@pytest.mark.parametrize("ix", [-1, M, 99])
def test_apply_unknown_instrument_is_rejected_and_counted(ix: int) -> None:
    book = primed_book()
    before = book_state(book)
    batch = make_batch([ix], bid=[1.0], ask=[2.0], ts_event=9_000)

    result = book.apply(batch)

    assert result.reasons.tolist() == [RejectReason.UNKNOWN_INSTRUMENT]
    assert book.rejections.tolist() == counts_of(RejectReason.UNKNOWN_INSTRUMENT)
    assert_book_unchanged(book, before)


NON_FINITE_FIELDS = {
    "bid_inf": {"bid": [INF], "ask": [101.0]},
    "ask_inf": {"bid": [99.0], "ask": [INF]},
    "bid_minus_inf": {"bid": [-INF], "ask": [101.0]},
    "last_inf": {"last": [INF], "size": [1.0]},
    "size_inf": {"last": [100.0], "size": [INF]},
}
NEGATIVE_FIELDS = {
    "bid": {"bid": [-1.0], "ask": [101.0]},
    "bid_and_ask": {"bid": [-2.0], "ask": [-1.0]},
    "last": {"last": [-100.0], "size": [1.0]},
    "size": {"last": [100.0], "size": [-1.0]},
}
ONE_SIDED_FIELDS = {
    "bid_only": {"bid": [99.0]},
    "ask_only": {"ask": [101.0]},
    "bid_with_trade": {"bid": [99.0], "last": [100.0], "size": [1.0]},
}


@pytest.mark.parametrize("fields", NON_FINITE_FIELDS.values(), ids=NON_FINITE_FIELDS.keys())
def test_apply_infinite_field_is_rejected_as_non_finite(fields: dict[str, Any]) -> None:
    book = primed_book()
    before = book_state(book)
    batch = make_batch([0], ts_event=9_000, **fields)

    result = book.apply(batch)

    assert result.reasons.tolist() == [RejectReason.NON_FINITE]
    assert book.rejections.tolist() == counts_of(RejectReason.NON_FINITE)
    assert_book_unchanged(book, before)


@pytest.mark.parametrize("fields", NEGATIVE_FIELDS.values(), ids=NEGATIVE_FIELDS.keys())
def test_apply_negative_field_is_rejected_and_counted(fields: dict[str, Any]) -> None:
    book = primed_book()
    before = book_state(book)
    batch = make_batch([0], ts_event=9_000, **fields)

    result = book.apply(batch)

    assert result.reasons.tolist() == [RejectReason.NEGATIVE]
    assert book.rejections.tolist() == counts_of(RejectReason.NEGATIVE)
    assert_book_unchanged(book, before)


@pytest.mark.parametrize("fields", ONE_SIDED_FIELDS.values(), ids=ONE_SIDED_FIELDS.keys())
def test_apply_one_sided_quote_is_rejected_and_counted(fields: dict[str, Any]) -> None:
    book = primed_book()
    before = book_state(book)
    batch = make_batch([0], ts_event=9_000, **fields)

    result = book.apply(batch)

    assert result.reasons.tolist() == [RejectReason.ONE_SIDED]
    assert book.rejections.tolist() == counts_of(RejectReason.ONE_SIDED)
    assert_book_unchanged(book, before)


def test_apply_crossed_quote_is_rejected_and_counted() -> None:
    book = primed_book()
    before = book_state(book)
    batch = make_batch([0], bid=[101.5], ask=[101.0], ts_event=9_000)

    result = book.apply(batch)

    assert result.reasons.tolist() == [RejectReason.CROSSED]
    assert book.rejections.tolist() == counts_of(RejectReason.CROSSED)
    assert_book_unchanged(book, before)


def test_apply_tick_without_quote_or_last_is_rejected_as_empty() -> None:
    book = primed_book()
    before = book_state(book)
    batch = make_batch([0], size=[5.0], ts_event=9_000)

    result = book.apply(batch)

    assert result.reasons.tolist() == [RejectReason.EMPTY]
    assert book.rejections.tolist() == counts_of(RejectReason.EMPTY)
    assert_book_unchanged(book, before)


@pytest.mark.parametrize("ts_event", [0, -1])
def test_apply_non_positive_ts_event_is_rejected_as_bad_timestamp(ts_event: int) -> None:
    book = new_book()
    before = book_state(book)
    batch = make_batch([1], bid=[49.0], ask=[51.0], ts_event=ts_event)

    result = book.apply(batch)

    assert result.reasons.tolist() == [RejectReason.BAD_TIMESTAMP]
    assert book.rejections.tolist() == counts_of(RejectReason.BAD_TIMESTAMP)
    assert_book_unchanged(book, before)


def test_apply_tick_older_than_book_is_rejected_as_out_of_order() -> None:
    book = primed_book()
    before = book_state(book)
    batch = make_batch([0], bid=[98.0], ask=[102.0], ts_event=4_999)

    result = book.apply(batch)

    assert result.reasons.tolist() == [RejectReason.OUT_OF_ORDER]
    assert book.rejections.tolist() == counts_of(RejectReason.OUT_OF_ORDER)
    assert_book_unchanged(book, before)


def test_apply_tick_at_book_ts_event_is_accepted() -> None:
    book = primed_book()
    batch = make_batch([0], bid=[98.0], ask=[102.0], ts_event=5_000)

    result = book.apply(batch)

    assert result.changed_ix.tolist() == [0]
    assert (book.bid[0], book.ask[0]) == (98.0, 102.0)


def test_validate_reports_lowest_code_when_several_reasons_apply() -> None:
    # Negative (3), crossed (5) and a bad timestamp (7) at once: 3 wins.
    book = new_book()
    batch = make_batch([0], bid=[-1.0], ask=[-2.0], ts_event=0)

    reasons = book.validate(batch)

    assert reasons.tolist() == [RejectReason.NEGATIVE]


def test_apply_reports_rejected_rows_by_position_in_batch() -> None:
    book = new_book()
    batch = make_batch([0, -1, 1, 2], bid=[99.0, 1.0, 52.0, 9.0], ask=[101.0, 2.0, 51.0, 11.0])

    result = book.apply(batch)

    assert result.rejected_rows.tolist() == [1, 2]
    assert result.reasons.tolist() == [RejectReason.UNKNOWN_INSTRUMENT, RejectReason.CROSSED]


def test_apply_later_quote_in_batch_wins() -> None:
    book = new_book()
    batch = make_batch([0, 0], bid=[99.0, 99.5], ask=[101.0, 100.5], ts_event=[1_000, 1_001])

    book.apply(batch)

    assert (book.bid[0], book.ask[0]) == (99.5, 100.5)


def test_apply_trade_after_quote_keeps_quote_and_sets_last_and_size() -> None:
    book = new_book()
    batch = make_batch(
        [0, 0], bid=[99.0, NAN], ask=[101.0, NAN], last=[NAN, 100.5], size=[NAN, 300.0]
    )

    book.apply(batch)

    assert [book.bid[0], book.ask[0], book.last[0], book.size[0]] == [99.0, 101.0, 100.5, 300.0]


def test_apply_rejected_later_quote_leaves_earlier_quote_in_place() -> None:
    book = new_book()
    batch = make_batch([0, 0], bid=[99.0, 102.0], ask=[101.0, 101.0])

    book.apply(batch)

    assert (book.bid[0], book.ask[0]) == (99.0, 101.0)


def test_apply_takes_timestamps_and_seq_from_latest_accepted_row() -> None:
    book = new_book()
    batch = TickBatch.from_columns(
        instrument_ix=[0, 0, 0],
        bid=[99.0, NAN, 1.0],
        ask=[101.0, NAN, INF],
        last=[NAN, 100.0, NAN],
        size=[NAN, 1.0, NAN],
        ts_event=[1_000, 1_500, 1_700],
        ts_recv=[2_000, 2_500, 2_700],
        source_seq=[7, 8, 9],
    )

    book.apply(batch)

    assert (book.ts_event[0], book.ts_recv[0], book.source_seq[0]) == (1_500, 2_500, 8)


def test_apply_changed_ix_is_sorted_and_unique() -> None:
    book = new_book()
    batch = make_batch([2, 0, 2, 1, 0], last=[9.0, 99.0, 9.5, 49.0, 98.0], size=[1.0] * 5)

    result = book.apply(batch)

    assert result.changed_ix.tolist() == [0, 1, 2]


def ticked_book() -> PriceBook:
    # Instrument 0 last received at T0, instrument 1 at T0 + 4 s, instrument 2 never.
    book = new_book()
    book.apply(make_batch([0], last=[100.0], size=[1.0], ts_recv=T0_NS))
    book.apply(make_batch([1], last=[50.0], size=[1.0], ts_recv=T0_NS + 4 * NS))
    return book


def test_refresh_staleness_marks_instrument_silent_past_stale_after_as_stale() -> None:
    book = ticked_book()

    book.refresh_staleness(T0_NS + 6 * NS, is_feed_up=True)

    assert book.is_stale.tolist() == [True, False, True]


def test_refresh_staleness_returns_exactly_the_flipped_indices() -> None:
    book = ticked_book()

    flipped = book.refresh_staleness(T0_NS + 6 * NS, is_feed_up=True)

    assert flipped.tolist() == [0]


def test_refresh_staleness_with_feed_down_marks_every_instrument_stale() -> None:
    book = ticked_book()

    book.refresh_staleness(T0_NS + NS, is_feed_up=False)

    assert book.is_stale.tolist() == [True, True, True]


def test_refresh_staleness_with_feed_down_returns_only_previously_fresh_indices() -> None:
    book = ticked_book()

    flipped = book.refresh_staleness(T0_NS + NS, is_feed_up=False)

    assert flipped.tolist() == [0, 1]


def test_apply_makes_ticked_instrument_fresh_again() -> None:
    book = ticked_book()
    book.refresh_staleness(T0_NS + 6 * NS, is_feed_up=True)
    batch = make_batch([0], bid=[99.0], ask=[101.0], ts_recv=T0_NS + 6 * NS)

    book.apply(batch)

    assert book.is_stale.tolist() == [False, False, True]


def test_mid_is_average_of_bid_and_ask_when_quoted() -> None:
    book = new_book()
    book.apply(make_batch([0], bid=[99.0], ask=[101.5], last=[120.0], size=[1.0]))

    mid = book.mid()

    assert mid[0] == 100.25


def test_mid_falls_back_to_last_without_quote() -> None:
    book = new_book()
    book.apply(make_batch([1], last=[50.5], size=[1.0]))

    mid = book.mid()

    assert mid[1] == 50.5


def test_mid_is_nan_without_quote_or_trade() -> None:
    book = primed_book()

    mid = book.mid()

    assert np.isnan(mid[1:]).all()


def test_from_columns_with_short_column_raises_shape_error_naming_it() -> None:
    columns = {"bid": [1.0, 2.0, 3.0], "ask": [2.0, 3.0], "last": [NAN] * 3, "size": [NAN] * 3}

    with pytest.raises(ShapeError) as caught:
        TickBatch.from_columns([0, 1, 2], ts_event=[1, 1, 1], ts_recv=[1, 1, 1], **columns)

    assert (caught.value.name, caught.value.expected, caught.value.actual) == ("ask", (3,), (2,))


def test_concat_keeps_batches_and_rows_in_order() -> None:
    first = make_batch([2, 0], last=[9.0, 99.0], size=[1.0, 2.0], ts_event=[10, 11])
    second = make_batch([1], last=[49.0], size=[3.0], ts_event=[12])

    joined = TickBatch.concat([first, second])

    assert joined.instrument_ix.tolist() == [2, 0, 1]
    assert joined.last.tolist() == [9.0, 99.0, 49.0]
    assert joined.ts_event.tolist() == [10, 11, 12]


PRICES = [0.0, 1.0, 2.0, 2.5, 3.0]
ANY_VALUE = [NAN, NAN, INF, -INF, -1.0, *PRICES]
Row = tuple[int, float, float, float, float, int, int, int]


@st.composite
def tick_rows(draw: st.DrawFn) -> Row:
    kind = draw(st.sampled_from(["quote", "trade", "both", "anything"]))
    good = st.sampled_from(PRICES)
    value = st.sampled_from(ANY_VALUE)
    bid = ask = last = size = NAN
    if kind in ("quote", "both"):
        bid = draw(good)
        ask = draw(good)  # sometimes below bid: crossed
    if kind in ("trade", "both"):
        last = draw(good)
        size = draw(st.sampled_from([NAN, 1.0, 100.0]))
    if kind == "anything":
        bid, ask, last, size = draw(value), draw(value), draw(value), draw(value)
    ix = draw(st.integers(-2, M))  # -2, -1 and M are unknown
    ts_event = draw(st.integers(-1, 12))
    ts_recv = draw(st.integers(0, 20))
    source_seq = draw(st.integers(-1, 50))
    return ix, bid, ask, last, size, ts_event, ts_recv, source_seq


def batch_of(rows: list[Row]) -> TickBatch:
    if not rows:
        return TickBatch.empty()
    columns = list(zip(*rows, strict=True))
    return TickBatch.from_columns(*columns)


@settings(max_examples=300, deadline=None, database=None)
@given(batches=st.lists(st.lists(tick_rows(), max_size=8), min_size=1, max_size=6))
def test_apply_matches_scalar_reference_on_random_batches(batches: list[list[Row]]) -> None:
    book = new_book()
    reference = ReferencePriceBook(M)
    tick_batches = [batch_of(rows) for rows in batches]

    results = [book.apply(batch) for batch in tick_batches]
    expected = [reference.apply(batch) for batch in tick_batches]

    assert [r.changed_ix.tolist() for r in results] == [e.changed_ix for e in expected]
    assert [r.rejected_rows.tolist() for r in results] == [e.rejected_rows for e in expected]
    assert [r.reasons.tolist() for r in results] == [e.reasons for e in expected]
    assert book.rejections.tolist() == reference.rejections
    for name in BOOK_FIELDS:
        # Values are copied, never computed, so the tolerance is zero; NaN equals NaN.
        want = np.array(getattr(reference, name), dtype=np.float64)
        np.testing.assert_allclose(getattr(book, name), want, rtol=0, atol=0, err_msg=name)


def test_roll_close_takes_each_mid_and_keeps_the_close_of_unpriced_instruments() -> None:
    book = PriceBook(np.array([10.0, 20.0, 30.0]), stale_after_ns=10 * NS)
    book.apply(make_batch([0], bid=[11.0], ask=[12.0]))
    book.apply(make_batch([1], last=[21.0]))

    book.roll_close()

    # 0: quoted, mid 11.5; 1: traded only, its last; 2: never priced, kept.
    assert book.prev_close.tolist() == [11.5, 21.0, 30.0]
