"""HTTP over raw sockets: request bodies, unknown paths and the Host header."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import orjson
import pytest

from tests.builders import make_settings, make_token
from tests.harness import RunningGateway, poll_until, running_gateway

pytestmark = pytest.mark.e2e


@contextlib.asynccontextmanager
async def raw_connection(
    gw: RunningGateway,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    address = urlsplit(gw.url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length: (status, headers, body)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
    return int(status_line.split()[1]), headers, body


def request_head(method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode()


# --- request bodies (issue 14, item 4) ------------------------------------------------


async def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(tmp_path):
    settings = make_settings(tmp_path, server={"max_body_bytes": 1024})
    token = make_token(scopes=["admin"])
    async with running_gateway(settings) as gw, raw_connection(gw) as (reader, writer):
        writer.write(
            request_head(
                "POST",
                "/admin/spike",
                f"Authorization: Bearer {token}",
                "Content-Type: application/json",
                "Content-Length: 10000000",
            )
            + b"{"
        )
        status, headers, body = await read_response(reader)

    assert status == 413
    assert headers["content-type"] == "application/json"
    assert orjson.loads(body)["error"]["code"] == "body_too_large"


async def test_a_chunked_body_is_refused_once_it_passes_the_limit(tmp_path):
    settings = make_settings(tmp_path, server={"max_body_bytes": 1024})
    token = make_token(scopes=["admin"])
    chunk = b"x" * 600
    async with running_gateway(settings) as gw, raw_connection(gw) as (reader, writer):
        writer.write(
            request_head(
                "POST",
                "/admin/spike",
                f"Authorization: Bearer {token}",
                "Transfer-Encoding: chunked",
            )
        )
        # Two chunks pass the limit; the body never ends.
        for _ in range(2):
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        status, _, body = await read_response(reader)

    assert status == 413
    assert orjson.loads(body)["error"]["code"] == "body_too_large"


async def test_a_client_leaving_mid_body_is_not_an_error(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    token = make_token(scopes=["admin"])
    async with running_gateway(make_settings(tmp_path)) as gw:
        tasks = gw.server.server_state.tasks
        async with raw_connection(gw) as (_, writer):
            writer.write(
                request_head(
                    "POST",
                    "/admin/spike",
                    f"Authorization: Bearer {token}",
                    "Content-Length: 1000",
                )
                + b'{"rate_multiplier": '
            )
            await poll_until(lambda: len(tasks) == 1, what="the request to reach the app")
        await poll_until(lambda: not tasks, what="the request to end")

    assert "Exception in ASGI application" not in caplog.text
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


# --- unknown paths and the Host header (issue 14, item 11) -----------------------------


@pytest.mark.parametrize("path", ["/healthz/", "/nope", "/v1/instruments/", "/ws"])
async def test_unknown_path_is_404_problem_json_never_a_redirect(tmp_path, path):
    async with running_gateway(make_settings(tmp_path)) as gw, raw_connection(gw) as (reader, w):
        w.write(f"GET {path} HTTP/1.1\r\nHost: evil.example\r\n\r\n".encode())
        status, headers, body = await read_response(reader)

    problem = orjson.loads(body)
    assert status == 404
    assert "location" not in headers
    assert headers["content-type"] == "application/problem+json"
    assert (problem["status"], problem["code"]) == (404, "route_not_found")
    assert problem["type"] == "urn:tickgate:problem:route_not_found"
    assert b"evil.example" not in body


async def test_wrong_method_is_405_problem_json_with_allow(tmp_path):
    async with running_gateway(make_settings(tmp_path)) as gw, raw_connection(gw) as (reader, w):
        w.write(request_head("DELETE", "/healthz"))
        status, headers, body = await read_response(reader)

    problem = orjson.loads(body)
    assert status == 405
    assert {m.strip() for m in headers["allow"].split(",")} == {"GET", "HEAD"}
    assert headers["content-type"] == "application/problem+json"
    assert (problem["status"], problem["code"]) == (405, "method_not_allowed")
