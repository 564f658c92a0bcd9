"""Authentication over a real socket: header, query, auth op, failures, deadline."""

from __future__ import annotations

import time

import jwt
import orjson
import pytest

from gateway.ws import closecodes
from tests.builders import TEST_SECRET, ManualClock, make_settings, make_token
from tests.harness import ScriptedSource, client, http, running_gateway

pytestmark = pytest.mark.e2e


def _closed_settings(tmp_path, **ws):
    # Anonymous quotes off, fast sweep so deadlines are noticed promptly.
    return make_settings(
        tmp_path,
        auth={"allow_anonymous_quotes": False, "leeway_s": 0.0},
        fanout={"sweep_interval_ms": 20},
        ws=ws,
    )


async def test_token_in_authorization_header_authenticates_at_connect(tmp_path):
    token = make_token(subject="alice", accounts=["ACC-1", "ACC-2"])
    async with (
        running_gateway(_closed_settings(tmp_path), source=ScriptedSource()) as gw,
        client(gw.ws_url, headers={"Authorization": f"Bearer {token}"}) as c,
    ):
        hello = await c.until(lambda m: True)
        ack = await c.request(
            {"op": "subscribe", "channel": "quotes", "symbols": ["AAPL"], "id": 1}
        )

    assert hello["type"] == "authenticated"
    assert (hello["sub"], hello["accounts"]) == ("alice", ["ACC-1", "ACC-2"])
    assert ack["type"] == "subscribed"


async def test_token_in_query_parameter_authenticates_at_connect(tmp_path):
    token = make_token(subject="bob")
    async with (
        running_gateway(_closed_settings(tmp_path), source=ScriptedSource()) as gw,
        client(f"{gw.ws_url}?token={token}") as c,
    ):
        hello = await c.until(lambda m: True)

    assert (hello["type"], hello["sub"]) == ("authenticated", "bob")


async def test_auth_op_authenticates_and_unlocks_subscribe(tmp_path):
    async with (
        running_gateway(_closed_settings(tmp_path), source=ScriptedSource()) as gw,
        client(gw.ws_url) as c,
    ):
        refused = await c.request(
            {"op": "subscribe", "channel": "quotes", "symbols": ["AAPL"], "id": 1}
        )
        hello = await c.request({"op": "auth", "token": make_token(), "id": 2})
        ack = await c.request(
            {"op": "subscribe", "channel": "quotes", "symbols": ["AAPL"], "id": 3}
        )

    assert (refused["type"], refused["code"]) == ("error", "auth_required")
    assert hello["type"] == "authenticated"
    assert ack["type"] == "subscribed"


@pytest.mark.parametrize("where", ["header", "query", "auth_op"])
async def test_wrong_signature_gets_token_invalid_and_close_4001(tmp_path, where):
    token = make_token(secret="another-secret-" + "y" * 40)
    url, headers = None, None
    async with running_gateway(_closed_settings(tmp_path), source=ScriptedSource()) as gw:
        url = f"{gw.ws_url}?token={token}" if where == "query" else gw.ws_url
        if where == "header":
            headers = {"Authorization": f"Bearer {token}"}
        async with client(url, headers=headers) as c:
            if where == "auth_op":
                await c.send({"op": "auth", "token": token, "id": 1})
            code, reason = await c.closed()

    assert c.received[0]["code"] == "token_invalid"
    assert (code, reason) == (closecodes.UNAUTHORIZED, "token_invalid")


async def test_expired_token_gets_token_expired_and_close_4001(tmp_path):
    token = make_token(ttl_s=60, now_s=time.time() - 120)
    async with (
        running_gateway(_closed_settings(tmp_path), source=ScriptedSource()) as gw,
        client(gw.ws_url) as c,
    ):
        await c.send({"op": "auth", "token": token, "id": 1})
        code, _ = await c.closed()

    assert (c.received[0]["code"], c.received[0]["id"]) == ("token_expired", 1)
    assert code == closecodes.UNAUTHORIZED


