"""Hypothesis against /ws's transport: any frames after the handshake, a documented close.

``WebSocketConnection`` is driven as uvicorn drives it (``connection_made``,
then ``data_received``) over an in-memory transport, after a real
handshake. The client sends masked frames of any opcode, flag and payload
(valid JSON, random bytes, invalid UTF-8), and raw garbage. Whatever it
sends, the server never raises; every close frame it writes carries a code
from ``closecodes`` (docs/protocol.md's table), and every error message a
documented code.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.uri import parse_uri

from gateway.app import build_gateway
from gateway.ws import closecodes
from gateway.ws.connection import WebSocketConnection
from gateway.ws.hub import HUB_STATE_KEY, ConnectionHub
from tests.builders import make_settings
from tests.test_docs import DOCS, first_column_codes, section

DOCUMENTED_ERRORS = first_column_codes(section(DOCS / "protocol.md", "## Error codes"))
CLOSE_CODES = {getattr(closecodes, name) for name in closecodes.__all__}


class MemoryTransport:
    """Just enough of an asyncio transport for one connection, keeping what is written."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.is_closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.is_closed = True

    abort = close

    def is_closing(self) -> bool:
        return self.is_closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("203.0.113.9", 40000) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return False


class ServerState:
    def __init__(self) -> None:
        self.connections: set[object] = set()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> ConnectionHub:
    settings = make_settings(tmp_path_factory.mktemp("fuzz"))
    return build_gateway(settings).hub


def masked(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0) -> bytes:
    """A client frame (RFC 6455 5.2), masked with a zero key so the payload reads as is."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", first, 0x80 | length)
    elif length < 65_536:
        head = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, length)
    return head + b"\x00\x00\x00\x00" + payload


payloads = st.one_of(
    st.binary(max_size=200),
    st.just(b"\xff\xfe\xfd"),
    st.builds(
        lambda op, key: orjson.dumps({"op": op, "channel": "quotes", "symbols": [key]}),
        st.sampled_from(["subscribe", "unsubscribe", "ping", "auth", "x"]),
        st.sampled_from(["AAPL", "MSFT", "", "NOPE"]),
    ),
    st.integers(min_value=1, max_value=3_000).map(lambda d: b"[" * d + b"]" * d),
)
frames = st.one_of(
    st.builds(
        masked,
        st.sampled_from([0x0, 0x1, 0x2, 0x3, 0x8, 0x9, 0xA, 0xB, 0xF]),
        payloads,
        fin=st.booleans(),
        rsv=st.integers(min_value=0, max_value=7),
    ),
    st.builds(lambda p: masked(0x1, p), payloads),
    st.builds(lambda n: masked(0x1, b"x" * n), st.integers(min_value=16_000, max_value=70_000)),
    st.binary(min_size=1, max_size=40),  # not a frame at all (unmasked, truncated, ...)
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(sent=st.lists(frames, min_size=1, max_size=8))
def test_any_frames_get_a_documented_close_or_error(hub, sent):
    asyncio.run(_drive(hub, sent))


async def _drive(hub: ConnectionHub, sent: list[bytes]) -> None:
    transport = MemoryTransport()
    connection = WebSocketConnection(
        config=None,  # type: ignore[arg-type]  # the protocol never reads uvicorn's config
        server_state=ServerState(),  # type: ignore[arg-type]
        app_state={HUB_STATE_KEY: hub},
    )
    client = ClientProtocol(parse_uri("ws://127.0.0.1/ws"))
    client.send_request(client.connect())
    connection.connection_made(transport)  # type: ignore[arg-type]
    connection.data_received(b"".join(client.data_to_send()))
    for data in sent:
        if transport.is_closed:
            break
        connection.data_received(data)
    connection.connection_lost(None)

    client.receive_data(bytes(transport.written))
    for event in client.events_received():
        if isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
            close = Close.parse(event.data)
            assert close.code in CLOSE_CODES, close
        elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
            for message in orjson.loads(event.data):
                if message["type"] == "error":
                    assert message["code"] in DOCUMENTED_ERRORS, message
    assert connection not in hub.connections
