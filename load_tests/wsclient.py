"""A lean WebSocket client (RFC 6455) for thousands of connections per process.

A load generator must cost far less per message than the server it
measures. General-purpose clients spend tens of microseconds per frame in
Python; this one is an ``asyncio.Protocol`` that parses every frame of a
read in one loop and hands text payloads over as memoryviews, so a frame
costs a few microseconds. It does what a trading client needs and no more:
the opening handshake (checking ``Sec-WebSocket-Accept``), text frames in
both directions (client frames masked), fragmented messages, answering
pings, and the closing handshake, over TCP (``ws://``) or TLS (``wss://``,
verified against the system's CAs). No extensions (no compression).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import ssl
import struct
import time
from collections.abc import Callable, Mapping
from typing import Final, cast
from urllib.parse import urlsplit

__all__ = ["HandshakeError", "WebSocketProtocol", "connect"]

_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HEADER: Final = 16_384
_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0, 1, 2, 8, 9, 10
ABNORMAL_CLOSE: Final = 1006


class HandshakeError(Exception):
    """The server refused or botched the opening handshake."""


class WebSocketProtocol(asyncio.Protocol):
    """One client connection; see the module docstring.

    ``on_message(payload, recv_ns)`` gets each complete text message (a
    memoryview valid only during the call: parse it, do not keep it);
    ``recv_ns`` is the time the read that completed it arrived.
    ``closed`` resolves with the close code (1006 when the connection
    dropped without a closing handshake).
    """

    def __init__(
        self,
        request: bytes,
        key: bytes,
        on_message: Callable[[memoryview | bytes, int], None],
        *,
        read_pause_s: float = 0.0,
    ) -> None:
        self._request = request
        self._read_pause_s = read_pause_s
        self._accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())  # noqa: S324  # RFC 6455
        self._on_message = on_message
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._close_code: int | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[int] = loop.create_future()

    # --- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport (asyncio's or uvloop's, which does not subclass it).
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        recv_ns = time.time_ns()
        self._buffer += data
        if not self.opened.done() and not self._handshake():
            return
        self._frames(recv_ns)
        if self._read_pause_s and self._transport is not None:
            # A slow reader: take a break after every read.
            self._transport.pause_reading()
            asyncio.get_running_loop().call_later(self._read_pause_s, self._resume)

    def _resume(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(HandshakeError(f"connection lost during handshake: {exc}"))
        if not self.closed.done():
            self.closed.set_result(
                self._close_code if self._close_code is not None else ABNORMAL_CLOSE
            )

    # --- sending ----------------------------------------------------------------------

    def send_text(self, payload: bytes) -> None:
        """Send one text message."""
        self._send(_OP_TEXT, payload)

    def close(self, code: int = 1000) -> None:
        """Start the closing handshake (the server echoes and drops the connection)."""
        if self._transport is not None and not self._transport.is_closing():
            self._send(_OP_CLOSE, struct.pack("!H", code))

    def abort(self) -> None:
        """Drop the connection at once."""
        if self._transport is not None:
            self._transport.abort()

    def _send(self, opcode: int, payload: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65_536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        mask = os.urandom(4)
        transport.write(header + mask + _masked(payload, mask))

    # --- receiving --------------------------------------------------------------------

    def _handshake(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_HEADER:
                self._fail_handshake("response headers too long")
            return False
        head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        status = head[0].split(" ", 2)
        if len(status) < 2 or status[1] != "101":
            self._fail_handshake(f"expected 101, got {head[0]!r}")
            return False
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("sec-websocket-accept", "").encode() != self._accept:
            self._fail_handshake("bad Sec-WebSocket-Accept")
            return False
        self.opened.set_result(None)
        return True

    def _fail_handshake(self, reason: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(HandshakeError(reason))
        self.abort()

    def _frames(self, recv_ns: int) -> None:
        buffer = self._buffer
        view = memoryview(buffer)
        size = len(buffer)
        at = 0
        try:
            while size - at >= 2:
                b0, b1 = buffer[at], buffer[at + 1]
                length = b1 & 0x7F
                start = at + 2
                if length == 126:
                    if size - at < 4:
                        break
                    (length,) = struct.unpack_from("!H", buffer, at + 2)
                    start = at + 4
                elif length == 127:
                    if size - at < 10:
                        break
                    (length,) = struct.unpack_from("!Q", buffer, at + 2)
                    start = at + 10
                if b1 & 0x80:  # a server must not mask
                    self._protocol_error()
                    return
                end = start + length
                if end > size:
                    break
                self._frame(b0, view[start:end], recv_ns)
                at = end
        finally:
            view.release()
            del buffer[:at]

    def _frame(self, b0: int, payload: memoryview, recv_ns: int) -> None:
        opcode = b0 & 0x0F
        fin = b0 & 0x80
        if opcode in (_OP_TEXT, _OP_BINARY, _OP_CONT):
            if fin and not self._fragments and opcode != _OP_CONT:
                self._on_message(payload, recv_ns)  # only valid during the call
            else:
                self._fragments.append(bytes(payload))
                if fin:
                    message = b"".join(self._fragments)
                    self._fragments.clear()
                    self._on_message(message, recv_ns)
        elif opcode == _OP_PING:
            self._send(_OP_PONG, bytes(payload))
        elif opcode == _OP_CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            self._close_code = code
            self._send(_OP_CLOSE, bytes(payload[:2]))
            if self._transport is not None:
                self._transport.close()
        elif opcode != _OP_PONG:
            self._protocol_error()

    def _protocol_error(self) -> None:
        self._close_code = 1002
        self.abort()


def _masked(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return b""
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


async def connect(
    url: str,
    on_message: Callable[[memoryview | bytes, int], None],
    *,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
    receive_buffer: int | None = None,
    read_pause_s: float = 0.0,
) -> WebSocketProtocol:
    """Open ``ws://host:port/path`` and complete the handshake.

    ``receive_buffer`` sets the socket's receive buffer (SO_RCVBUF) before
    connecting, and ``read_pause_s`` pauses reading after every read: with
    both small, the client reads slower than the server sends and backs it
    up, as a slow client on a poor network does.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"the URL must be ws:// or wss://, was {url!r}")
    tls = ssl.create_default_context() if parts.scheme == "wss" else None
    port = parts.port or (443 if tls else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    key = base64.b64encode(os.urandom(16))
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {parts.hostname}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    loop = asyncio.get_running_loop()

    def factory() -> WebSocketProtocol:
        return WebSocketProtocol(request, key, on_message, read_pause_s=read_pause_s)

    async with asyncio.timeout(timeout_s):
        if receive_buffer is None:
            _, protocol = await loop.create_connection(factory, parts.hostname, port, ssl=tls)
        else:
            info = await loop.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
            family, kind, proto, _, address = info[0]
            sock = socket.socket(family, kind, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, address)
            except OSError:
                sock.close()
                raise
            _, protocol = await loop.create_connection(
                factory, sock=sock, ssl=tls, server_hostname=parts.hostname if tls else None
            )
        await protocol.opened
    return protocol
