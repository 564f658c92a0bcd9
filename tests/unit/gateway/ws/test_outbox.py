"""Outbox frame assembly and conflation, and the OutboundBound slow-consumer rule."""

from __future__ import annotations

import json

import pytest

from gateway.ws.encoding import encode_body
from gateway.ws.outbox import OutboundBound, Outbox

TS = 1_700_000_000_123_456_789
KEY = ("quotes", "AAPL")


def update(key: str, seq: int) -> bytes:
    return encode_body({"type": "update", "key": key, "seq": seq})


def frame_of(outbox: Outbox, ts_sent_ns: int = TS) -> list[dict[str, object]]:
    frame = outbox.take_frame(ts_sent_ns)
    assert frame is not None
    messages: list[dict[str, object]] = json.loads(frame)
    return messages


@pytest.mark.parametrize(
    "message", [{"type": "pong"}, {"type": "x", "nested": {"a": [1, None, "é"]}, "n": 1.5}]
)
def test_encode_body_is_a_json_object_without_its_closing_brace(message):
    body = encode_body(message)

    assert json.loads(body + b"}") == message


def test_take_frame_on_an_empty_outbox_returns_none():
    outbox = Outbox()

    assert outbox.take_frame(TS) is None


def test_frame_is_a_json_array_with_the_frames_ts_sent_on_every_message():
    outbox = Outbox()
    outbox.push_control(encode_body({"type": "subscribed"}))
    outbox.push_state(KEY, 1, update("AAPL", 1))

    messages = frame_of(outbox, ts_sent_ns=42)

    assert messages == [
        {"type": "subscribed", "ts_sent": 42},
        {"type": "update", "key": "AAPL", "seq": 1, "ts_sent": 42},
    ]


def test_control_messages_keep_their_order_and_precede_state():
    outbox = Outbox()
    outbox.push_state(KEY, 7, update("AAPL", 7))
    outbox.push_control(encode_body({"type": "ack", "n": 1}))
    outbox.push_control(encode_body({"type": "ack", "n": 2}))

    messages = frame_of(outbox)

    assert [(m["type"], m.get("n")) for m in messages] == [
        ("ack", 1),
        ("ack", 2),
        ("update", None),
    ]


def test_take_frame_empties_the_outbox():
    outbox = Outbox()
    outbox.push_control(encode_body({"type": "pong"}))
    outbox.push_state(KEY, 1, update("AAPL", 1))
    outbox.take_frame(TS)

    assert outbox.take_frame(TS + 1) is None
    assert not outbox


def test_conflation_keeps_the_latest_body_per_key_with_seq_from():
    outbox = Outbox()
    for seq in (4, 5, 6):
        outbox.push_state(KEY, seq, update("AAPL", seq))

    messages = frame_of(outbox)

    assert messages == [{"type": "update", "key": "AAPL", "seq": 6, "seq_from": 4, "ts_sent": TS}]


def test_unconflated_update_has_no_seq_from():
    outbox = Outbox()
    outbox.push_state(KEY, 4, update("AAPL", 4))

    (message,) = frame_of(outbox)

    assert "seq_from" not in message


def test_conflation_is_per_key():
    outbox = Outbox()
    outbox.push_state(("quotes", "AAPL"), 1, update("AAPL", 1))
    outbox.push_state(("quotes", "MSFT"), 9, update("MSFT", 9))
    outbox.push_state(("quotes", "AAPL"), 2, update("AAPL", 2))

    messages = frame_of(outbox)

    assert [(m["key"], m["seq"], m.get("seq_from")) for m in messages] == [
        ("AAPL", 2, 1),
        ("MSFT", 9, None),
    ]


def test_conflated_counts_each_replacement():
    outbox = Outbox()
    for seq in (1, 2, 3):
        outbox.push_state(KEY, seq, update("AAPL", seq))
    outbox.push_state(("quotes", "MSFT"), 1, update("MSFT", 1))

    assert outbox.conflated == 2


