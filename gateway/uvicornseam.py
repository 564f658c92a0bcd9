"""The seam to uvicorn's internals: the one module to change when uvicorn changes.

tickgate relies on more of uvicorn than its public ``Config`` and ``Server``:

1. **The protocol-class constructor.** uvicorn builds its ``http`` and
   ``ws`` protocol classes as ``cls(config=, server_state=, app_state=)``
   (plus ``_loop``), hands them the transport with ``connection_made``, and
   keeps every live protocol in ``server_state.connections``, whose
   ``shutdown()`` it calls when it stops. ``app_state`` is the ASGI lifespan
   state. ``PluggedProtocol`` is the base of tickgate's own ``ws`` class
   (``gateway.ws.connection.WebSocketConnection``).
2. **Its httptools HTTP protocol**, which ``GuardedHttpProtocol`` extends
   with the request-head limit, the head timeout and connection admission
   (``gateway.admission``). It overrides the parser callbacks (``on_url``,
   ``on_header``, ``on_message_begin``, ``on_headers_complete``,
   ``on_body``, ``on_message_complete``), ``on_response_complete``,
   ``data_received``, ``handle_websocket_upgrade`` and the connection
   callbacks, and reads ``transport``, ``cycle``, ``loop``, ``parser``,
   ``headers``, ``client``, ``scheme`` and ``_should_upgrade()``. An upgrade
   request passes the access checks (``gateway.access``) before admission.

``tests/contract/test_uvicorn_seam.py`` pins both on the installed uvicorn,
against a real server.
"""

from __future__ import annotations

import asyncio
import http
import logging
from typing import TYPE_CHECKING, Any, Final

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.access import ACCESS_STATE_KEY, UpgradeGuard
from gateway.admission import ADMISSION_STATE_KEY, ConnectionAdmission
from gateway.errors import HttpError
from gateway.settings import ServerSettings

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

__all__ = ["SERVER_SETTINGS_STATE_KEY", "GuardedHttpProtocol", "PluggedProtocol"]

logger = logging.getLogger(__name__)

SERVER_SETTINGS_STATE_KEY: Final = "tickgate.server_settings"
"""Key of the ``ServerSettings`` in the ASGI lifespan state."""
# Per header line: ": " and CRLF besides the name and the value.
_HEADER_LINE_OVERHEAD: Final = 4
# After a refusal the connection reads and drops what the client still sends
# for this long: closing a socket with unread input resets it, and the reset
# can destroy the answer before the client has read it.
_LINGER_S: Final = 1.0


