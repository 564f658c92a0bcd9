"""``/ws``: tickgate's WebSocket transport, plugged into uvicorn as its ``ws`` protocol.

uvicorn parses HTTP and, on an upgrade request, hands the socket to this
protocol class. It runs the WebSocket framing with the sans-I/O
``websockets.server.ServerProtocol`` and pumps messages between the socket
and the ``ClientSession``. Serving ``/ws`` here rather than through ASGI is
what lets the fan-out write synchronously in the same loop iteration as the
tick batch, see the socket's real buffer size, stop writing at its
high-water mark and conflate instead, and force a close on a client that
stopped reading. Plain HTTP still goes to the Starlette app.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import socket
import struct
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import parse_qs, urlsplit

from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from gateway.uvicornseam import PluggedProtocol
from gateway.ws import closecodes
from gateway.ws.encoding import encode_body
from gateway.ws.hub import HUB_STATE_KEY, ConnectionHub
from gateway.ws.outbox import OutboundBound, Outbox
from gateway.ws.session import ClientSession, SessionOutput

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

__all__ = ["WS_PATH", "ConnectionState", "WebSocketConnection"]

logger = logging.getLogger(__name__)

WS_PATH: Final = "/ws"
_NS_PER_S: Final = 1_000_000_000
# The transport refuses messages this many times over the session limit
# outright (close 1009) instead of buffering them for the session to refuse.
_TRANSPORT_SIZE_FACTOR: Final = 4
_HEARTBEAT_BODY: Final = encode_body({"type": "heartbeat"})
# RFC 6455's code for a connection that ended without a close frame (never sent).
_NO_CLOSE_FRAME: Final = "1006"
# SO_LINGER on, zero seconds: closing the socket resets the connection.
_LINGER_RESET: Final = struct.pack("ii", 1, 0)


class ConnectionState(enum.Enum):
    """Where a connection is in its life; it only moves down this list."""

    CONNECTING = enum.auto()
    """Before the handshake is accepted (a refused handshake stays here)."""
    OPEN = enum.auto()
    """Accepted: the session runs and the fan-out writes."""
    CLOSING = enum.auto()
    """Our close frame is queued; the peer's answer or the abort timer ends it."""
    CLOSED = enum.auto()
    """The transport is gone."""


_ENDING: Final = frozenset({ConnectionState.CLOSING, ConnectionState.CLOSED})


