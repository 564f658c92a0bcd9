"""RS256 and ES256 tokens from a JWKS on a real gateway: /ws, HTTP, and renewal before expiry.

The keys are generated in the test.
"""

from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.ws import closecodes
from tests.builders import ManualClock, make_settings
from tests.harness import ScriptedSource, client, request, running_gateway

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def keys() -> tuple[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]:
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP256R1()),
    )


def settings_with_jwks(tmp_path, keys):
    rsa_key, ec_key = keys
    entries = [
        {**json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "rsa-1"},
        {**json.loads(ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "ec-1"},
    ]
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": entries}), encoding="utf-8")
    return make_settings(
        tmp_path,
        auth={
            "jwt_secret": None,
            "jwks_file": path,
            "audience": "tickgate",
            "leeway_s": 0.0,
            "allow_anonymous_quotes": False,
        },
        fanout={"sweep_interval_ms": 20},
    )


def token(key, algorithm: str, kid: str, *, now_s: float, ttl_s: float, scope: str) -> str:
    claims = {
        "sub": "svc-1",
        "accounts": ["DEMO-0001"],
        "scope": scope,
        "iss": "tickgate",
        "aud": "tickgate",
        "iat": int(now_s),
        "exp": int(now_s + ttl_s),
    }
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


async def test_jwks_tokens_open_ws_channels_and_http_routes(tmp_path, keys):
    rsa_key, ec_key = keys
    now_s = time.time()
    rs = token(rsa_key, "RS256", "rsa-1", now_s=now_s, ttl_s=600, scope="quotes:read")
    es = token(ec_key, "ES256", "ec-1", now_s=now_s, ttl_s=600, scope="portfolio:read")
    async with running_gateway(settings_with_jwks(tmp_path, keys)) as gw:
        async with client(gw.ws_url, headers={"Authorization": f"Bearer {rs}"}) as c:
            hello = await c.until(lambda m: True)
            quotes = await c.request(
                {"op": "subscribe", "channel": "quotes", "symbols": ["AAPL"], "id": 1}
            )
            portfolio = await c.request(
                {"op": "subscribe", "channel": "portfolio", "account": "DEMO-0001", "id": 2}
            )
        answer = await request("GET", f"{gw.url}/v1/accounts/DEMO-0001", token=es)

    assert (hello["type"], hello["scopes"]) == ("authenticated", ["quotes:read"])
    assert quotes["type"] == "subscribed"
    assert (portfolio["type"], portfolio["code"]) == ("error", "forbidden")
    assert answer.status == 200


async def test_an_hs256_token_is_refused_when_only_public_keys_are_configured(tmp_path, keys):
    forged = jwt.encode(
        {"sub": "x", "iss": "tickgate", "aud": "tickgate", "exp": int(time.time()) + 60},
        "a-guessed-secret-of-thirty-two-characters!",
        algorithm="HS256",
    )
    async with (
        running_gateway(settings_with_jwks(tmp_path, keys), source=ScriptedSource()) as gw,
        client(gw.ws_url) as c,
    ):
        await c.send({"op": "auth", "token": forged})
        error = await c.until(lambda m: m["type"] == "error")
        code, _ = await c.closed()

    assert error["code"] == "token_invalid"
    assert code == closecodes.UNAUTHORIZED


async def test_a_token_renewed_before_expiry_keeps_the_connection_past_the_first_exp(
    tmp_path, keys
):
    rsa_key, _ = keys
    clock = ManualClock(now_ns=time.time_ns())
    first = token(rsa_key, "RS256", "rsa-1", now_s=clock.now / 1e9, ttl_s=60, scope="quotes:read")
    settings = settings_with_jwks(tmp_path, keys)
    async with (
        running_gateway(settings, source=ScriptedSource(), clock=clock) as gw,
        client(gw.ws_url, headers={"Authorization": f"Bearer {first}"}) as c,
    ):
        await c.until(lambda m: m["type"] == "authenticated")
        clock.advance_s(50)
        second = token(
            rsa_key, "RS256", "rsa-1", now_s=clock.now / 1e9, ttl_s=60, scope="quotes:read"
        )
        renewed = await c.request({"op": "auth", "token": second, "id": "renew"})
        clock.advance_s(20)  # past the first token's exp, within the second's
        pong = await c.request({"op": "ping", "id": 2})
        clock.advance_s(41)  # past the second's exp
        code, reason = await c.closed(timeout_s=5)

    assert renewed["type"] == "authenticated"
    assert pong["type"] == "pong"
    assert c.received[-1]["code"] == "token_expired"
    assert (code, reason) == (closecodes.UNAUTHORIZED, "token_expired")
