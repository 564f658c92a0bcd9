"""ClientSession and the connections per principal: a slot per authenticated subject."""

from __future__ import annotations

from gateway.access import PrincipalSlots
from gateway.ws import closecodes
from tests.builders import make_token
from tests.unit.gateway.ws.sessiondriver import T0_S, assert_error, send


def test_a_subject_past_its_limit_is_refused_and_closed_4029(new_session, clock):
    slots = PrincipalSlots(1)
    first, second = new_session(slots=slots), new_session(slots=slots)
    token = make_token(subject="trader-1", now_s=T0_S)
    assert first.open(token, clock.now).close is None

    output = second.open(token, clock.now)

    reply = assert_error(output, "too_many_connections")
    assert "at most 1 connections per token subject" in str(reply["message"])
    assert output.close is not None
    assert output.close.code == closecodes.TOO_MANY_CONNECTIONS == 4029
    assert second.principal is None


def test_the_limit_applies_to_an_auth_message_too(new_session, clock):
    slots = PrincipalSlots(1)
    first, second = new_session(slots=slots), new_session(slots=slots)
    token = make_token(subject="trader-1", now_s=T0_S)
    first.open(token, clock.now)

    output = send(second, {"op": "auth", "token": token, "id": 3}, clock.now)

    assert assert_error(output, "too_many_connections")["id"] == 3
    assert output.close is not None


def test_renewing_a_token_takes_no_second_slot(new_session, clock):
    slots = PrincipalSlots(1)
    session = new_session(slots=slots)
    session.open(make_token(subject="trader-1", now_s=T0_S), clock.now)

    output = send(
        session, {"op": "auth", "token": make_token(subject="trader-1", now_s=T0_S)}, clock.now
    )

    assert output.close is None
    assert slots.held("trader-1") == 1


def test_ending_a_session_gives_its_slot_back_once(new_session, clock):
    slots = PrincipalSlots(1)
    session = new_session(slots=slots)
    session.open(make_token(subject="trader-1", now_s=T0_S), clock.now)

    session.end()
    session.end()

    assert slots.held("trader-1") == 0
    assert (
        new_session(slots=slots).open(make_token(subject="trader-1", now_s=T0_S), clock.now).close
        is None
    )


def test_other_subjects_are_not_limited_by_one_full_subject(new_session, clock):
    slots = PrincipalSlots(1)
    new_session(slots=slots).open(make_token(subject="trader-1", now_s=T0_S), clock.now)

    output = new_session(slots=slots).open(make_token(subject="trader-2", now_s=T0_S), clock.now)

    assert output.close is None