class WebSocketConnection(PluggedProtocol):
    """One client connection on ``/ws``; the fan-out's ``Subscriber``.

    Its lifecycle is one ``ConnectionState``. Whether the transport is over
    its high-water mark (``pause_writing``) is a separate flag: flow control
    comes and goes while the connection is open.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        hub = app_state.get(HUB_STATE_KEY)
        self._hub: ConnectionHub | None = hub if isinstance(hub, ConnectionHub) else None
        self.outbox = Outbox()
        self._transport: asyncio.Transport | None = None
        self._session: ClientSession | None = None
        self.state = ConnectionState.CONNECTING
        self._is_paused = False
        self._fragments: list[bytes] = []
        self._fragment_is_binary = False
        self._abort_timer: asyncio.TimerHandle | None = None
        self._rate_timer: asyncio.TimerHandle | None = None  # a max_rate_ms entry falls due
        self._rate_due_ns = 0
        self._last_sent_ns = 0
        self._ping_payload: bytes | None = None
        self._ping_sent_ns = 0
        self._conn_id = 0
        self.log = _ConnectionLog(logger, {"conn_id": 0, "account_id": None})
        if self._hub is None:
            self._ws = ServerProtocol()
            self._bound = OutboundBound(1, 1)
            return
        ws, fanout = self._hub.ws, self._hub.fanout
        extensions = [ServerPerMessageDeflateFactory()] if ws.per_message_deflate else None
        self._ws = ServerProtocol(
            extensions=extensions,
            max_size=ws.max_inbound_bytes * _TRANSPORT_SIZE_FACTOR,
        )
        self._bound = OutboundBound(
            fanout.max_outbox_bytes, fanout.slow_consumer_grace_ms * 1_000_000
        )

    # --- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Take the socket over from uvicorn's HTTP protocol."""
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        self.track(transport)
        if self._hub is not None:
            fanout = self._hub.fanout
            transport.set_write_buffer_limits(
                high=fanout.write_buffer_high_bytes, low=fanout.write_buffer_low_bytes
            )
            sock = transport.get_extra_info("socket")
            if fanout.socket_send_buffer_bytes and sock is not None:
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_SNDBUF, fanout.socket_send_buffer_bytes
                )

    def data_received(self, data: bytes) -> None:
        """Feed bytes to the WebSocket parser and handle what it produced."""
        try:
            self._ws.receive_data(data)
            for event in self._ws.events_received():
                if isinstance(event, Request):
                    self._on_handshake(event)
                elif isinstance(event, Frame):
                    self._on_frame(event)
            self._write_protocol_output()
        except Exception:
            # A connection's boundary: a bug triggered by one client closes
            # that client with 1011 and touches no other.
            self.log.exception(
                "closing the connection after an internal error",
                extra={"event": "ws.internal_error"},
            )
            self.close(closecodes.INTERNAL_ERROR, "internal_error")

    def eof_received(self) -> bool | None:
        """The peer half-closed; let the parser see the end of the stream."""
        self._ws.receive_eof()
        self._write_protocol_output()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection everywhere."""
        self.untrack(self._transport)
        if self._session is not None:
            self._session.end()
        if self._abort_timer is not None:
            self._abort_timer.cancel()
        if self._rate_timer is not None:
            self._rate_timer.cancel()
            self._rate_timer = None
        if self.state is ConnectionState.OPEN:  # close() unregisters a closing one
            self._open_hub.unregister(self)
            self._count_unsent_conflations()
            self._count_close_not_ours()
            self.log.debug("connection lost: %s", exc, extra={"event": "ws.connection_lost"})
        self.state = ConnectionState.CLOSED

    def pause_writing(self) -> None:
        """The transport buffer passed its high-water mark: queue and conflate."""
        self._is_paused = True
        if self.state is ConnectionState.OPEN:
            self._observe_bound(self._open_hub.clock.now_ns())

    def resume_writing(self) -> None:
        """The transport drained below its low-water mark: send what queued up."""
        self._is_paused = False
        self.flush()

    def shutdown(self) -> None:
        """Close with 1001; uvicorn calls this on every connection at shutdown."""
        if self.state is ConnectionState.OPEN:
            self.close(closecodes.GOING_AWAY, "server shutting down")
        elif self.state is ConnectionState.CONNECTING and self._transport is not None:
            self._transport.close()

    # --- admission (gateway.admission) ---------------------------------------------

    def is_sheddable(self) -> bool:
        """Whether it has neither authenticated nor subscribed (it may be closed for room)."""
        session = self._session
        if self.state is ConnectionState.CONNECTING:
            return True
        return (
            self.state is ConnectionState.OPEN
            and session is not None
            and session.principal is None
            and not session.subscriptions
        )

    def shed(self) -> None:
        """Close at once with 1013 (the server is at capacity), not awaiting the peer's answer."""
        hub, transport = self._hub, self._transport
        if transport is None or self.state in _ENDING:
            return
        if hub is not None and self.state is ConnectionState.OPEN:
            hub.unregister(self)
            hub.metrics.counters.ws_closes[str(closecodes.TRY_AGAIN_LATER)] += 1
        self.state = ConnectionState.CLOSING
        self._ws.send_close(closecodes.TRY_AGAIN_LATER, "server at capacity")
        self._write_protocol_output()
        transport.close()

    # --- Subscriber -------------------------------------------------------------

    def flush(self) -> None:
        """Write every queued message as one frame, unless the socket is backed up."""
        transport = self._transport
        if self.state is not ConnectionState.OPEN or transport is None or transport.is_closing():
            return
        now_ns = self._open_hub.clock.now_ns()
        if not self._is_paused:
            outbox = self.outbox
            frame = outbox.take_frame(now_ns)
            if frame is not None:
                self._send_frame(frame, now_ns)
            due_ns = outbox.next_due_ns
            if due_ns is not None and (self._rate_timer is None or due_ns < self._rate_due_ns):
                if self._rate_timer is not None:
                    self._rate_timer.cancel()
                self._rate_due_ns = due_ns
                self._rate_timer = self._loop.call_later(
                    (due_ns - now_ns) / _NS_PER_S, self._on_rate_due
                )
        self._bound.observe(self.outbox.queued_bytes, transport.get_write_buffer_size(), now_ns)

    def _on_rate_due(self) -> None:
        # An update held back by its subscription's max_rate_ms may go now.
        self._rate_timer = None
        self.flush()

    def on_sweep(self, now_ns: int) -> None:
        """Check deadlines, keepalive, heartbeat and the slow-consumer rule."""
        if self.state is not ConnectionState.OPEN:
            return
        hub = self._open_hub
        assert self._session is not None  # opened with the handshake
        output = self._session.poll(now_ns)
        if output.messages or output.close:
            self._apply(output)
            return
        self._observe_bound(now_ns)  # the socket may have drained since the last write
        if self._bound.is_expired(now_ns):
            hub.metrics.counters.slow_consumer_closes += 1
            self.log.warning("closing slow consumer", extra={"event": "ws.slow_consumer_closed"})
            self.close(closecodes.SLOW_CONSUMER, "slow_consumer")
            return
        ws = hub.ws
        if self._ping_payload is not None:
            if now_ns - self._ping_sent_ns >= ws.ping_timeout_s * _NS_PER_S:
                self.log.info(
                    "no pong within %.0f s",
                    ws.ping_timeout_s,
                    extra={"event": "ws.keepalive_timeout"},
                )
                self.close(closecodes.INTERNAL_ERROR, "keepalive ping timeout")
                return
        elif now_ns - self._ping_sent_ns >= ws.ping_interval_s * _NS_PER_S:
            self._ping_payload = os.urandom(4)
            self._ping_sent_ns = now_ns
            self._ws.send_ping(self._ping_payload)
            self._write_protocol_output()
        if now_ns - self._last_sent_ns >= ws.heartbeat_interval_s * _NS_PER_S:
            self.outbox.push_control(_HEARTBEAT_BODY)
            self.flush()

    def close(self, code: int, reason: str) -> None:
        """Send what is queued if the socket takes it, then the close frame."""
        hub = self._hub
        if self.state in _ENDING or hub is None or self._transport is None:
            return
        self.flush()
        self.state = ConnectionState.CLOSING
        hub.unregister(self)
        hub.metrics.counters.ws_closes[str(code)] += 1
        self._count_unsent_conflations()
        # The close frame goes into the transport even when it is over its
        # high-water mark: it is the last thing this connection writes.
        self._ws.send_close(code, reason)
        self._write_protocol_output()
        close_timeout_s = hub.ws.close_timeout_s
        self._abort_timer = self._loop.call_later(close_timeout_s, self._abort)

    # --- internals ----------------------------------------------------------------

    def _count_close_not_ours(self) -> None:
        # A connection that ended without close(): the protocol layer closed it
        # (1002, 1007, 1009: counted with the server's closes), or the peer did
        # (1006 when it dropped without a close frame).
        counters = self._open_hub.metrics.counters
        ws = self._ws
        if ws.close_sent is not None and not ws.close_rcvd_then_sent:
            counters.ws_closes[str(ws.close_sent.code)] += 1
        elif ws.close_rcvd is not None:
            counters.ws_peer_closes[str(ws.close_rcvd.code)] += 1
        else:
            counters.ws_peer_closes[_NO_CLOSE_FRAME] += 1

    @property
    def _open_hub(self) -> ConnectionHub:
        # Only a connection with a hub gets past the handshake.
        assert self._hub is not None
        return self._hub

    def _on_handshake(self, request: Request) -> None:
        hub = self._hub
        target = urlsplit(request.path)
        if hub is None or not hub.is_accepting:
            response = self._ws.reject(503, "tickgate is not accepting connections\n")
        elif target.path != WS_PATH:
            response = self._ws.reject(404, f"no WebSocket endpoint at {target.path}\n")
        else:
            response = self._ws.accept(request)
        self._ws.send_response(response)
        if response.status_code != 101 or hub is None:
            return
        now_ns = hub.clock.now_ns()
        self._conn_id, self._session = hub.open_session(now_ns)
        self.log = _ConnectionLog(logger, {"conn_id": self._conn_id, "account_id": None})
        self.state = ConnectionState.OPEN
        self._last_sent_ns = now_ns
        self._ping_sent_ns = now_ns
        hub.register(self)
        token = _bearer_token(request.headers.get("Authorization")) or _query_token(target.query)
        self._apply(self._session.open(token, now_ns))

    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.PONG:
            if frame.data == self._ping_payload:
                self._ping_payload = None
            return
        if opcode not in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            return  # PING is answered and CLOSE echoed by the protocol itself.
        if opcode is not Opcode.CONT:
            self._fragment_is_binary = opcode is Opcode.BINARY
        self._fragments.append(bytes(frame.data))
        if not frame.fin:
            return
        data = b"".join(self._fragments)
        self._fragments = []
        if self.state is not ConnectionState.OPEN:
            return
        assert self._session is not None  # opened with the handshake
        now_ns = self._open_hub.clock.now_ns()
        self._apply(self._session.receive(data, now_ns, is_binary=self._fragment_is_binary))

    def _apply(self, output: SessionOutput) -> None:
        hub = self._open_hub
        errors = hub.metrics.counters.ws_errors
        for message in output.messages:
            if message.get("type") == "error":
                errors[str(message["code"])] += 1
            self.outbox.push_control(encode_body(message))
        for command in output.commands:
            hub.execute(self, command)
        principal = self._session.principal if self._session is not None else None
        if principal is not None and self.log.account_id != principal.subject:
            self.log = _ConnectionLog(
                logger, {"conn_id": self._conn_id, "account_id": principal.subject}
            )
        if output.close is not None:
            self.close(output.close.code, output.close.reason)
        else:
            self.flush()

    def _send_frame(self, frame: bytes, now_ns: int) -> None:
        assert self._transport is not None
        if self._ws.extensions:  # e.g. per-message deflate: the library frames it
            self._ws.send_text(frame)
            self._transport.write(b"".join(self._ws.data_to_send()))
        else:
            # The hot path: an unmasked, unfragmented text frame needs only
            # its header (RFC 6455 5.2), so it skips the library's framing;
            # anything the library has queued (the handshake) goes first.
            pending = self._ws.data_to_send()
            if pending:
                self._transport.write(b"".join(pending))
            self._transport.write(_text_header(len(frame)) + frame)
        self._last_sent_ns = now_ns
        counters = self._open_hub.metrics.counters
        counters.ws_frames_sent += 1
        counters.ws_bytes_sent += len(frame)
        conflated = self.outbox.conflated
        if conflated:
            counters.ws_updates_conflated += conflated
            self.outbox.conflated = 0

    def _count_unsent_conflations(self) -> None:
        # Sending a frame counts what its outbox merged away; a connection that
        # ends with updates still queued (a slow consumer) counts them here.
        if self._hub is not None and self.outbox.conflated:
            self._hub.metrics.counters.ws_updates_conflated += self.outbox.conflated
            self.outbox.conflated = 0

    def _write_protocol_output(self) -> None:
        transport = self._transport
        if transport is None:
            return
        data = self._ws.data_to_send()
        if data and not transport.is_closing():
            payload = b"".join(data)
            if payload:
                transport.write(payload)
            if data[-1] == b"":  # SEND_EOF: the protocol is done with the connection
                transport.close()
                return
        if self._ws.state is State.CLOSED and not transport.is_closing():
            transport.close()

    def _observe_bound(self, now_ns: int) -> None:
        transport = self._transport
        unsent = transport.get_write_buffer_size() if transport is not None else 0
        self._bound.observe(self.outbox.queued_bytes, unsent, now_ns)

    def _abort(self) -> None:
        self._abort_timer = None
        transport = self._transport
        if transport is None:
            return
        if not transport.is_closing():
            self.log.info(
                "peer did not finish the closing handshake; aborting",
                extra={"event": "ws.close_handshake_aborted"},
            )
        # Reset rather than close: a plain close would leave the kernel
        # sending a slow client's backlog for minutes after we gave up on it.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        transport.abort()


class _ConnectionLog(logging.LoggerAdapter[logging.Logger]):
    # Prefixes every message with the connection id and account, whatever the
    # formatter, so other loggers need no extra fields.

    @property
    def account_id(self) -> object:
        return (self.extra or {}).get("account_id")

    def process(self, msg: object, kwargs: Any) -> tuple[object, Any]:
        extra = self.extra or {}
        kwargs["extra"] = {**kwargs.get("extra", {}), **extra, "throttle_key": msg}
        return f"[conn {extra.get('conn_id')} sub {extra.get('account_id')}] {msg}", kwargs


def _bearer_token(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _query_token(query: str) -> str | None:
    values = parse_qs(query).get("token")
    return values[0] if values else None


def _text_header(length: int) -> bytes:
    # FIN + text opcode, then the payload length in 7, 16 or 64 bits.
    if length < 126:
        return bytes((0x81, length))
    if length < 65_536:
        return struct.pack("!BBH", 0x81, 126, length)
    return struct.pack("!BBQ", 0x81, 127, length)