async def test_token_expiring_during_the_connection_closes_it_with_token_expired(tmp_path):
    clock = ManualClock(now_ns=time.time_ns())
    token = make_token(ttl_s=60, now_s=clock.now / 1e9)
    settings = _closed_settings(tmp_path)
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        running_gateway(settings, source=ScriptedSource(), clock=clock) as gw,
        client(gw.ws_url, headers=headers) as c,
    ):
        hello = await c.until(lambda m: m["type"] == "authenticated")
        clock.advance_s(61)
        code, _ = await c.closed(timeout_s=5)

    assert hello["exp"] == int(clock.now / 1e9) - 1
    assert c.received[-1]["code"] == "token_expired"
    assert code == closecodes.UNAUTHORIZED


async def test_no_auth_within_the_deadline_closes_with_auth_timeout(tmp_path):
    settings = _closed_settings(tmp_path, auth_deadline_s=0.2)
    async with running_gateway(settings, source=ScriptedSource()) as gw, client(gw.ws_url) as c:
        code, reason = await c.closed(timeout_s=5)

    assert c.received[-1]["code"] == "auth_timeout"
    assert (code, reason) == (closecodes.UNAUTHORIZED, "auth_timeout")


async def test_anonymous_client_that_subscribes_in_time_is_not_timed_out(tmp_path):
    clock = ManualClock(now_ns=time.time_ns())
    settings = make_settings(tmp_path, fanout={"sweep_interval_ms": 20})
    source = ScriptedSource()
    async with (
        running_gateway(settings, source=source, clock=clock) as gw,
        client(gw.ws_url) as subscribed,
        client(gw.ws_url) as idle,
    ):
        await subscribed.request(
            {"op": "subscribe", "channel": "quotes", "symbols": ["AAPL"], "id": 1}
        )
        clock.advance_s(settings.ws.auth_deadline_s + 1)
        # The idle client's close proves a sweep ran after the deadline.
        idle_code, _ = await idle.closed()
        pong = await subscribed.request({"op": "ping", "id": "p"})

    assert idle_code == closecodes.UNAUTHORIZED
    assert pong["type"] == "pong"


# A malformed registered claim (a string nbf, an exp past what a datetime
# holds, ill-typed iat, accounts or scope) is token_invalid on every path.
MALFORMED_CLAIMS: list[dict[str, object]] = [
    {"nbf": "9999999999"},
    {"exp": 10**20},
    {"iat": "yesterday"},
    {"accounts": [1]},
    {"scope": 5},
]


def _malformed_token(claims: dict[str, object]) -> str:
    base: dict[str, object] = {
        "sub": "trader-1",
        "exp": int(time.time()) + 3600,
        "iss": "tickgate",
        "accounts": ["ACC-1"],
        "scope": "read",
    }
    return jwt.encode({**base, **claims}, TEST_SECRET, algorithm="HS256")


@pytest.mark.parametrize("where", ["header", "query", "auth_op"])
async def test_malformed_claims_get_token_invalid_and_close_4001(tmp_path, where):
    answers = []
    async with running_gateway(_closed_settings(tmp_path), source=ScriptedSource()) as gw:
        for claims in MALFORMED_CLAIMS:
            token = _malformed_token(claims)
            url = f"{gw.ws_url}?token={token}" if where == "query" else gw.ws_url
            headers = {"Authorization": f"Bearer {token}"} if where == "header" else None
            async with client(url, headers=headers) as c:
                if where == "auth_op":
                    await c.send({"op": "auth", "token": token, "id": 1})
                code, reason = await c.closed()
            answers.append((c.received[0]["code"], code, reason))
        internal_errors = gw.gateway.metrics.counters.ws_closes[str(closecodes.INTERNAL_ERROR)]

    expected = ("token_invalid", closecodes.UNAUTHORIZED, "token_invalid")
    assert answers == [expected] * len(MALFORMED_CLAIMS)
    assert internal_errors == 0


async def test_malformed_claims_get_401_token_invalid_over_http(tmp_path):
    answers = []
    async with running_gateway(_closed_settings(tmp_path)) as gw:
        account = next(iter(gw.accounts.positions.accounts))
        for claims in MALFORMED_CLAIMS:
            token = _malformed_token({"accounts": [account], **claims})
            status, body = await http("GET", f"{gw.url}/v1/accounts/{account}", token=token)
            answers.append((status, orjson.loads(body)["error"]["code"]))

    assert answers == [(401, "token_invalid")] * len(MALFORMED_CLAIMS)
