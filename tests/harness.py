"""Test harness: a real gateway under uvicorn on a free port, clients, and polling.

Imported by the e2e and integration tests; fixtures live in conftest.py files.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import inspect
import socket
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from gateway.accounts.runtime import Accounts
from gateway.app import create_apps
from gateway.clock import Clock
from gateway.marketdata.source import MarketDataSource, Rejection, SourceBatch
from gateway.server import api_uvicorn_config, uvicorn_config
from gateway.service import Gateway
from gateway.settings import Settings
from pricing.pricebook import TickBatch
from tests.servers import free_port

# Messages decoded from the wire: JSON values, whatever each field holds.
Message = dict[str, Any]


@dataclass
class RunningGateway:
    url: str
    ws_url: str
    api_url: str
    gateway: Gateway
    server: uvicorn.Server

    @property
    def accounts(self) -> Accounts:
        """The gateway's accounts, assembled once it has started."""
        accounts = self.gateway.accounts
        assert accounts is not None
        return accounts


@contextlib.asynccontextmanager
async def running_gateway(
    settings: Settings,
    *,
    source: MarketDataSource | None = None,
    clock: Clock | None = None,
    port: int | None = None,
) -> AsyncIterator[RunningGateway]:
    """Serve ``settings`` until the block ends: ``/ws`` on ``port`` (default: a free port)
    and the order API on a free port."""
    port, api_port = port or free_port(), free_port()
    settings = dataclasses.replace(
        settings,
        host="127.0.0.1",
        port=port,
        api=dataclasses.replace(settings.api, host="127.0.0.1", port=api_port),
    )
    apps = create_apps(settings, source=source, clock=clock)
    server = uvicorn.Server(uvicorn_config(settings, apps.main))
    api_server = uvicorn.Server(api_uvicorn_config(settings, apps.api))
    task = asyncio.create_task(server.serve())
    api_task = asyncio.create_task(api_server.serve())
    await poll_until(lambda: server.started and api_server.started, what="uvicorn to start")
    try:
        yield RunningGateway(
            url=f"http://127.0.0.1:{port}",
            ws_url=f"ws://127.0.0.1:{port}/ws",
            api_url=f"http://127.0.0.1:{api_port}",
            gateway=apps.gateway,
            server=server,
        )
    finally:
        api_server.should_exit = True
        await asyncio.wait_for(api_task, timeout=20)
        server.should_exit = True
        await asyncio.wait_for(task, timeout=20)


async def poll_until(
    predicate: Callable[[], object], *, what: str, timeout_s: float = 10.0
) -> None:
    """Poll ``predicate`` (which may return an awaitable) until it is true, or fail.

    The one way tests wait for something to happen: a deadline, never a sleep.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return orjson.loads(self.body)


async def request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> HttpAnswer:
    """Send one request from a worker thread; return its status, body and (lower-case) headers."""
    sent = {"Content-Type": "application/json"}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    sent.update(headers or {})
    outgoing = urllib.request.Request(url, data=body, method=method, headers=sent)

    def send() -> HttpAnswer:
        try:
            with urllib.request.urlopen(outgoing, timeout=10) as response:
                received = {k.lower(): v for k, v in response.headers.items()}
                return HttpAnswer(response.status, response.read(), received)
        except urllib.error.HTTPError as e:
            received = {k.lower(): v for k, v in e.headers.items()}
            return HttpAnswer(e.code, e.read(), received)

    return await asyncio.to_thread(send)


async def http(
    method: str, url: str, *, body: bytes | None = None, token: str | None = None
) -> tuple[int, bytes]:
    """Send one request; return (status, body bytes)."""
    answer = await request(method, url, body=body, token=token)
    return answer.status, answer.body


class Client:
    """A WebSocket client that keeps every message it received."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.received: list[Message] = []
        self.frames = 0
        self._unread: collections.deque[Message] = collections.deque()

    async def send(self, message: object) -> None:
        await self.ws.send(orjson.dumps(message).decode())

    async def frame(self, timeout_s: float = 10.0) -> list[Message]:
        """The next frame's messages (every frame is a JSON array)."""
        raw = await asyncio.wait_for(self.ws.recv(), timeout_s)
        messages = orjson.loads(raw)
        assert isinstance(messages, list)
        assert messages, "a frame holds at least one message"
        self.frames += 1
        self.received.extend(messages)
        self._unread.extend(messages)
        return messages

    async def until(self, predicate: Callable[[Message], bool], timeout_s: float = 10.0) -> Message:
        """Consume messages, reading frames as needed, until one matches; return it."""
        deadline = time.monotonic() + timeout_s
        while True:
            while self._unread:
                message = self._unread.popleft()
                if predicate(message):
                    return message
            await self.frame(max(0.01, deadline - time.monotonic()))

    async def request(self, message: Message, timeout_s: float = 10.0) -> Message:
        """Send a message with an id and return the reply that echoes it."""
        await self.send(message)
        return await self.until(lambda m: m.get("id") == message["id"], timeout_s)

    async def closed(self, timeout_s: float = 10.0) -> tuple[int | None, str | None]:
        """Read until the server closes; return (code, reason)."""
        deadline = time.monotonic() + timeout_s
        with contextlib.suppress(ConnectionClosed):
            while time.monotonic() < deadline:
                await self.frame(max(0.01, deadline - time.monotonic()))
        rcvd = self.ws.close_code, self.ws.close_reason
        assert rcvd[0] is not None, "the connection did not close"
        return rcvd


