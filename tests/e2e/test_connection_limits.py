"""The listener's limits over raw sockets: request-head size and deadline, keep-alive."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.builders import make_settings
from tests.harness import RunningGateway, running_gateway

pytestmark = pytest.mark.e2e

UPGRADE_HEADERS = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


@contextlib.asynccontextmanager
async def raw(
    gw: RunningGateway,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    port = gw.server.config.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def answer_then_eof(reader: asyncio.StreamReader, timeout_s: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), timeout_s)


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:80]
    return int(answer.split()[1])


def closed_by_reason(gw: RunningGateway) -> dict[str, int]:
    return dict(gw.gateway.metrics.counters.connections_closed)


# --- request-head size (issue 14, item 1) -------------------------------------------------


async def test_an_unterminated_head_over_the_limit_is_refused_431_while_it_is_sent(tmp_path):
    settings = make_settings(tmp_path, server={"max_header_bytes": 4096})
    async with running_gateway(settings) as gw, raw(gw) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: ")
        # 64 KiB of one header value, never terminated: the answer must come
        # without the head ever ending.
        for _ in range(64):
            writer.write(b"a" * 1024)
        answer = await answer_then_eof(reader)
        closed = closed_by_reason(gw)

    assert status_of(answer) == 431
    assert closed == {"header_too_large": 1}


@pytest.mark.parametrize("upgrade", [False, True], ids=["http", "websocket_upgrade"])
async def test_a_complete_head_over_the_limit_is_refused_431(tmp_path, upgrade):
    settings = make_settings(tmp_path, server={"max_header_bytes": 4096})
    extra = UPGRADE_HEADERS if upgrade else ""
    path = "/ws" if upgrade else "/healthz"
    head = f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}X-Filler: {'a' * 5000}\r\n\r\n"
    async with running_gateway(settings) as gw, raw(gw) as (reader, writer):
        writer.write(head.encode())
        answer = await answer_then_eof(reader)

    assert status_of(answer) == 431


async def test_a_head_within_the_limit_is_served(tmp_path):
    settings = make_settings(tmp_path, server={"max_header_bytes": 4096})
    head = (
        f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: {'a' * 3000}\r\nConnection: close\r\n\r\n"
    )
    async with running_gateway(settings) as gw, raw(gw) as (reader, writer):
        writer.write(head.encode())
        answer = await answer_then_eof(reader)

    assert status_of(answer) == 200


# --- request-head deadline and keep-alive (issue 14, item 2) -------------------------------


async def test_a_connection_that_sends_nothing_is_closed_after_the_head_timeout(tmp_path):
    settings = make_settings(tmp_path, server={"header_timeout_s": 0.3})
    async with running_gateway(settings) as gw, raw(gw) as (reader, _):
        answer = await answer_then_eof(reader)
        closed = closed_by_reason(gw)

    assert status_of(answer) == 408
    assert closed == {"header_timeout": 1}


@pytest.mark.parametrize("upgrade", [False, True], ids=["http", "websocket_upgrade"])
async def test_a_head_sent_a_byte_at_a_time_is_cut_at_the_deadline(tmp_path, upgrade):
    # Slowloris: every byte arrives well within any idle timeout, but the
    # head as a whole is never complete. The deadline is the head's, so the
    # trickle does not extend it.
    settings = make_settings(tmp_path, server={"header_timeout_s": 0.3})
    path = "/ws" if upgrade else "/healthz"
    head = f"GET {path} HTTP/1.1\r\nHost: x\r\n{UPGRADE_HEADERS if upgrade else ''}"
    trickle = (head + "X-Slow: " + "a" * 400).encode()
    async with running_gateway(settings) as gw, raw(gw) as (reader, writer):
        eof = asyncio.ensure_future(reader.read())
        sent = 0
        while not eof.done() and sent < len(trickle):
            writer.write(trickle[sent : sent + 1])
            sent += 1
            await asyncio.wait([eof], timeout=0.02)  # the trickle's pace, not a synchronisation
        answer = await asyncio.wait_for(eof, 10)

    assert sent < len(trickle), "the server let the trickle run to its end"
    assert status_of(answer) == 408


async def test_a_connection_idle_after_a_response_is_closed_after_the_keep_alive_timeout(
    tmp_path,
):
    settings = make_settings(tmp_path, server={"keep_alive_timeout_s": 1})
    async with running_gateway(settings) as gw, raw(gw) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await answer_then_eof(reader)

    assert status_of(answer) == 200
    assert answer.count(b"HTTP/1.1 ") == 1
