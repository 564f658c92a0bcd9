"""ClientSession: ops, commands and the error codes of message parsing."""

from __future__ import annotations

import json

import pytest

from gateway.ws.encoding import encode_body
from gateway.ws.session import Recovery, Subscribe, Unsubscribe
from tests.builders import make_token
from tests.unit.gateway.ws.sessiondriver import T0_S, assert_error, send, subscribe

# --- ping, subscribe, unsubscribe ------------------------------------------------


def test_ping_with_id_gets_pong_with_the_same_id(new_session, clock):
    session = new_session()

    output = send(session, {"op": "ping", "id": "p-1"}, clock.now)

    assert output.messages == [{"type": "pong", "id": "p-1"}]
    assert output.close is None


def test_ping_without_id_gets_pong_without_id(new_session, clock):
    session = new_session()

    output = send(session, {"op": "ping"}, clock.now)

    assert output.messages == [{"type": "pong"}]


def test_subscribe_returns_a_command_with_deduplicated_keys_in_order(new_session, clock):
    session = new_session()

    output = send(session, subscribe(["MSFT", "AAPL", "MSFT"], id=9), clock.now)

    assert output.messages == []
    assert output.commands == [Subscribe("quotes", ("MSFT", "AAPL"), 9, None)]
    assert session.subscriptions == {"quotes": {"MSFT", "AAPL"}}


def test_subscribe_with_integer_last_seq_parses_recovery_for_its_one_key(new_session, clock):
    session = new_session()

    output = send(session, subscribe(["AAPL"], epoch="e1", last_seq=41), clock.now)

    assert output.commands == [Subscribe("quotes", ("AAPL",), None, Recovery("e1", {"AAPL": 41}))]


def test_subscribe_with_last_seq_object_parses_recovery_for_every_key(new_session, clock):
    session = new_session()
    message = subscribe(["AAPL", "MSFT"], epoch="e1", last_seq={"AAPL": 4, "MSFT": 0})

    output = send(session, message, clock.now)

    (command,) = output.commands
    assert isinstance(command, Subscribe)
    assert command.recovery == Recovery("e1", {"AAPL": 4, "MSFT": 0})


def test_unsubscribe_names_only_the_keys_that_were_subscribed(new_session, clock):
    session = new_session()
    send(session, subscribe(["AAPL", "MSFT"]), clock.now)
    message = {"op": "unsubscribe", "channel": "quotes", "symbols": ["MSFT", "NVDA", "MSFT"]}

    output = send(session, {**message, "id": 4}, clock.now)

    assert output.commands == [Unsubscribe("quotes", ("MSFT",), 4)]
    assert session.subscriptions == {"quotes": {"AAPL"}}


# --- bad_json, bad_request, bad_frame, unknown_* ----------------------------------


def test_malformed_json_gives_bad_json_and_keeps_the_connection(new_session, clock):
    session = new_session()

    output = session.receive(b'{"op": "ping"', clock.now)

    reply = assert_error(output, "bad_json")
    assert "id" not in reply
    assert output.close is None


@pytest.mark.parametrize(
    "data",
    [
        b'{"op":"ping","id":"\xff"}',
        b'{"op":"ping","id":"\xed\xa0\x80"}',  # a UTF-16 surrogate is not valid UTF-8
        '{"op":"ping","id":1}'.encode("utf-16"),
    ],
    ids=["stray-byte", "encoded-surrogate", "utf-16"],
)
def test_invalid_utf8_gives_bad_json(new_session, clock, data):
    session = new_session()

    output = session.receive(data, clock.now)

    assert_error(output, "bad_json")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_literal_gives_bad_json(new_session, clock, literal):
    session = new_session()

    output = session.receive(f'{{"op":"ping","x":{literal}}}'.encode(), clock.now)

    assert_error(output, "bad_json")


@pytest.mark.parametrize("data", [b"[]", b'"ping"', b"42", b"null"])
def test_json_that_is_not_an_object_gives_bad_request(new_session, clock, data):
    session = new_session()

    output = session.receive(data, clock.now)

    assert_error(output, "bad_request")
    assert output.close is None


@pytest.mark.parametrize("bad_id", [True, 1.5, [1], {"n": 1}, "x" * 65])
def test_id_of_a_bad_type_gives_bad_request_without_echo(new_session, clock, bad_id):
    session = new_session()

    output = send(session, {"op": "ping", "id": bad_id}, clock.now)

    reply = assert_error(output, "bad_request")
    assert "id" not in reply


def test_id_of_64_characters_is_echoed(new_session, clock):
    session = new_session()

    output = send(session, {"op": "ping", "id": "x" * 64}, clock.now)

    assert output.messages == [{"type": "pong", "id": "x" * 64}]


@pytest.mark.parametrize(
    "symbols_field",
    [{}, {"symbols": []}, {"symbols": "AAPL"}, {"symbols": [""]}, {"symbols": ["AAPL", 1]}],
    ids=["missing", "empty", "string", "empty-symbol", "non-string"],
)
def test_subscribe_without_a_symbol_list_gives_bad_request(new_session, clock, symbols_field):
    session = new_session()
    message = {"op": "subscribe", "channel": "quotes", "id": 7, **symbols_field}

    output = send(session, message, clock.now)

    reply = assert_error(output, "bad_request")
    assert reply["id"] == 7
    assert output.commands == []


