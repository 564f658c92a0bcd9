"""TickDecoder: canonical and vendor records into rows; TickRows into batches."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from gateway.marketdata.codec import DecodeError, TickDecoder, TickFields, TickRows

INDEX = {"AAPL": 0, "MSFT": 1}
TS_EVENT = 1_763_700_000_000_000_000
TS_RECV = 1_763_700_000_000_500_000


def decode(record: object, **kwargs: Any) -> tuple[object, ...]:
    return TickDecoder(INDEX).decode(record, TS_RECV, **kwargs)


def nan_safe(row: tuple[object, ...]) -> tuple[object, ...]:
    # NaN != NaN, so compare rows with NaN written as None.
    return tuple(None if isinstance(v, float) and math.isnan(v) else v for v in row)


def test_canonical_quote_and_trade_decodes_every_field():
    record = {
        "symbol": "MSFT",
        "ts_event": TS_EVENT,
        "bid": 189.51,
        "ask": 189.53,
        "last": 189.52,
        "size": 100,
        "seq": 42,
    }

    row = decode(record)

    assert row == (1, 189.51, 189.53, 189.52, 100.0, TS_EVENT, TS_RECV, 42)


def test_canonical_quote_only_has_no_last_or_size():
    record = {"symbol": "AAPL", "ts_event": TS_EVENT, "bid": 10, "ask": 11, "seq": 1}

    row = decode(record)

    assert nan_safe(row) == (0, 10.0, 11.0, None, None, TS_EVENT, TS_RECV, 1)


def test_canonical_trade_only_has_no_bid_or_ask():
    record = {"symbol": "AAPL", "ts_event": TS_EVENT, "last": 12.5, "size": None}

    row = decode(record)

    assert nan_safe(row) == (0, None, None, 12.5, None, TS_EVENT, TS_RECV, -1)


def test_numbers_decode_as_python_floats():
    row = decode({"symbol": "AAPL", "ts_event": TS_EVENT, "bid": 10, "ask": 11})

    assert [type(v) for v in row[1:3]] == [float, float]


def test_vendor_field_map_and_millisecond_timestamps_are_converted_to_ns():
    fields = TickFields(
        symbol="s", bid="b", ask="a", last="p", size="q", ts_event="t", seq="n", ts_unit="ms"
    )
    decoder = TickDecoder(INDEX, fields)
    record = {"s": "MSFT", "t": 1_763_700_000_123, "b": 1.0, "a": 2.0, "p": 1.5, "q": 3, "n": 9}

    row = decoder.decode(record, TS_RECV)

    assert row == (1, 1.0, 2.0, 1.5, 3.0, 1_763_700_000_123_000_000, TS_RECV, 9)


@pytest.mark.parametrize(
    ("unit", "ts", "expected_ns"),
    [("s", 1_763_700_000, 1_763_700_000_000_000_000), ("us", 5, 5_000), ("ns", 5, 5)],
)
def test_ts_unit_scales_to_nanoseconds(unit, ts, expected_ns):
    decoder = TickDecoder(INDEX, TickFields(ts_unit=unit))

    row = decoder.decode({"symbol": "AAPL", "ts_event": ts, "last": 1.0}, TS_RECV)

    assert row[5] == expected_ns


def test_unknown_ts_unit_is_refused():
    with pytest.raises(ValueError, match="ts_unit"):
        TickFields(ts_unit="minutes")


def test_unknown_symbol_decodes_to_index_minus_one():
    row = decode({"symbol": "ZZZZ", "ts_event": TS_EVENT, "last": 1.0})

    assert row[0] == -1


def test_record_without_symbol_takes_the_key_symbol():
    row = decode({"ts_event": TS_EVENT, "last": 1.0}, key_symbol="MSFT")

    assert row[0] == 1


def test_record_symbol_differing_from_the_key_symbol_is_a_bad_record():
    with pytest.raises(DecodeError) as caught:
        decode({"symbol": "AAPL", "ts_event": TS_EVENT, "last": 1.0}, key_symbol="MSFT")

    assert caught.value.reason == "bad_record"


def test_seq_defaults_to_the_transport_seq():
    row = decode({"symbol": "AAPL", "ts_event": TS_EVENT, "last": 1.0}, seq=77)

    assert row[7] == 77


@pytest.mark.parametrize(
    "record",
    [
        [1, 2],
        "AAPL",
        {"ts_event": TS_EVENT, "last": 1.0},
        {"symbol": "", "ts_event": TS_EVENT, "last": 1.0},
        {"symbol": 7, "ts_event": TS_EVENT, "last": 1.0},
        {"symbol": "AAPL", "last": 1.0},
        {"symbol": "AAPL", "ts_event": "1763700000", "last": 1.0},
        {"symbol": "AAPL", "ts_event": True, "last": 1.0},
        {"symbol": "AAPL", "ts_event": 2**63, "last": 1.0},
        {"symbol": "AAPL", "ts_event": 1.0e19, "last": 1.0},
        {"symbol": "AAPL", "ts_event": TS_EVENT, "bid": "10", "ask": 11},
        {"symbol": "AAPL", "ts_event": TS_EVENT, "bid": True, "ask": 11},
        {"symbol": "AAPL", "ts_event": TS_EVENT, "last": 1.0, "size": False},
        {"symbol": "AAPL", "ts_event": TS_EVENT, "last": [1.0]},
        {"symbol": "AAPL", "ts_event": TS_EVENT, "last": 1.0, "seq": 1.5},
        {"symbol": "AAPL", "ts_event": TS_EVENT, "last": 1.0, "seq": True},
        {"symbol": "AAPL", "ts_event": TS_EVENT, "last": 1.0, "seq": 2**63},
    ],
    ids=[
        "array",
        "string",
        "no-symbol",
        "empty-symbol",
        "numeric-symbol",
        "no-ts_event",
        "string-ts",
        "bool-ts",
        "ts-past-int64",
        "float-ts-past-int64",
        "string-bid",
        "bool-bid",
        "bool-size",
        "list-last",
        "float-seq",
        "bool-seq",
        "seq-past-int64",
    ],
)
def test_malformed_record_is_a_bad_record(record):
    with pytest.raises(DecodeError) as caught:
        decode(record)

    assert caught.value.reason == "bad_record"


def test_millisecond_timestamp_past_int64_once_scaled_is_a_bad_record():
    decoder = TickDecoder(INDEX, TickFields(ts_unit="ms"))

    with pytest.raises(DecodeError) as caught:
        decoder.decode({"symbol": "AAPL", "ts_event": 10**13, "last": 1.0}, TS_RECV)

    assert caught.value.reason == "bad_record"


@pytest.mark.parametrize("raw", [b"{nope", b"", b'{"bid": NaN}', "[1,"])
def test_unparseable_json_is_bad_json(raw):
    with pytest.raises(DecodeError) as caught:
        TickDecoder.parse(raw)

    assert caught.value.reason == "bad_json"


def test_parse_then_decode_round_trip():
    decoder = TickDecoder(INDEX)

    row = decoder.decode(decoder.parse(b'{"symbol":"AAPL","ts_event":5,"last":2}'), TS_RECV)

    assert nan_safe(row) == (0, None, None, 2.0, None, 5, TS_RECV, -1)


def test_is_tick_tells_records_from_control_messages():
    decoder = TickDecoder(INDEX)

    assert decoder.is_tick({"symbol": "AAPL"})
    assert not decoder.is_tick({"type": "heartbeat"})
    assert not decoder.is_tick(["symbol"])


def test_to_batch_gives_one_column_per_field_with_the_documented_dtypes():
    rows = TickRows()
    rows.append((0, 1.0, 2.0, math.nan, math.nan, 10, 20, 3))
    rows.append((1, math.nan, math.nan, 5.0, 7.0, 11, 21, -1))

    batch = rows.to_batch()

    assert len(batch) == 2
    assert batch.instrument_ix.dtype == np.int64
    assert batch.bid.dtype == batch.size.dtype == np.float64
    assert batch.ts_event.dtype == batch.ts_recv.dtype == batch.source_seq.dtype == np.int64
    assert batch.instrument_ix.tolist() == [0, 1]
    assert batch.last.tolist()[1] == 5.0
    assert batch.ts_recv.tolist() == [20, 21]
    assert batch.source_seq.tolist() == [3, -1]


def test_to_batch_starts_over():
    rows = TickRows()
    rows.append((0, 1.0, 2.0, math.nan, math.nan, 10, 20, 3))
    rows.to_batch()

    batch = rows.to_batch()

    assert len(rows) == 0
    assert len(batch) == 0
    assert batch.instrument_ix.shape == (0,)
    assert batch.instrument_ix.dtype == np.int64
