"""The lean WebSocket client's parser and framing, fed bytes by hand."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest

from load_tests.wsclient import HandshakeError, WebSocketProtocol

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455's worked example for KEY


class Transport:
    """Collects what the protocol writes."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.aborted = self.closing = True

    def pause_reading(self) -> None:
        pass


def response(accept: bytes = ACCEPT, status: str = "101 Switching Protocols") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept.decode()}\r\n\r\n"
    ).encode()


def frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        return struct.pack("!BB", first, n) + payload
    if n < 65_536:
        return struct.pack("!BBH", first, 126, n) + payload
    return struct.pack("!BBQ", first, 127, n) + payload


def unmask(data: bytes) -> tuple[int, bytes]:
    opcode, second = data[0] & 0x0F, data[1]
    assert second & 0x80, "client frames must be masked"
    n, at = second & 0x7F, 2
    if n == 126:
        (n,) = struct.unpack_from("!H", data, 2)
        at = 4
    mask = data[at : at + 4]
    body = data[at + 4 : at + 4 + n]
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(body))


async def opened() -> tuple[WebSocketProtocol, Transport, list[bytes]]:
    received: list[bytes] = []
    protocol = WebSocketProtocol(
        b"GET / HTTP/1.1\r\n\r\n", KEY, lambda m, t: received.append(bytes(m))
    )
    transport = Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(response())
    await protocol.opened
    return protocol, transport, received


def test_the_accept_value_is_rfc_6455s() -> None:
    guid = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    assert base64.b64encode(hashlib.sha1(KEY + guid).digest()) == ACCEPT  # noqa: S324


async def test_frames_split_and_joined_across_reads_are_delivered_whole() -> None:
    protocol, _, received = await opened()
    stream = frame(1, b'[{"a":1}]') + frame(1, b"x" * 300) + frame(1, b"y" * 70_000)

    for at in range(0, len(stream), 1_000):  # reads of 1,000 bytes
        protocol.data_received(stream[at : at + 1_000])

    assert received == [b'[{"a":1}]', b"x" * 300, b"y" * 70_000]


async def test_a_fragmented_message_is_joined() -> None:
    protocol, _, received = await opened()

    protocol.data_received(frame(1, b"[1,", fin=False) + frame(0, b"2]"))

    assert received == [b"[1,2]"]


async def test_a_ping_is_answered_with_a_masked_pong_of_the_same_payload() -> None:
    protocol, transport, _ = await opened()

    protocol.data_received(frame(9, b"hello"))

    assert unmask(transport.written[-1]) == (10, b"hello")


async def test_sent_text_is_masked_and_round_trips() -> None:
    protocol, transport, _ = await opened()
    message = b'{"op":"subscribe","channel":"quotes","symbols":["AAPL"]}' * 3

    protocol.send_text(message)

    assert unmask(transport.written[-1]) == (1, message)


async def test_a_close_frame_is_echoed_and_resolves_with_its_code() -> None:
    protocol, transport, _ = await opened()

    protocol.data_received(frame(8, struct.pack("!H", 4008) + b"slow_consumer"))
    protocol.connection_lost(None)

    assert unmask(transport.written[-1]) == (8, struct.pack("!H", 4008))
    assert await protocol.closed == 4008


async def test_a_dropped_connection_resolves_as_1006() -> None:
    protocol, _, _ = await opened()

    protocol.connection_lost(ConnectionResetError())

    assert await protocol.closed == 1006


async def test_a_masked_server_frame_is_a_protocol_error() -> None:
    protocol, transport, _ = await opened()

    protocol.data_received(bytes([0x81, 0x80 | 2]) + b"abcd" + b"xy")
    protocol.connection_lost(None)

    assert transport.aborted
    assert await protocol.closed == 1002


@pytest.mark.parametrize(
    "reply",
    [response(accept=b"wrong="), response(status="403 Forbidden"), response(status="503 Busy")],
)
async def test_a_bad_handshake_reply_fails_the_open(reply: bytes) -> None:
    protocol = WebSocketProtocol(b"GET / HTTP/1.1\r\n\r\n", KEY, lambda m, t: None)
    transport = Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]

    protocol.data_received(reply)

    with pytest.raises(HandshakeError):
        await protocol.opened
    assert transport.aborted