@pytest.mark.parametrize(
    ("symbols", "recovery"),
    [
        (["AAPL"], {"last_seq": 3}),
        (["AAPL"], {"epoch": "", "last_seq": 3}),
        (["AAPL"], {"epoch": "e1"}),
        (["AAPL"], {"epoch": "e1", "last_seq": "3"}),
        (["AAPL"], {"epoch": "e1", "last_seq": -1}),
        (["AAPL"], {"epoch": "e1", "last_seq": True}),
        (["AAPL", "MSFT"], {"epoch": "e1", "last_seq": 3}),
        (["AAPL", "MSFT"], {"epoch": "e1", "last_seq": {"AAPL": 3}}),
        (["AAPL", "MSFT"], {"epoch": "e1", "last_seq": {"AAPL": 3, "MSFT": 1.0}}),
    ],
)
def test_subscribe_with_bad_recovery_fields_gives_bad_request(
    new_session, clock, symbols, recovery
):
    session = new_session()

    output = send(session, subscribe(symbols, id=8, **recovery), clock.now)

    reply = assert_error(output, "bad_request")
    assert reply["id"] == 8
    assert session.subscriptions == {}


def test_auth_without_a_token_gives_bad_request(new_session, clock):
    session = new_session()

    output = send(session, {"op": "auth", "id": 2}, clock.now)

    reply = assert_error(output, "bad_request")
    assert reply["id"] == 2


def test_binary_frame_gives_bad_frame(new_session, clock):
    session = new_session()

    output = session.receive(b'{"op":"ping"}', clock.now, is_binary=True)

    assert_error(output, "bad_frame")
    assert output.close is None


def test_unknown_op_gives_unknown_op_naming_it(new_session, clock):
    session = new_session()

    output = send(session, {"op": "dance", "id": 3}, clock.now)

    reply = assert_error(output, "unknown_op")
    assert reply["id"] == 3
    assert reply["op"] == "dance"


def test_unknown_channel_gives_unknown_channel(new_session, clock):
    session = new_session()

    output = send(
        session, {"op": "subscribe", "channel": "news", "symbols": ["AAPL"], "id": 11}, clock.now
    )

    reply = assert_error(output, "unknown_channel")
    assert reply["id"] == 11


def test_unknown_symbol_lists_the_unknown_ones_and_subscribes_nothing(new_session, clock):
    session = new_session()

    output = send(session, subscribe(["AAPL", "ZZZZ", "QQQQ"], id=5), clock.now)

    reply = assert_error(output, "unknown_symbol")
    assert reply["symbols"] == ["ZZZZ", "QQQQ"]
    assert reply["id"] == 5
    assert output.commands == []
    assert session.subscriptions == {}


@pytest.mark.parametrize(
    "message",
    [
        {"op": "ping", "id": 10**23},
        {"op": "ping", "id": -(10**23)},
        {"op": "ping", "id": "\ud800"},
        {"op": 10**23},
        {"op": "\udfff"},
        {"op": json.loads("[" * 300 + "]" * 300)},
        {"op": "subscribe", "channel": "quotes", "symbols": ["\ud800"]},
    ],
    ids=[
        "huge-id",
        "huge-negative-id",
        "surrogate-id",
        "huge-op",
        "surrogate-op",
        "deep-op",
        "surrogate-symbol",
    ],
)
def test_every_reply_to_hostile_input_can_be_encoded_for_the_wire(new_session, clock, message):
    # The transport encodes each reply with encoding.encode_body (orjson).
    session = new_session()

    output = session.receive(json.dumps(message).encode(), clock.now)

    for reply in output.messages:
        assert isinstance(json.loads(encode_body(reply) + b"}"), dict)


# --- max_rate_ms -------------------------------------------------------------------


def test_subscribe_with_max_rate_ms_carries_it_in_the_command(new_session, clock):
    session = new_session()

    output = send(session, subscribe(["AAPL"], max_rate_ms=250), clock.now)

    assert output.commands == [Subscribe("quotes", ("AAPL",), None, None, 250)]


@pytest.mark.parametrize("bad", [-1, 60_001, 2.5, "250", True, None, [250]])
def test_a_max_rate_ms_that_is_not_an_integer_in_range_gives_bad_request(new_session, clock, bad):
    session = new_session()

    output = send(session, subscribe(["AAPL"], max_rate_ms=bad), clock.now)

    reply = assert_error(output, "bad_request")
    assert "max_rate_ms" in str(reply["message"])
    assert session.subscriptions == {}


def test_max_rate_ms_on_the_lossless_orders_channel_gives_bad_request(new_session, clock):
    session = new_session()
    token = make_token(scopes=["orders:read"], now_s=T0_S)
    send(session, {"op": "auth", "token": token}, clock.now)
    message = {"op": "subscribe", "channel": "orders", "account": "ACC-1", "max_rate_ms": 100}

    output = send(session, message, clock.now)

    reply = assert_error(output, "bad_request")
    assert "lossless" in str(reply["message"])