def test_seq_from_restarts_after_a_frame_is_taken():
    outbox = Outbox()
    outbox.push_state(KEY, 1, update("AAPL", 1))
    outbox.push_state(KEY, 2, update("AAPL", 2))
    outbox.take_frame(TS)
    outbox.push_state(KEY, 3, update("AAPL", 3))
    outbox.push_state(KEY, 4, update("AAPL", 4))

    (message,) = frame_of(outbox)

    assert (message["seq"], message["seq_from"]) == (4, 3)


def test_queued_bytes_counts_pushed_bodies():
    outbox = Outbox()

    outbox.push_control(b"x" * 10)
    outbox.push_state(KEY, 1, b"y" * 7)

    assert outbox.queued_bytes == 17


def test_queued_bytes_follows_a_replacement():
    outbox = Outbox()
    outbox.push_control(b"x" * 10)
    outbox.push_state(KEY, 1, b"y" * 7)

    outbox.push_state(KEY, 2, b"z" * 3)

    assert outbox.queued_bytes == 13


def test_queued_bytes_drops_with_drop_state_and_ignores_absent_keys():
    outbox = Outbox()
    outbox.push_control(b"x" * 10)
    outbox.push_state(KEY, 1, b"y" * 7)

    outbox.drop_state([KEY, ("quotes", "NONE")])

    assert outbox.queued_bytes == 10


def test_drop_state_forgets_the_unsent_update():
    outbox = Outbox()
    outbox.push_control(encode_body({"type": "ack"}))
    outbox.push_state(KEY, 1, update("AAPL", 1))

    outbox.drop_state([KEY])

    assert [m["type"] for m in frame_of(outbox)] == ["ack"]


def test_queued_bytes_resets_when_a_frame_is_taken():
    outbox = Outbox()
    outbox.push_control(b"x" * 10)
    outbox.push_state(KEY, 1, b"y" * 7)

    outbox.take_frame(TS)

    assert outbox.queued_bytes == 0


# --- OutboundBound -------------------------------------------------------------

MS = 1_000_000
GRACE = 1_000 * MS


def test_bound_is_not_expired_before_the_grace_period():
    bound = OutboundBound(max_bytes=100, grace_ns=GRACE)
    bound.observe(101, 0, now_ns=0)

    assert not bound.is_expired(GRACE - 1)


def test_bound_expires_after_the_grace_period_continuously_over():
    bound = OutboundBound(max_bytes=100, grace_ns=GRACE)
    bound.observe(101, 0, now_ns=0)
    bound.observe(500, 0, now_ns=500 * MS)

    assert bound.is_expired(GRACE)


def test_bound_resets_when_the_client_recovers_in_between():
    bound = OutboundBound(max_bytes=100, grace_ns=GRACE)
    bound.observe(101, 0, now_ns=0)
    bound.observe(100, 0, now_ns=500 * MS)
    bound.observe(101, 0, now_ns=600 * MS)

    assert not bound.is_expired(1_200 * MS)
    assert bound.is_expired(1_600 * MS)


def test_bound_at_exactly_max_bytes_is_not_over():
    bound = OutboundBound(max_bytes=100, grace_ns=GRACE)
    bound.observe(100, 0, now_ns=0)

    assert not bound.is_expired(10 * GRACE)


def test_queued_and_unsent_bytes_count_together_against_the_bound():
    bound = OutboundBound(max_bytes=100, grace_ns=GRACE)
    bound.observe(60, 0, now_ns=0)
    bound.observe(60, 41, now_ns=0)

    assert bound.is_expired(GRACE)


def test_any_unsent_byte_is_over_the_bound_whatever_is_queued():
    # Bytes left in user space mean the kernel's send buffer is full.
    bound = OutboundBound(max_bytes=100, grace_ns=GRACE)
    bound.observe(0, 1, now_ns=0)

    assert bound.is_expired(GRACE)