class PluggedProtocol(asyncio.Protocol):
    """Base of a protocol class uvicorn builds itself (its ``ws`` option)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._loop = _loop or asyncio.get_running_loop()
        self._server_state = server_state
        self.app_state = app_state
        admission = app_state.get(ADMISSION_STATE_KEY)
        self._admission = admission if isinstance(admission, ConnectionAdmission) else None
        guard = app_state.get(ACCESS_STATE_KEY)
        self._guard = guard if isinstance(guard, UpgradeGuard) else None
        self._peer_ip: str | None = None

    def is_sheddable(self) -> bool:
        """Whether admission may close it for room (``gateway.admission.Sheddable``)."""
        raise NotImplementedError

    def shed(self) -> None:
        """Close it now, freeing its descriptor."""
        raise NotImplementedError

    def track(self, transport: asyncio.BaseTransport) -> None:
        """Join uvicorn's live connections (it calls ``shutdown()`` on each at exit)."""
        self._server_state.connections.add(self)  # type: ignore[arg-type]  # uvicorn duck-types these
        if self._admission is not None:
            self._admission.adopt(transport, self)
        if self._guard is not None:
            self._peer_ip = _peer_ip(transport)
            self._guard.opened(self._peer_ip)

    def untrack(self, transport: asyncio.BaseTransport | None) -> None:
        """Leave uvicorn's live connections and the admission."""
        self._server_state.connections.discard(self)
        if self._admission is not None and transport is not None:
            self._admission.release(transport)
        if self._guard is not None:
            self._guard.closed(self._peer_ip)
            self._guard = None  # once: a later call releases nothing


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, with a bounded request head, a head deadline and admission.

    - A head (request line and headers) over ``max_header_bytes`` is answered
      431 and the connection closed; the excess is never buffered.
    - A head not complete within ``header_timeout_s`` of the connection's
      start, or of the end of its previous response, is answered 408 and the
      connection closed: a client that sends nothing, or a byte at a time,
      cannot hold a connection.
    - Each connection is admitted (``ConnectionAdmission``): sheddable while
      it has no request in progress; a WebSocket upgrade may be refused 503
      to keep the health headroom.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = app_state.get(SERVER_SETTINGS_STATE_KEY)
        self._limits = limits if isinstance(limits, ServerSettings) else None
        admission = app_state.get(ADMISSION_STATE_KEY)
        self._admission = admission if isinstance(admission, ConnectionAdmission) else None
        guard = app_state.get(ACCESS_STATE_KEY)
        self._guard = guard if isinstance(guard, UpgradeGuard) else None
        self._head_bytes = 0
        self._is_in_head = True  # the bytes arriving belong to a request head
        self._is_head_too_large = False
        self._is_refused = False
        self._head_timer: asyncio.TimerHandle | None = None

    # --- admission (Sheddable) -------------------------------------------------------

    def is_sheddable(self) -> bool:
        """Whether no request is in progress on this connection."""
        return not self._is_refused and (self.cycle is None or self.cycle.response_complete)

    def shed(self) -> None:
        """Reset the connection now, freeing its descriptor."""
        self._cancel_head_timer()
        self.transport.abort()

    # --- the connection ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the head deadline and admit the connection."""
        super().connection_made(transport)
        self._start_head_timer()
        if self._admission is not None:
            self._admission.admit(transport, self)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the deadline and leave the admission."""
        self._cancel_head_timer()
        if self._admission is not None:
            self._admission.release(self.transport)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse; answer 431 once the head passes its limit."""
        # The parser keeps a header until it is complete, so an unterminated
        # head is measured here, in raw bytes; a head completed in this chunk
        # is measured exactly by the callbacks.
        if self._is_refused:
            return  # lingering after a refusal: dropped
        if self._is_in_head:
            self._counts(len(data))
        super().data_received(data)
        if self._is_head_too_large and not self._is_refused:
            self._refuse(http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "header_too_large")

    def eof_received(self) -> None:
        """The client is done sending: a refused connection can close now."""
        if self._is_refused:
            self.transport.close()

    def handle_websocket_upgrade(self) -> None:
        """Hand the connection to the ``ws`` protocol, unless it was refused."""
        if not (self._is_head_too_large or self._is_refused):
            super().handle_websocket_upgrade()

    def on_response_complete(self) -> None:
        """The connection is idle: the next head has its own deadline; it may be shed."""
        super().on_response_complete()
        if self.transport.is_closing():
            return
        self._start_head_timer()
        if self._admission is not None:
            self._admission.unsettle(self.transport, self)

    # --- parser callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        """A new request: its head is counted from here."""
        self._head_bytes = 0
        self._is_in_head = True
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        """Keep the URL only while the head is within its limit."""
        if self._counts(len(url)):
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Keep a header only while the head is within its limit."""
        if self._counts(len(name) + len(value) + _HEADER_LINE_OVERHEAD):
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """Stop the deadline; refuse an upgrade inside the health headroom; serve."""
        self._cancel_head_timer()
        self._is_in_head = False
        if self._is_head_too_large or self._is_refused:
            return
        is_upgrade = self.parser.should_upgrade() and self._should_upgrade()
        refusal = self._upgrade_refusal() if is_upgrade else None
        if refusal is not None:
            self._refuse_with(refusal)
            return
        admission = self._admission
        if admission is not None:
            if is_upgrade and not admission.admit_websocket(self.transport):
                self._refuse(http.HTTPStatus.SERVICE_UNAVAILABLE, None)
                return
            admission.settle(self.transport)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        """Pass the body on, unless the request was refused."""
        if not (self._is_head_too_large or self._is_refused):
            super().on_body(body)

    def on_message_complete(self) -> None:
        """End the request, unless it was refused; what follows is the next head."""
        if not (self._is_head_too_large or self._is_refused):
            super().on_message_complete()
        self._head_bytes = 0
        self._is_in_head = True

    # --- internals ---------------------------------------------------------------------------

    def _upgrade_refusal(self) -> HttpError | None:
        # The access checks of an upgrade (gateway.access), on its head alone.
        guard = self._guard
        if guard is None:
            return None
        origin = host = None
        for name, value in self.headers:
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"host":
                host = value.decode("latin-1")
        return guard.refusal(
            self.client[0] if self.client else None,
            origin=origin,
            host=host,
            scheme=self.scheme or "http",
            now_s=self.loop.time(),
        )

    def _refuse_with(self, error: HttpError) -> None:
        # Answer a refused upgrade with the gateway's JSON error body.
        if self._admission is not None:
            self._admission.count_closed(error.code)
        logger.info(
            "WebSocket upgrade from %s refused %d: %s",
            self.client[0] if self.client else "?",
            error.status,
            error.code,
            extra={"event": "access.upgrade_refused", "throttle_key": error.code},
        )
        headers = {"content-type": "application/json"}
        if error.retry_after_s is not None:
            headers["retry-after"] = str(error.retry_after_s)
        body = orjson.dumps({"error": {"code": error.code, "message": error.message}})
        self._refuse(http.HTTPStatus(error.status), None, body=body, headers=headers)

    def _counts(self, size: int) -> bool:
        # Add to the head's size; whether the head is still within its limit.
        limits = self._limits
        if limits is None:
            return True
        self._head_bytes += size
        if self._head_bytes > limits.max_header_bytes:
            self._is_head_too_large = True
        return not self._is_head_too_large

    def _start_head_timer(self) -> None:
        self._cancel_head_timer()
        if self._limits is not None:
            self._head_timer = self.loop.call_later(
                self._limits.header_timeout_s, self._on_head_timeout
            )

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _on_head_timeout(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing() and self.is_sheddable():
            self._refuse(http.HTTPStatus.REQUEST_TIMEOUT, "header_timeout")

    def _refuse(
        self,
        status: http.HTTPStatus,
        reason: str | None,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        # Answer ``status`` and close, unless a response is under way (then close).
        self._is_refused = True
        self._cancel_head_timer()
        if reason is not None and self._admission is not None:
            self._admission.count_closed(reason)
        if self.cycle is None or self.cycle.response_complete:
            if body is None:
                body = f"{status.phrase}\n".encode()
            fields = headers or {"content-type": "text/plain; charset=utf-8"}
            head = "".join(
                [
                    f"HTTP/1.1 {status.value} {status.phrase}\r\n",
                    *(f"{name}: {value}\r\n" for name, value in fields.items()),
                    f"content-length: {len(body)}\r\nconnection: close\r\n\r\n",
                ]
            )
            self.transport.write(head.encode() + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(_LINGER_S, self.transport.close)
        else:
            self.transport.close()


def _peer_ip(transport: asyncio.BaseTransport) -> str | None:
    # The client's address; None for a socket without one (a Unix socket).
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
        return peer[0]
    return None
