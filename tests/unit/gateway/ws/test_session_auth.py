"""ClientSession authentication: tokens at open and by op, expiry, the auth deadline."""

from __future__ import annotations

import pytest

from gateway.auth import issue_token
from gateway.ws import closecodes
from gateway.ws.session import SessionOutput, Unsubscribe
from tests.builders import NS, TEST_SECRET, make_token
from tests.unit.gateway.ws.sessiondriver import T0_S, assert_error, send, subscribe


def assert_unauthorized(output: SessionOutput, code: str) -> dict[str, object]:
    reply = assert_error(output, code)
    assert output.close is not None
    assert output.close.code == closecodes.UNAUTHORIZED == 4001
    return reply


def test_open_with_a_valid_token_replies_authenticated(new_session, clock):
    session = new_session()
    token = make_token(subject="trader-1", accounts=["B", "A"], ttl_s=3600, now_s=T0_S)

    output = session.open(token, clock.now)

    assert output.messages == [
        {
            "type": "authenticated",
            "sub": "trader-1",
            "accounts": ["A", "B"],
            "scopes": ["read"],
            "exp": T0_S + 3600,
        }
    ]
    assert output.close is None


def test_open_without_a_token_does_nothing(new_session, clock):
    session = new_session()

    output = session.open(None, clock.now)

    assert output == SessionOutput()
    assert session.principal is None


@pytest.mark.parametrize(
    "token",
    [
        make_token(now_s=T0_S, secret="another-secret-" + "y" * 40),
        issue_token(
            TEST_SECRET,
            subject="trader-1",
            accounts=["ACC-1"],
            scopes=["read"],
            ttl_s=3600,
            now_s=T0_S,
            issuer="someone-else",
        ),
        "not-a-token",
    ],
    ids=["bad-signature", "wrong-issuer", "garbage"],
)
def test_open_with_a_refused_token_closes_with_token_invalid(new_session, clock, token):
    session = new_session()

    output = session.open(token, clock.now)

    assert_unauthorized(output, "token_invalid")
    assert session.principal is None
    assert session.is_closed


def test_auth_op_with_a_garbage_token_echoes_the_id_and_closes(new_session, clock):
    session = new_session()

    output = send(session, {"op": "auth", "token": "garbage", "id": "a1"}, clock.now)

    reply = assert_unauthorized(output, "token_invalid")
    assert reply["id"] == "a1"


def test_open_with_an_expired_token_closes_with_token_expired(new_session, clock):
    session = new_session()
    token = make_token(ttl_s=3600, now_s=T0_S - 7200)

    output = session.open(token, clock.now)

    assert_unauthorized(output, "token_expired")


def test_auth_op_with_an_expired_token_echoes_the_id_and_closes(new_session, clock):
    session = new_session()
    token = make_token(ttl_s=60, now_s=T0_S - 60)  # expires exactly now, leeway 0

    output = send(session, {"op": "auth", "token": token, "id": 12}, clock.now)

    reply = assert_unauthorized(output, "token_expired")
    assert reply["id"] == 12


def test_poll_before_the_token_expires_does_nothing(new_session, clock):
    session = new_session()
    session.open(make_token(ttl_s=60, now_s=T0_S), clock.now)
    clock.advance_s(59)

    output = session.poll(clock.now)

    assert output == SessionOutput()


def test_poll_once_the_token_expired_closes_with_token_expired(new_session, clock):
    session = new_session()
    session.open(make_token(ttl_s=60, now_s=T0_S), clock.now)
    clock.advance_s(60)

    output = session.poll(clock.now)

    assert_unauthorized(output, "token_expired")
    assert session.is_closed


def test_reauth_with_another_subject_is_refused(new_session, clock):
    session = new_session()
    session.open(make_token(subject="trader-1", now_s=T0_S), clock.now)
    other = make_token(subject="trader-2", now_s=T0_S)

    output = send(session, {"op": "auth", "token": other, "id": 3}, clock.now)

    reply = assert_unauthorized(output, "token_invalid")
    assert reply["id"] == 3
    assert session.principal is not None
    assert session.principal.subject == "trader-1"


