"""The contract tickgate relies on in uvicorn's internals (``gateway/uvicornseam.py``).

Run against a real uvicorn server on the installed version: when uvicorn
changes any of this, these tests fail and ``gateway/uvicornseam.py`` is the
one file to adapt. The limits built on the seam are tested end to end in
``tests/e2e/test_connection_limits.py`` and ``tests/e2e/test_fd_exhaustion.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.uvicornseam import GuardedHttpProtocol, PluggedProtocol
from tests.harness import poll_until
from tests.servers import free_port

pytestmark = pytest.mark.e2e

UPGRADE = (
    b"GET /ws?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class Recording(PluggedProtocol):
    """A ``ws`` protocol that records what uvicorn gives it."""

    built: ClassVar[list[Recording]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.args, self.kwargs = args, kwargs
        self.transport: asyncio.Transport | None = None
        self.received = b""
        self.shutdown_calls = 0
        Recording.built.append(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.track(transport)

    def data_received(self, data: bytes) -> None:
        self.received += data
        if self.transport is not None:
            self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")

    def connection_lost(self, exc: Exception | None) -> None:
        self.untrack(self.transport)

    def shutdown(self) -> None:
        self.shutdown_calls += 1
        if self.transport is not None:
            self.transport.close()

    def is_sheddable(self) -> bool:
        return False

    def shed(self) -> None:
        pass


@contextlib.asynccontextmanager
async def serving(**config: Any) -> AsyncIterator[tuple[uvicorn.Server, int]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
        yield {"contract.key": "lifespan state"}

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hello")

    app = Starlette(routes=[Route("/", hello)], lifespan=lifespan)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, port=port, lifespan="on", log_config=None, access_log=False, **config)
    )
    task = asyncio.create_task(server.serve())
    await poll_until(lambda: server.started, what="uvicorn to start")
    try:
        yield server, port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


async def test_the_ws_class_is_built_with_config_server_state_and_the_lifespan_state():
    Recording.built.clear()
    async with serving(ws=Recording) as (server, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(UPGRADE)
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        (protocol,) = Recording.built
        live: set[object] = set(server.server_state.connections)
        writer.close()

    assert protocol.args == ()
    assert set(protocol.kwargs) == {"config", "server_state", "app_state"}
    assert protocol.kwargs["config"] is server.config
    assert protocol.kwargs["server_state"] is server.server_state
    assert protocol.app_state["contract.key"] == "lifespan state"
    assert protocol.received.startswith(b"GET /ws?x=1 HTTP/1.1\r\n")
    assert b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n" in protocol.received
    assert any(connection is protocol for connection in live)


async def test_uvicorn_calls_shutdown_on_every_live_ws_protocol_when_it_stops():
    Recording.built.clear()
    async with serving(ws=Recording) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(UPGRADE)
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)

    (protocol,) = Recording.built
    writer.close()
    assert protocol.shutdown_calls >= 1


async def test_the_guarded_http_class_serves_plain_http_as_uvicorns_own():
    async with serving(http=GuardedHttpProtocol) as (server, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)
        is_ours = server.config.http_protocol_class is GuardedHttpProtocol
        writer.close()
        await writer.wait_closed()

    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"hello")
    assert is_ours


# What GuardedHttpProtocol overrides or reads on uvicorn's httptools protocol.
OVERRIDDEN = {
    "connection_made": ["self", "transport"],
    "connection_lost": ["self", "exc"],
    "data_received": ["self", "data"],
    "eof_received": ["self"],
    "handle_websocket_upgrade": ["self"],
    "on_response_complete": ["self"],
    "on_message_begin": ["self"],
    "on_url": ["self", "url"],
    "on_header": ["self", "name", "value"],
    "on_headers_complete": ["self"],
    "on_body": ["self", "body"],
    "on_message_complete": ["self"],
    "_should_upgrade": ["self"],
    "__init__": ["self", "config", "server_state", "app_state", "_loop"],
}


@pytest.mark.parametrize("name", sorted(OVERRIDDEN))
def test_the_httptools_protocol_has_each_method_the_guard_overrides(name):
    method = getattr(HttpToolsProtocol, name)

    assert list(inspect.signature(method).parameters) == OVERRIDDEN[name]


async def test_the_httptools_protocol_sets_the_attributes_the_guard_reads():
    async with serving() as (server, port):
        config = server.config
        protocol = HttpToolsProtocol(config, server.server_state, {})
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        transport = writer.transport
        # The attributes exist from construction; connection_made sets the transport.
        names = ("cycle", "loop", "parser", "headers", "client", "scheme")
        attributes = {name: hasattr(protocol, name) for name in names}
        writer.close()
        del reader, transport

    assert attributes == dict.fromkeys(names, True)
    assert protocol.cycle is None


async def test_the_httptools_protocol_keeps_lower_case_headers_and_the_peer_for_the_guard():
    # The access checks read headers (lower-case names, byte values), client
    # (host, port) and scheme on the protocol when an upgrade's head is complete.
    seen: list[tuple[object, object, object]] = []

    class Peek(HttpToolsProtocol):
        def on_headers_complete(self) -> None:
            seen.append((list(self.headers), self.client, self.scheme))
            super().on_headers_complete()

    async with serving(http=Peek) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: a.example\r\nOrigin: https://b.example\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"hello"), 10)
        writer.close()

    ((headers, client, scheme),) = seen
    assert (b"origin", b"https://b.example") in headers  # type: ignore[operator]
    assert (b"host", b"a.example") in headers  # type: ignore[operator]
    assert isinstance(client, tuple)
    assert client[0] == "127.0.0.1"
    assert scheme == "http"