def test_a_client_that_drains_only_partly_between_writes_stays_over():
    # Reading just enough to fall below the low-water mark, then falling
    # behind again, is not catching up: the bound resets only when every
    # written byte has left user space.
    bound = OutboundBound(max_bytes=1_000_000, grace_ns=GRACE)
    for step, unsent in enumerate([70_000, 16_000, 50_000, 12_000, 70_000, 9_000]):
        bound.observe(0, unsent, now_ns=step * 200 * MS)

    assert bound.is_expired(GRACE)


def test_a_client_whose_socket_empties_is_back_within_the_bound():
    bound = OutboundBound(max_bytes=1_000_000, grace_ns=GRACE)
    bound.observe(0, 70_000, now_ns=0)
    bound.observe(0, 0, now_ns=900 * MS)
    bound.observe(0, 70_000, now_ns=950 * MS)

    assert not bound.is_expired(GRACE + 900 * MS)
    assert bound.is_expired(GRACE + 950 * MS)


def test_bound_that_was_never_observed_is_not_expired():
    bound = OutboundBound(max_bytes=100, grace_ns=GRACE)

    assert not bound.is_expired(10 * GRACE)


# --- max_rate_ms: a minimum gap between two sends of one key ---------------------

GAP_NS = 250_000_000
OTHER = ("quotes", "MSFT")


def test_a_rate_limited_key_goes_at_once_then_waits_for_its_gap():
    outbox = Outbox()
    outbox.set_min_gap(KEY, GAP_NS)
    outbox.push_state(KEY, 1, update("AAPL", 1))
    assert [m["seq"] for m in frame_of(outbox, TS)] == [1]
    assert outbox.next_due_ns is None  # nothing held

    outbox.push_state(KEY, 2, update("AAPL", 2))
    outbox.push_state(KEY, 3, update("AAPL", 3))
    assert outbox.take_frame(TS + GAP_NS - 1) is None
    assert outbox.next_due_ns == TS + GAP_NS
    assert outbox.queued_bytes == len(update("AAPL", 3))

    [message] = frame_of(outbox, TS + GAP_NS)
    assert (message["seq"], message["seq_from"]) == (3, 2)  # conflated, no gap
    assert outbox.next_due_ns is None
    assert not outbox


def test_a_held_key_does_not_hold_back_other_keys_or_control_messages():
    outbox = Outbox()
    outbox.set_min_gap(KEY, GAP_NS)
    outbox.push_state(KEY, 1, update("AAPL", 1))
    frame_of(outbox, TS)
    outbox.push_state(KEY, 2, update("AAPL", 2))
    outbox.push_state(OTHER, 7, update("MSFT", 7))
    outbox.push_control(encode_body({"type": "pong"}))

    sent = frame_of(outbox, TS + 1)
    assert [(m["type"], m.get("key")) for m in sent] == [("pong", None), ("update", "MSFT")]
    assert outbox.next_due_ns == TS + GAP_NS
    assert [m["seq"] for m in frame_of(outbox, TS + GAP_NS)] == [2]


def test_a_gap_of_zero_or_a_dropped_key_sends_as_updates_come():
    outbox = Outbox()
    outbox.set_min_gap(KEY, GAP_NS)
    outbox.push_state(KEY, 1, update("AAPL", 1))
    frame_of(outbox, TS)
    outbox.set_min_gap(KEY, 0)
    outbox.push_state(KEY, 2, update("AAPL", 2))
    assert [m["seq"] for m in frame_of(outbox, TS + 1)] == [2]

    outbox.set_min_gap(KEY, GAP_NS)
    outbox.push_state(KEY, 3, update("AAPL", 3))
    frame_of(outbox, TS + 2)
    outbox.drop_state([KEY])  # an unsubscribe forgets the rate too
    outbox.push_state(KEY, 4, update("AAPL", 4))
    assert [m["seq"] for m in frame_of(outbox, TS + 3)] == [4]
