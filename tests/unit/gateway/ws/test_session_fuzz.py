"""Hypothesis against the session: whatever a client sends, a documented error or close code.

Random bytes, invalid UTF-8, deeply nested JSON, huge numbers, and
messages with every op and field of the wrong type or value, one at a time
and as sequences over time. The session must never raise; every reply must
be a documented message type; every error code must be in
docs/protocol.md's table, and every close code in ``closecodes``; and
after a close it says nothing more.
"""

from __future__ import annotations

import json

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.access import PrincipalSlots
from gateway.auth import TokenVerifier
from gateway.settings import WebSocketSettings
from gateway.ws import closecodes
from gateway.ws.channelspecs import OrdersChannelSpec, PortfolioChannelSpec, QuotesChannelSpec
from gateway.ws.session import ClientSession, SessionOutput
from tests.builders import NS, TEST_SECRET, make_token
from tests.test_docs import DOCS, first_column_codes, section
from tests.unit.gateway.ws.sessiondriver import ACCOUNTS, SYMBOLS, T0_S

DOCUMENTED_ERRORS = first_column_codes(section(DOCS / "protocol.md", "## Error codes"))
CLOSE_CODES = {getattr(closecodes, name) for name in closecodes.__all__}
# What the session itself replies (updates and snapshots come from the channels).
REPLY_TYPES = {"error", "pong", "authenticated"}
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def new_session(*, allow_anonymous: bool = True) -> ClientSession:
    return ClientSession(
        WebSocketSettings(),
        channels={
            "quotes": QuotesChannelSpec(SYMBOLS, is_open=allow_anonymous),
            "portfolio": PortfolioChannelSpec(ACCOUNTS),
            "orders": OrdersChannelSpec(ACCOUNTS),
        },
        verifier=TokenVerifier(TEST_SECRET, issuer="tickgate", leeway_s=0),
        allow_anonymous_quotes=allow_anonymous,
        decode_json=orjson.loads,
        now_ns=T0_S * NS,
        principal_slots=PrincipalSlots(4),
    )


def assert_documented(output: SessionOutput) -> None:
    for message in output.messages:
        assert message["type"] in REPLY_TYPES, message
        if message["type"] == "error":
            assert message["code"] in DOCUMENTED_ERRORS, message
            assert isinstance(message["retry"], bool)
            assert isinstance(message["message"], str)
        json.dumps(message, allow_nan=False)  # every reply can go on the wire
    if output.close is not None:
        assert output.close.code in CLOSE_CODES
        assert output.close.reason in DOCUMENTED_ERRORS


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
GOOD = make_token(subject="fuzz", accounts=["ACC-1"], scopes=("read",), now_s=T0_S)
field_values = json_values | st.sampled_from(
    [GOOD, "AAPL", "ACC-1", "quotes", "portfolio", "orders", "", "x" * 70_000, 2**63, -1]
)
messages = st.fixed_dictionaries(
    {
        "op": st.sampled_from(["auth", "subscribe", "unsubscribe", "ping", "PING", "nope"])
        | json_values
    },
    optional={
        "id": field_values,
        "channel": st.sampled_from(["quotes", "portfolio", "orders", "other"]) | json_values,
        "symbols": st.lists(st.sampled_from(sorted(SYMBOLS)) | st.text(max_size=5), max_size=4)
        | field_values,
        "account": field_values,
        "accounts": st.lists(field_values, max_size=4) | field_values,
        "token": field_values,
        "epoch": field_values,
        "last_seq": field_values | st.dictionaries(st.text(max_size=5), field_values, max_size=3),
    },
)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


raw_payloads = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=40).map(lambda b: b"\xff\xfe" + b),  # never UTF-8
    st.integers(min_value=1, max_value=20_000).map(nested),
    st.integers(min_value=1, max_value=5_000).map(lambda d: b'{"a":' * d + b"1" + b"}" * d),
    st.integers(min_value=19, max_value=400).map(
        lambda n: b'{"op":"ping","id":1' + b"0" * n + b"}"
    ),
    st.sampled_from(
        [b"NaN", b'{"op":"ping","id":Infinity}', b'{"op":"ping"', b"", b'"\\ud800"', b"1e999"]
    ),
)


@FUZZ
@given(payload=raw_payloads, is_binary=st.booleans())
def test_any_bytes_get_a_documented_answer(payload, is_binary):
    session = new_session()

    output = session.receive(payload, T0_S * NS, is_binary=is_binary)

    assert_documented(output)


@FUZZ
@given(message=messages, allow_anonymous=st.booleans())
def test_any_message_gets_a_documented_answer(message, allow_anonymous):
    session = new_session(allow_anonymous=allow_anonymous)

    output = session.receive(json.dumps(message).encode(), T0_S * NS)

    assert_documented(output)


@FUZZ
@given(
    steps=st.lists(
        st.tuples(messages | raw_payloads, st.floats(min_value=0, max_value=3)),
        min_size=1,
        max_size=40,
    ),
    token=st.sampled_from([None, GOOD, "garbage"]),
)
def test_any_sequence_over_time_gets_documented_answers_and_silence_after_a_close(steps, token):
    session = new_session()
    now_ns = T0_S * NS
    closed = False
    outputs = [session.open(token, now_ns)]
    for step, elapsed_s in steps:
        now_ns += int(elapsed_s * NS)
        payload = step if isinstance(step, bytes) else json.dumps(step).encode()
        outputs.append(session.receive(payload, now_ns))
        outputs.append(session.poll(now_ns))
    for output in outputs:
        if closed:
            assert output == SessionOutput()
        assert_documented(output)
        closed = closed or output.close is not None