@contextlib.asynccontextmanager
async def client(
    url: str, *, headers: dict[str, str] | None = None, **kwargs: Any
) -> AsyncIterator[Client]:
    async with connect(url, additional_headers=headers, **kwargs) as ws:
        yield Client(ws)


class ScriptedSource:
    """A market-data source the test feeds batch by batch (the port's test double)."""

    name = "scripted"

    def __init__(self) -> None:
        self.is_up = True
        self._queue: asyncio.Queue[TickBatch] = asyncio.Queue()
        self.pushed = 0
        self.applied = 0

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def push(self, batch: TickBatch) -> None:
        self.pushed += 1
        self._queue.put_nowait(batch)

    def is_drained(self) -> bool:
        """Whether every pushed batch has been applied and acknowledged."""
        return self.applied == self.pushed

    async def batches(self) -> AsyncIterator[SourceBatch]:
        while True:
            yield SourceBatch(await self._queue.get())

    async def acknowledge(self, batch: SourceBatch, rejected: Sequence[Rejection]) -> None:
        self.applied += 1


def updates_for(messages: Sequence[Message], key: str) -> list[Message]:
    return [m for m in messages if m.get("key") == key and m["type"] in ("snapshot", "update")]


def assert_gap_free(messages: Sequence[Message]) -> int:
    """Check one key's snapshot/update sequence has no gap; return the last seq."""
    assert messages, "no messages for the key"
    assert messages[0]["type"] == "snapshot"
    last = messages[0]["seq"]
    assert isinstance(last, int)
    for m in messages[1:]:
        assert m["type"] == "update"
        first = m.get("seq_from", m["seq"])
        assert first == last + 1, f"gap: after seq {last} came {first}"
        last = m["seq"]
        assert isinstance(last, int)
    return last


class RawClient:
    """A WebSocket client that reads and answers only when the test says so.

    Built on the sans-I/O ``ClientProtocol`` over a plain stream: unlike a
    library client it never answers pings behind the test's back, and when
    the test stops reading, the socket really stops being read (with a small
    receive buffer, so backpressure reaches the server fast).
    """

    def __init__(self, url: str) -> None:
        self._uri = parse_uri(url)
        self._protocol = ClientProtocol(self._uri)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.messages: list[Message] = []

    async def connect(self, *, receive_buffer_bytes: int | None = None) -> None:
        host, port = self._uri.host, self._uri.port
        sock = socket.socket()
        if receive_buffer_bytes is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer_bytes)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        self._reader, self._writer = await asyncio.open_connection(sock=sock, limit=1024)
        self._protocol.send_request(self._protocol.connect())
        self._flush()
        while self._protocol.state is State.CONNECTING:
            await self.read_some(5.0)

    async def send(self, message: object) -> None:
        self._protocol.send_text(orjson.dumps(message))
        self._flush()

    async def close_code(self, timeout_s: float = 10.0) -> int | None:
        """Read everything until the server's close frame; return its code."""
        deadline = time.monotonic() + timeout_s
        while self._protocol.close_rcvd is None:
            if self._protocol.state is State.CLOSED:
                raise AssertionError("the connection ended without a close frame")
            await self.read_some(max(0.01, deadline - time.monotonic()))
        return self._protocol.close_rcvd.code

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    async def read_some(self, timeout_s: float) -> None:
        assert self._reader is not None
        data = await asyncio.wait_for(self._reader.read(65536), timeout_s)
        if not data:
            self._protocol.receive_eof()
        else:
            self._protocol.receive_data(data)
        self._protocol.data_to_send()  # never answer: no pongs, no close echo
        for event in self._protocol.events_received():
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self.messages.extend(orjson.loads(event.data))

    def _flush(self) -> None:
        assert self._writer is not None
        self._writer.write(b"".join(self._protocol.data_to_send()))
