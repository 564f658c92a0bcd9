"""The order storm's plan and figures: schedule, duplicate mix, bodies, outcomes, spreads."""

from __future__ import annotations

import orjson
import pytest

from load_tests.ordermix import (
    SYMBOLS,
    OrderTally,
    Outcome,
    build_schedule,
    classify,
    order_body,
    spread,
    sustainable_rate,
)

ACCOUNTS = ("DEMO-0001", "DEMO-0002", "DEMO-0003")


def test_schedule_sends_at_a_constant_rate_from_zero():
    schedule = build_schedule(4.0, 2.0, duplicate_share=0.0)

    assert schedule.send_at_ns == tuple(n * 250_000_000 for n in range(8))
    assert len(schedule) == 8


def test_schedule_without_duplicates_numbers_fresh_keys_in_send_order():
    schedule = build_schedule(100.0, 1.0, duplicate_share=0.0)

    assert schedule.key_index == tuple(range(100))
    assert not any(schedule.is_duplicate)
    assert schedule.fresh == 100


def test_duplicate_share_is_near_the_asked_share_once_keys_are_old_enough():
    schedule = build_schedule(1_000.0, 20.0, duplicate_share=0.3, min_duplicate_age_s=0.2)

    # The first 0.2 s cannot repeat anything; after it the share is 30% +- sampling.
    later = schedule.is_duplicate[200:]
    share = sum(later) / len(later)
    assert 0.28 <= share <= 0.32


def test_a_duplicate_repeats_a_key_first_sent_at_least_the_minimum_age_before():
    schedule = build_schedule(500.0, 5.0, duplicate_share=0.3, min_duplicate_age_s=0.1)
    first_sent: dict[int, int] = {}

    for at, key, is_duplicate in zip(
        schedule.send_at_ns, schedule.key_index, schedule.is_duplicate, strict=True
    ):
        if is_duplicate:
            assert at - first_sent[key] >= 100_000_000
        else:
            assert key not in first_sent
            first_sent[key] = at

    assert sorted(first_sent) == list(range(schedule.fresh))


def test_nothing_is_a_duplicate_before_the_minimum_age():
    schedule = build_schedule(1_000.0, 1.0, duplicate_share=0.9, min_duplicate_age_s=0.5)

    assert not any(schedule.is_duplicate[:500])


def test_the_same_seed_gives_the_same_schedule_and_another_a_different_one():
    first = build_schedule(200.0, 3.0, seed=7)

    assert build_schedule(200.0, 3.0, seed=7) == first
    assert build_schedule(200.0, 3.0, seed=8).key_index != first.key_index


@pytest.mark.parametrize(
    ("rate", "duration", "share", "age", "message"),
    [
        (0.0, 1.0, 0.3, 0.1, "rate_per_s must be positive"),
        (10.0, 0.0, 0.3, 0.1, "duration_s must be positive"),
        (10.0, 1.0, 1.0, 0.1, "duplicate_share must be within"),
        (10.0, 1.0, -0.1, 0.1, "duplicate_share must be within"),
        (10.0, 1.0, 0.3, -1.0, "min_duplicate_age_s must not be negative"),
    ],
)
def test_schedule_refuses_bad_parameters(rate, duration, share, age, message):
    with pytest.raises(ValueError, match=message):
        build_schedule(rate, duration, duplicate_share=share, min_duplicate_age_s=age)


def test_order_body_is_the_same_for_the_same_key():
    assert order_body(41, ACCOUNTS) == order_body(41, ACCOUNTS)


def test_order_body_is_a_valid_one_lot_market_order():
    body = orjson.loads(order_body(4, ACCOUNTS))

    assert body == {
        "account_id": "DEMO-0002",
        "symbol": SYMBOLS[1],
        "side": "sell",
        "quantity": "1",
        "type": "market",
        "time_in_force": "ioc",
    }


def test_each_account_alternates_buys_and_sells():
    sides = [orjson.loads(order_body(k, ACCOUNTS))["side"] for k in range(0, 12, 3)]

    assert sides == ["buy", "sell", "buy", "sell"]


def test_order_body_needs_accounts():
    with pytest.raises(ValueError, match="accounts must not be empty"):
        order_body(0, ())


@pytest.mark.parametrize(
    ("status", "is_replayed", "outcome"),
    [
        (202, False, Outcome.ACCEPTED),
        (202, True, Outcome.REPLAYED),
        (422, True, Outcome.REPLAYED),
        (409, False, Outcome.IN_PROGRESS),
        (429, False, Outcome.RATE_LIMITED),
        (422, False, Outcome.REFUSED),
        (503, False, Outcome.UNAVAILABLE),
    ],
)
def test_classify_answers(status, is_replayed, outcome):
    assert classify(status, is_replayed=is_replayed) == outcome


def test_tally_counts_errors_apart_from_acceptances_replays_and_in_progress():
    tally = OrderTally()
    for outcome in (Outcome.ACCEPTED, Outcome.ACCEPTED, Outcome.REPLAYED, Outcome.IN_PROGRESS):
        tally.add(outcome)
    tally.add(Outcome.REFUSED, "insufficient_buying_power")
    tally.add(Outcome.FAILED)

    assert tally.answered == 5
    assert tally.errors == 2
    assert tally.codes == {"insufficient_buying_power": 1}
    assert tally.per_s(Outcome.ACCEPTED, 4.0) == 0.5


def test_spread_is_the_median_and_range_of_present_values():
    assert spread([3.0, None, 1.0, 2.0]).as_dict() == {
        "median": 2.0,
        "min": 1.0,
        "max": 3.0,
        "runs": 4,
    }


def test_spread_of_nothing_is_none():
    assert spread([None, None]).median is None


def test_sustainable_rate_is_the_last_rate_before_the_first_miss():
    steps = [(500.0, 3.0, True), (1_000.0, 9.0, True), (1_500.0, 40.0, True), (2_000.0, 5.0, True)]

    assert sustainable_rate(steps, 25.0) == 1_000.0


def test_an_unclean_step_or_a_missing_p99_ends_the_ladder():
    assert sustainable_rate([(500.0, 3.0, True), (1_000.0, 4.0, False)], 25.0) == 500.0
    assert sustainable_rate([(500.0, None, True)], 25.0) is None
