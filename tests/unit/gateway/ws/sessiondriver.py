"""Driving a ClientSession in tests: fixtures' building blocks and message helpers."""

from __future__ import annotations

import json

from gateway.ws.session import ClientSession, SessionOutput

SYMBOLS = frozenset({"AAPL", "MSFT", "NVDA", "AMZN"})
ACCOUNTS = frozenset({"ACC-1", "ACC-2", "ACC-3"})
# In the past of the wall clock: PyJWT checks a token's iat against the wall
# clock, whatever time the session is given (see test_auth).
T0_S = 1_700_000_000


def send(session: ClientSession, message: object, now_ns: int) -> SessionOutput:
    return session.receive(json.dumps(message).encode(), now_ns)


def only(output: SessionOutput) -> dict[str, object]:
    assert len(output.messages) == 1, output.messages
    return output.messages[0]


def assert_error(output: SessionOutput, code: str, *, retry: bool = False) -> dict[str, object]:
    reply = only(output)
    assert reply["type"] == "error"
    assert reply["code"] == code
    assert reply["retry"] is retry
    return reply


def subscribe(symbols: list[str], **fields: object) -> dict[str, object]:
    return {"op": "subscribe", "channel": "quotes", "symbols": symbols, **fields}
