"""Who may open /ws, over real sockets: Origin, attempts and connections per IP and subject."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from gateway.ws import closecodes
from tests.builders import make_settings, make_token
from tests.harness import ScriptedSource, client, poll_until, running_gateway

pytestmark = pytest.mark.e2e

# Tests connect from 127.0.0.1, which the per-IP limits exempt by default.
NOT_EXEMPT = {"limit_exempt_networks": ()}


async def refusal(url: str, **kwargs: object) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(url, **kwargs):  # type: ignore[arg-type]
            pass
    return caught.value


def error_of(e: InvalidStatus) -> dict[str, object]:
    body = orjson.loads(e.response.body or b"{}")
    error = body["error"]
    assert isinstance(error, dict)
    return error


@contextlib.asynccontextmanager
async def opened(url: str, **kwargs: object) -> AsyncIterator[ClientConnection]:
    async with connect(url, **kwargs) as ws:  # type: ignore[arg-type]
        yield ws


# --- Origin ----------------------------------------------------------------------------------


async def test_an_origin_outside_the_allowlist_is_refused_403_before_the_upgrade(tmp_path):
    async with running_gateway(make_settings(tmp_path), source=ScriptedSource()) as gw:
        e = await refusal(gw.ws_url, origin="http://evil.example")
        clients = len(gw.gateway.hub.connections)
        closed = dict(gw.gateway.metrics.counters.connections_closed)

    assert e.response.status_code == 403
    assert e.response.headers["Content-Type"] == "application/json"
    assert error_of(e)["code"] == "origin_forbidden"
    assert clients == 0
    assert closed == {"origin_forbidden": 1}


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
async def test_the_listeners_own_origins_open_a_websocket(tmp_path, name):
    async with running_gateway(make_settings(tmp_path), source=ScriptedSource()) as gw:
        port = gw.server.config.port
        async with client(gw.ws_url, origin=f"http://{name}:{port}") as c:
            pong = await c.request({"op": "ping", "id": 1})

    assert pong["type"] == "pong"


async def test_a_client_without_an_origin_is_allowed_by_default(tmp_path):
    async with (
        running_gateway(make_settings(tmp_path), source=ScriptedSource()) as gw,
        client(gw.ws_url) as c,
    ):
        pong = await c.request({"op": "ping", "id": 1})

    assert pong["type"] == "pong"


async def test_a_missing_origin_is_refused_when_the_setting_requires_one(tmp_path):
    settings = make_settings(tmp_path, access={"require_origin": True})
    async with running_gateway(settings, source=ScriptedSource()) as gw:
        e = await refusal(gw.ws_url)

    assert e.response.status_code == 403
    assert error_of(e)["code"] == "origin_forbidden"


async def test_a_configured_origin_opens_and_the_own_origin_then_does_not(tmp_path):
    settings = make_settings(tmp_path, access={"allowed_origins": ("https://app.example",)})
    async with running_gateway(settings, source=ScriptedSource()) as gw:
        async with opened(gw.ws_url, origin="https://app.example"):
            pass
        port = gw.server.config.port
        e = await refusal(gw.ws_url, origin=f"http://127.0.0.1:{port}")

    assert e.response.status_code == 403


async def test_plain_http_is_not_subject_to_the_origin_check(tmp_path):
    async with running_gateway(make_settings(tmp_path), source=ScriptedSource()) as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.server.config.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\n\r\n")
        head = await reader.readuntil(b"\r\n")
        writer.close()

    assert head.startswith(b"HTTP/1.1 200")


# --- attempts per IP ----------------------------------------------------------------------


async def test_attempts_past_the_burst_are_refused_429_with_retry_after(tmp_path):
    access = {**NOT_EXEMPT, "connect_burst_per_ip": 2, "connect_rate_per_ip_per_s": 0.1}
    async with running_gateway(make_settings(tmp_path, access=access)) as gw:
        for _ in range(2):
            async with opened(gw.ws_url):
                pass
        e = await refusal(gw.ws_url)
        closed = dict(gw.gateway.metrics.counters.connections_closed)

    assert e.response.status_code == 429
    assert error_of(e)["code"] == "connect_rate_limited"
    assert 1 <= int(e.response.headers["Retry-After"]) <= 10
    assert closed == {"connect_rate_limited": 1}


async def test_loopback_is_exempt_from_the_attempt_rate_by_default(tmp_path):
    access = {"connect_burst_per_ip": 1, "connect_rate_per_ip_per_s": 0.1}
    async with running_gateway(make_settings(tmp_path, access=access)) as gw:
        for _ in range(3):
            async with opened(gw.ws_url):
                pass


# --- connections per IP ---------------------------------------------------------------------


async def test_connections_past_the_per_ip_limit_are_refused_429_until_one_closes(tmp_path):
    access = {**NOT_EXEMPT, "max_connections_per_ip": 2}
    async with (
        running_gateway(make_settings(tmp_path, access=access)) as gw,
        opened(gw.ws_url) as first,
        opened(gw.ws_url),
    ):
        e = await refusal(gw.ws_url)
        await first.close()

        async def another_opens() -> bool:
            try:
                async with opened(gw.ws_url):
                    return True
            except InvalidStatus:
                return False

        await poll_until(another_opens, what="a freed place for a new connection")

    assert e.response.status_code == 429
    assert error_of(e)["code"] == "too_many_connections"
    assert "Retry-After" not in e.response.headers


# --- connections per principal --------------------------------------------------------------


async def test_a_subject_past_its_connection_limit_is_closed_4029(tmp_path):
    settings = make_settings(tmp_path, access={"max_connections_per_principal": 1})
    headers = {"Authorization": f"Bearer {make_token(subject='alice')}"}
    async with (
        running_gateway(settings, source=ScriptedSource()) as gw,
        client(gw.ws_url, headers=headers) as first,
    ):
        assert (await first.until(lambda m: True))["type"] == "authenticated"
        async with client(gw.ws_url, headers=headers) as second:
            error = await second.until(lambda m: m["type"] == "error")
            code, reason = await second.closed()
        pong = await first.request({"op": "ping", "id": 1})

    assert error["code"] == "too_many_connections"
    assert (code, reason) == (closecodes.TOO_MANY_CONNECTIONS, "too_many_connections")
    assert pong["type"] == "pong"


async def test_a_subjects_closed_connection_frees_its_slot(tmp_path):
    settings = make_settings(tmp_path, access={"max_connections_per_principal": 1})
    headers = {"Authorization": f"Bearer {make_token(subject='alice')}"}
    async with running_gateway(settings, source=ScriptedSource()) as gw:
        async with client(gw.ws_url, headers=headers) as first:
            await first.until(lambda m: m["type"] == "authenticated")
        slots = gw.gateway.hub.principal_slots
        await poll_until(lambda: slots.held("alice") == 0, what="the slot to come back")
        async with client(gw.ws_url, headers=headers) as second:
            hello = await second.until(lambda m: True)

    assert hello["type"] == "authenticated"