def test_reauth_with_the_same_subject_refreshes_the_expiry(new_session, clock):
    session = new_session()
    session.open(make_token(ttl_s=60, now_s=T0_S), clock.now)
    clock.advance_s(30)
    fresh = make_token(ttl_s=3600, now_s=T0_S + 30)

    reply = send(session, {"op": "auth", "token": fresh, "id": 4}, clock.now)
    clock.advance_s(31)  # past the first token's expiry
    polled = session.poll(clock.now)

    assert reply.messages[0]["type"] == "authenticated"
    assert reply.messages[0]["exp"] == T0_S + 3630
    assert reply.messages[0]["id"] == 4
    assert polled == SessionOutput()


def test_poll_before_the_auth_deadline_does_nothing(new_session, clock):
    session = new_session(auth_deadline_s=5.0)
    clock.advance_s(4.9)

    output = session.poll(clock.now)

    assert output == SessionOutput()


def test_poll_at_the_auth_deadline_without_auth_or_subscription_closes(new_session, clock):
    session = new_session(auth_deadline_s=5.0)
    clock.advance_s(5)

    output = session.poll(clock.now)

    assert_unauthorized(output, "auth_timeout")
    assert session.is_closed


def test_authenticated_session_has_no_auth_deadline(new_session, clock):
    session = new_session(auth_deadline_s=5.0)
    session.open(make_token(ttl_s=3600, now_s=T0_S), clock.now)
    clock.advance_s(60)

    output = session.poll(clock.now)

    assert output == SessionOutput()


def test_anonymous_subscriber_to_public_quotes_has_no_auth_deadline(new_session, clock):
    session = new_session(auth_deadline_s=5.0)
    clock.advance_s(1)
    send(session, subscribe(["AAPL"]), clock.now)
    clock.advance_s(60)

    output = session.poll(clock.now)

    assert output == SessionOutput()
    assert session.poll(clock.now + 3600 * NS) == SessionOutput()


def watch(*accounts: str) -> dict[str, object]:
    return {"op": "subscribe", "channel": "portfolio", "accounts": list(accounts)}


def test_reauth_with_fewer_accounts_unsubscribes_the_dropped_ones(new_session, clock):
    session = new_session()
    session.open(make_token(accounts=("ACC-1", "ACC-2", "ACC-3"), now_s=T0_S), clock.now)
    send(session, watch("ACC-1", "ACC-2", "ACC-3"), clock.now)
    send(session, subscribe(["AAPL"]), clock.now)
    narrower = make_token(accounts=("ACC-2",), now_s=T0_S)

    output = send(session, {"op": "auth", "token": narrower, "id": 5}, clock.now)

    assert output.messages[0]["type"] == "authenticated"
    assert output.commands == [Unsubscribe("portfolio", ("ACC-1", "ACC-3"), None)]
    assert session.subscriptions == {"portfolio": {"ACC-2"}, "quotes": {"AAPL"}}


def test_reauth_without_the_read_scope_unsubscribes_every_account(new_session, clock):
    session = new_session()
    session.open(make_token(accounts=("ACC-1",), now_s=T0_S), clock.now)
    send(session, watch("ACC-1"), clock.now)
    trade_only = make_token(accounts=("ACC-1",), scopes=("trade",), now_s=T0_S)

    output = send(session, {"op": "auth", "token": trade_only}, clock.now)

    assert output.commands == [Unsubscribe("portfolio", ("ACC-1",), None)]
    assert "portfolio" not in session.subscriptions


def test_reauth_granting_the_same_accounts_unsubscribes_nothing(new_session, clock):
    session = new_session()
    session.open(make_token(accounts=("ACC-1",), now_s=T0_S), clock.now)
    send(session, watch("ACC-1"), clock.now)

    output = send(session, {"op": "auth", "token": make_token(now_s=T0_S)}, clock.now)

    assert output.commands == []
    assert session.subscriptions == {"portfolio": {"ACC-1"}}


def test_portfolio_subscribe_without_the_read_scope_is_forbidden(new_session, clock):
    session = new_session()
    session.open(make_token(accounts=("ACC-1",), scopes=("trade",), now_s=T0_S), clock.now)

    output = send(session, watch("ACC-1"), clock.now)

    reply = assert_error(output, "forbidden")
    assert reply["accounts"] == ["ACC-1"]


def test_unknown_account_error_shortens_long_account_names(new_session, clock):
    long_name = "X" * 500
    session = new_session()
    session.open(make_token(accounts=(long_name,), now_s=T0_S), clock.now)

    output = send(session, watch(long_name), clock.now)

    reply = assert_error(output, "unknown_account")
    assert reply["accounts"] == ["X" * 64]
