"""The stream checker: seq gaps, snapshot before deltas, epochs, absolute values, conflation."""

from __future__ import annotations

from typing import Any

import pytest

from load_tests.checker import StreamChecker

EPOCH = "e1"


def snapshot(key: str = "AAPL", seq: int = 10, **fields: Any) -> dict[str, Any]:
    return {
        "type": "snapshot",
        "channel": "quotes",
        "key": key,
        "seq": seq,
        "epoch": EPOCH,
    } | fields


def update(key: str = "AAPL", seq: int = 11, **fields: Any) -> dict[str, Any]:
    quote = {"bid": 1.0, "ask": 1.1, "last": 1.05, "size": 2.0, "ts_event": 1_000, "stale": False}
    base = {"type": "update", "channel": "quotes", "key": key, "seq": seq, "epoch": EPOCH}
    return base | quote | fields


def feed(checker: StreamChecker, *messages: dict[str, Any]) -> list[int | None]:
    return [checker.on_message(m, 5_000) for m in messages]


def test_consecutive_updates_after_a_snapshot_are_clean() -> None:
    checker = StreamChecker()

    feed(checker, snapshot(seq=10), update(seq=11), update(seq=12))

    counts = checker.counts
    assert (counts.gaps, dict(counts.errors)) == (0, {})
    assert (counts.snapshots, counts.delivered, counts.produced, counts.conflated) == (1, 2, 2, 0)


def test_a_skipped_seq_is_a_gap_of_that_many_updates() -> None:
    checker = StreamChecker()

    feed(checker, snapshot(seq=10), update(seq=11), update(seq=15))

    # 12, 13 and 14 never arrived.
    assert checker.counts.gaps == 3
    assert checker.counts.produced == 5


def test_a_merged_update_with_seq_from_is_conflation_not_a_gap() -> None:
    checker = StreamChecker()

    feed(checker, snapshot(seq=10), update(seq=14, seq_from=11), update(seq=15))

    counts = checker.counts
    assert counts.gaps == 0
    assert (counts.delivered, counts.produced, counts.conflated) == (2, 5, 3)


def test_a_merged_update_starting_past_the_next_seq_is_still_a_gap() -> None:
    checker = StreamChecker()

    feed(checker, snapshot(seq=10), update(seq=14, seq_from=13))

    assert checker.counts.gaps == 2  # 11 and 12


def test_an_update_before_any_snapshot_is_an_error() -> None:
    checker = StreamChecker()

    feed(checker, update(seq=3))

    assert checker.counts.errors == {"update_before_snapshot": 1}


@pytest.mark.parametrize("seq", [10, 9])
def test_a_repeated_or_earlier_seq_is_an_error(seq: int) -> None:
    checker = StreamChecker()

    feed(checker, snapshot(seq=10), update(seq=seq))

    assert checker.counts.errors == {"seq_went_back": 1}
    assert checker.counts.gaps == 0


def test_an_update_of_another_epoch_is_an_error() -> None:
    checker = StreamChecker()

    feed(checker, snapshot(seq=10), update(seq=11, epoch="e2"))

    assert checker.counts.errors == {"epoch_changed": 1}


def test_a_quote_update_missing_a_field_is_not_absolute() -> None:
    checker = StreamChecker()
    partial = update(seq=11)
    del partial["ask"]

    feed(checker, snapshot(seq=10), partial)

    assert checker.counts.errors == {"not_absolute": 1}


def test_keys_are_tracked_separately() -> None:
    checker = StreamChecker()

    feed(
        checker, snapshot("AAPL", 10), snapshot("MSFT", 50), update("MSFT", 51), update("AAPL", 11)
    )

    assert checker.counts.gaps == 0
    assert checker.counts.errors == {}


def test_a_new_snapshot_restarts_the_key() -> None:
    checker = StreamChecker()

    feed(checker, snapshot(seq=10), snapshot(seq=40), update(seq=41))

    assert checker.counts.gaps == 0


def test_a_recovered_subscribe_continues_from_the_kept_seq() -> None:
    checker = StreamChecker()
    recovered = {
        "type": "subscribed",
        "channel": "quotes",
        "keys": ["AAPL"],
        "epoch": EPOCH,
        "recovered": True,
    }

    feed(checker, snapshot(seq=10), update(seq=11), recovered, update(seq=12), update(seq=14))

    assert checker.counts.gaps == 1


def test_latency_is_receive_time_minus_ts_event() -> None:
    checker = StreamChecker()

    latencies = feed(checker, snapshot(seq=10), update(seq=11, ts_event=1_250))

    assert latencies == [None, 5_000 - 1_250]


def test_an_update_without_a_newer_tick_has_no_latency() -> None:
    # A staleness flip repeats the last tick's ts_event: its age is not a delay.
    checker = StreamChecker()

    latencies = feed(
        checker,
        snapshot(seq=10, ts_event=1_000),
        update(seq=11, ts_event=1_000, stale=True),
        update(seq=12, ts_event=2_000),
        update(seq=13, ts_event=2_000, stale=True),
        update(seq=14, ts_event=2_500),
    )

    assert latencies == [None, None, 5_000 - 2_000, None, 5_000 - 2_500]
    assert checker.counts.delivered == 4
    assert checker.counts.gaps == 0


def test_portfolio_update_latency_comes_from_the_totals_as_of() -> None:
    checker = StreamChecker()
    base = {"channel": "portfolio", "key": "ACC-1", "epoch": EPOCH}
    totals = {"equity": 1.0, "market_value": 1.0, "day_pnl": 0.0, "status": "ok", "as_of": 4_000}
    row = {"symbol": "AAPL", "quantity": 1.0, "price": 1.0, "market_value": 1.0, "status": "ok"}

    latencies = feed(
        checker,
        base | {"type": "snapshot", "seq": 1},
        base | {"type": "update", "seq": 2, "positions": [row], "totals": totals},
    )

    assert latencies == [None, 1_000]
    assert checker.counts.errors == {}


def test_a_portfolio_row_without_its_fields_is_not_absolute() -> None:
    checker = StreamChecker()
    base = {"channel": "portfolio", "key": "ACC-1", "epoch": EPOCH}

    feed(
        checker,
        base | {"type": "snapshot", "seq": 1},
        base | {"type": "update", "seq": 2, "positions": [{"symbol": "AAPL", "price": 2.0}]},
    )

    assert checker.counts.errors == {"not_absolute": 1}


def test_server_errors_are_counted_by_code() -> None:
    checker = StreamChecker()

    feed(checker, {"type": "error", "code": "rate_limited"})

    assert checker.counts.errors == {"server:rate_limited": 1}


def test_take_returns_the_counts_and_zeroes_the_shared_ones() -> None:
    checker = StreamChecker()
    feed(checker, snapshot(seq=10), update(seq=12))

    taken = checker.counts.take()

    assert (taken.delivered, taken.gaps) == (1, 1)
    assert (checker.counts.delivered, checker.counts.gaps, checker.counts.messages) == (0, 0, 0)
