"""Key validation and the claim decision, as pure functions."""

import pytest

from orders.idempotency import (
    Busy,
    Claimed,
    IdempotencyRecord,
    Mismatch,
    RecordState,
    Replay,
    StoredResponse,
    check_key,
    decide,
)
from orders.problems import Problem
from orders.types import TransferId

RESPONSE = StoredResponse(202, (), b"{}")


def record(**changes) -> IdempotencyRecord:
    fields = {
        "transfer_id": TransferId("t"),
        "fingerprint": "fp",
        "state": RecordState.IN_PROGRESS,
        "owner": "A",
        "lease_until_ns": 100,
        "expires_at_ns": 1_000,
    } | changes
    return IdempotencyRecord(**fields)


def test_a_missing_key_is_idempotency_key_missing():
    result = check_key(None)

    assert isinstance(result, Problem)
    assert (result.code, result.status) == ("idempotency_key_missing", 400)


@pytest.mark.parametrize(
    "raw", ["", "x" * 256, "tab\there", "line\nbreak", "ü-key", "\x7f", "emoji-🙂"]
)
def test_a_malformed_key_is_idempotency_key_invalid(raw):
    result = check_key(raw)

    assert isinstance(result, Problem)
    assert (result.code, result.status) == ("idempotency_key_invalid", 400)


@pytest.mark.parametrize("raw", ["k", "x" * 255, "a b ~!", "550e8400-e29b-41d4-a716-446655440000"])
def test_printable_ascii_keys_up_to_255_characters_are_accepted(raw):
    assert check_key(raw) == raw


def test_no_record_is_claimed():
    assert decide(None, "fp", "B", 0) == Claimed(is_takeover=False)


def test_an_expired_record_is_claimed_afresh_even_with_another_fingerprint():
    assert decide(record(), "other", "B", 1_000) == Claimed(is_takeover=False)


def test_another_fingerprint_is_a_mismatch_before_anything_else():
    completed = record(state=RecordState.COMPLETED, response=RESPONSE)

    assert decide(completed, "other", "B", 0) == Mismatch()
    assert decide(record(), "other", "B", 0) == Mismatch()
    assert decide(record(), "other", "B", 500) == Mismatch()


def test_a_completed_record_replays():
    completed = record(state=RecordState.COMPLETED, response=RESPONSE)

    assert decide(completed, "fp", "B", 500) == Replay(RESPONSE)


def test_a_live_lease_is_busy_until_it_ends():
    assert decide(record(), "fp", "B", 99) == Busy(100)


def test_an_ended_lease_is_taken_over_with_the_prepared_command():
    assert decide(record(command=None), "fp", "B", 100) == Claimed(is_takeover=True, command=None)


def test_the_lease_holder_claiming_again_is_claimed():
    assert decide(record(), "fp", "A", 50) == Claimed(is_takeover=False)
