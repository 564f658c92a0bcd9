"""ClientSession limits: subscriptions, anonymous access, rate, size and error count."""

from __future__ import annotations

from gateway.ws import closecodes
from gateway.ws.session import SessionOutput, Subscribe
from tests.builders import NS, make_token
from tests.unit.gateway.ws.sessiondriver import T0_S, assert_error, send, subscribe

# --- limits: subscriptions, auth_required, rate, size, errors ------------------------


def test_subscription_over_the_limit_gives_too_many_subscriptions(new_session, clock):
    session = new_session(max_subscriptions=3)
    send(session, subscribe(["AAPL", "MSFT"]), clock.now)

    output = send(session, subscribe(["AAPL", "NVDA", "AMZN"], id=6), clock.now)

    reply = assert_error(output, "too_many_subscriptions")
    assert reply["limit"] == 3
    assert reply["id"] == 6
    assert output.commands == []
    assert session.subscriptions == {"quotes": {"AAPL", "MSFT"}}


def test_subscription_limit_counts_only_new_keys(new_session, clock):
    session = new_session(max_subscriptions=3)
    send(session, subscribe(["AAPL", "MSFT"]), clock.now)

    output = send(session, subscribe(["AAPL", "MSFT", "NVDA"]), clock.now)

    assert output.messages == []
    assert output.commands == [Subscribe("quotes", ("AAPL", "MSFT", "NVDA"), None, None)]


def test_resubscribing_existing_keys_at_the_limit_is_allowed(new_session, clock):
    session = new_session(max_subscriptions=2)
    send(session, subscribe(["AAPL", "MSFT"]), clock.now)

    output = send(session, subscribe(["MSFT", "AAPL", "AAPL"]), clock.now)

    assert output.messages == []
    assert session.subscription_count == 2


def test_anonymous_subscribe_when_public_quotes_are_disallowed_gives_auth_required(
    new_session, clock
):
    session = new_session(allow_anonymous=False)

    output = send(session, subscribe(["AAPL"], id=1), clock.now)

    reply = assert_error(output, "auth_required")
    assert reply["id"] == 1
    assert output.close is None
    assert output.commands == []


def test_authenticated_subscribe_when_public_quotes_are_disallowed_is_accepted(new_session, clock):
    session = new_session(allow_anonymous=False)
    session.open(make_token(now_s=T0_S), clock.now)

    output = send(session, subscribe(["AAPL"]), clock.now)

    assert output.commands == [Subscribe("quotes", ("AAPL",), None, None)]


def test_message_beyond_the_burst_gives_rate_limited_with_retry(new_session, clock):
    session = new_session(inbound_burst=3, inbound_rate_per_s=10.0)
    for _ in range(3):
        assert send(session, {"op": "ping"}, clock.now).messages == [{"type": "pong"}]

    output = send(session, {"op": "ping", "id": 4}, clock.now)

    reply = assert_error(output, "rate_limited", retry=True)
    assert reply["retry_after_ms"] == 100  # one token at 10 per second
    assert "id" not in reply  # the message was not read
    assert output.close is None


def test_rate_limit_refills_one_token_per_interval(new_session, clock):
    session = new_session(inbound_burst=3, inbound_rate_per_s=10.0)
    for _ in range(4):
        send(session, {"op": "ping"}, clock.now)
    clock.advance_s(0.1)

    first = send(session, {"op": "ping"}, clock.now)
    second = send(session, {"op": "ping"}, clock.now)

    assert first.messages == [{"type": "pong"}]
    assert second.messages[0]["code"] == "rate_limited"


def test_rate_limit_refill_is_capped_at_the_burst(new_session, clock):
    session = new_session(inbound_burst=3, inbound_rate_per_s=10.0)
    clock.advance_s(60)

    outputs = [send(session, {"op": "ping"}, clock.now) for _ in range(4)]

    assert [o.messages[0]["type"] for o in outputs] == ["pong", "pong", "pong", "error"]


def padded_ping(size: int) -> bytes:
    # {"op":"ping","pad":"<pad>"} is 22 bytes plus the padding.
    data = b'{"op":"ping","pad":"' + b"x" * (size - 22) + b'"}'
    assert len(data) == size
    return data


def test_message_of_exactly_the_size_limit_is_accepted(new_session, clock):
    session = new_session(max_inbound_bytes=64)

    output = session.receive(padded_ping(64), clock.now)

    assert output.messages == [{"type": "pong"}]


def test_message_over_the_size_limit_closes_with_message_too_big(new_session, clock):
    session = new_session(max_inbound_bytes=64)

    output = session.receive(padded_ping(65), clock.now)

    assert_error(output, "message_too_big")
    assert output.close is not None
    assert output.close.code == closecodes.MESSAGE_TOO_BIG == 1009
    assert session.is_closed


def test_text_message_size_is_counted_in_utf8_bytes(new_session, clock):
    session = new_session(max_inbound_bytes=64)
    text = '{"op":"ping","pad":"' + "é" * 25 + '"}'  # 47 characters, 72 bytes

    output = session.receive(text.encode(), clock.now)

    assert_error(output, "message_too_big")


def test_errors_up_to_the_limit_keep_the_connection(new_session, clock):
    session = new_session(error_limit=3, error_window_s=10.0)

    outputs = []
    for _ in range(3):
        outputs.append(session.receive(b"junk", clock.now))
        clock.advance_s(1)

    assert [o.close for o in outputs] == [None, None, None]
    assert not session.is_closed


def test_error_past_the_limit_within_the_window_closes_with_too_many_errors(new_session, clock):
    session = new_session(error_limit=3, error_window_s=10.0)
    for _ in range(3):
        session.receive(b"junk", clock.now)
        clock.advance_s(1)

    output = session.receive(b"junk", clock.now)

    assert [m["code"] for m in output.messages] == ["bad_json", "too_many_errors"]
    assert output.messages[1]["retry"] is False
    assert output.close is not None
    assert output.close.code == closecodes.POLICY_VIOLATION == 1008
    assert session.is_closed


def test_errors_spread_beyond_the_window_do_not_close(new_session, clock):
    session = new_session(error_limit=3, error_window_s=10.0)
    for _ in range(3):
        session.receive(b"junk", clock.now)
        clock.advance_s(1)
    clock.advance_s(7.5)  # the first error is now 10.5 s old

    output = session.receive(b"junk", clock.now)

    assert output.close is None
    assert [m["code"] for m in output.messages] == ["bad_json"]


def test_closed_session_ignores_further_input(new_session, clock):
    session = new_session(max_inbound_bytes=64)
    session.receive(padded_ping(65), clock.now)

    received = send(session, {"op": "ping"}, clock.now)
    polled = session.poll(clock.now + 3600 * NS)

    assert received == SessionOutput()
    assert polled == SessionOutput()
