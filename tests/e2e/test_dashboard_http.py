"""The dashboard's routes over HTTP: the page and its files, its config, demo tokens."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.error
import urllib.request

import orjson
import pytest

from gateway.auth import TokenVerifier
from gateway.http.dashboard import STATIC_DIR, dashboard_routes
from gateway.marketdata.simulator import SimulatorSource
from tests.builders import TEST_SECRET, make_settings
from tests.harness import RunningGateway, ScriptedSource, client, http, running_gateway

pytestmark = pytest.mark.e2e

EXPECTED_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET from a worker thread; (status, lower-cased headers, body)."""
    request = urllib.request.Request(url, headers=headers or {})

    def send() -> tuple[int, dict[str, str], bytes]:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, head, body = response.status, response.headers, response.read()
        except urllib.error.HTTPError as e:
            status, head, body = e.code, e.headers, e.read()
        return status, {k.lower(): v for k, v in head.items()}, body

    return await asyncio.to_thread(send)


async def token_request(gw: RunningGateway, body: object) -> tuple[int, dict[str, object]]:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    status, reply = await http("POST", f"{gw.url}/dashboard/token", body=raw)
    return status, orjson.loads(reply)


def verifier() -> TokenVerifier:
    return TokenVerifier(TEST_SECRET, issuer="tickgate", leeway_s=0)


# --- the page and its files ------------------------------------------------------------


async def test_root_serves_the_page_as_html_with_a_strict_policy(tmp_path):
    async with running_gateway(make_settings(tmp_path), source=ScriptedSource()) as gw:
        status, headers, body = await get(f"{gw.url}/")

    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["content-security-policy"] == EXPECTED_CSP
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-cache"
    assert body == (STATIC_DIR / "index.html").read_bytes()


async def test_the_page_has_no_inline_script_or_style(tmp_path):
    async with running_gateway(make_settings(tmp_path), source=ScriptedSource()) as gw:
        _, _, body = await get(f"{gw.url}/")
    page = body.decode()

    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.DOTALL)
    assert scripts, "the page loads its module"
    assert all('src="/static/' in attributes and not text.strip() for attributes, text in scripts)
    assert "<style" not in page
    assert " style=" not in page
    assert not re.search(r"\son[a-z]+=", page), "no inline event handlers"


async def test_every_file_the_page_and_its_modules_load_is_served(tmp_path):
    async with running_gateway(make_settings(tmp_path), source=ScriptedSource()) as gw:
        _, _, page = await get(f"{gw.url}/")
        wanted = set(re.findall(r'(?:src|href)="/static/([^"]+)"', page.decode()))
        modules = {p.name for p in STATIC_DIR.glob("*.js")}
        for module in modules:
            source = (STATIC_DIR / module).read_text(encoding="utf-8")
            wanted |= set(re.findall(r'from "\./([^"]+)"', source))
        answers = {name: await get(f"{gw.url}/static/{name}") for name in sorted(wanted)}

    assert {"main.js", "dashboard.css", "favicon.svg", "client.js", "sequence.js"} <= wanted
    assert all(status == 200 for status, _, _ in answers.values())
    media = {name: headers["content-type"] for name, (_, headers, _) in answers.items()}
    assert media["main.js"] == "text/javascript; charset=utf-8"
    assert media["dashboard.css"] == "text/css; charset=utf-8"
    assert media["favicon.svg"] == "image/svg+xml"
    assert all(h["content-security-policy"] == EXPECTED_CSP for _, h, _ in answers.values())


@pytest.mark.parametrize(
    "path", ["/static/nothing.js", "/static/dashboard.py", "/static/..%2Fdashboard.py"]
)
async def test_a_file_that_is_not_part_of_the_page_is_not_found(tmp_path, path):
    async with running_gateway(make_settings(tmp_path), source=ScriptedSource()) as gw:
        status, _, _ = await get(f"{gw.url}{path}")

    assert status == 404


async def test_a_file_revalidated_with_its_etag_answers_304_without_a_body(tmp_path):
    async with running_gateway(make_settings(tmp_path), source=ScriptedSource()) as gw:
        _, first, _ = await get(f"{gw.url}/static/client.js")
        etag = first["etag"]
        same = await get(f"{gw.url}/static/client.js", {"If-None-Match": etag})
        weak = await get(f"{gw.url}/static/client.js", {"If-None-Match": f'"x", W/{etag}'})
        other = await get(f"{gw.url}/static/client.js", {"If-None-Match": '"an-old-version"'})

    assert (same[0], same[2]) == (304, b"")
    assert same[1]["etag"] == etag
    assert weak[0] == 304
    assert other[0] == 200
    assert other[2] == (STATIC_DIR / "client.js").read_bytes()


async def test_a_disabled_dashboard_serves_none_of_its_routes(tmp_path):
    settings = make_settings(tmp_path, dashboard={"enabled": False})
    async with running_gateway(settings, source=ScriptedSource()) as gw:
        statuses = [
            (await get(f"{gw.url}{path}"))[0]
            for path in ("/", "/static/main.js", "/dashboard/config")
        ]
        token_status, _ = await http(
            "POST", f"{gw.url}/dashboard/token", body=b'{"account":"DEMO-0001"}'
        )

    assert statuses == [404, 404, 404]
    assert token_status == 404


def test_building_the_routes_logs_the_address_to_open(tmp_path, caplog):
    settings = make_settings(tmp_path, port=8123)

    with caplog.at_level("INFO", logger="gateway.http.dashboard"):
        dashboard_routes(settings)

    assert "dashboard at http://127.0.0.1:8123/ (demo mode on" in caplog.text


# --- /dashboard/config -----------------------------------------------------------------


async def test_config_in_demo_mode_lists_the_demo_accounts_and_offers_the_spike(tmp_path):
    async with running_gateway(make_settings(tmp_path)) as gw:
        status, headers, body = await get(f"{gw.url}/dashboard/config")

    config = orjson.loads(body)
    assert status == 200
    assert headers["cache-control"] == "no-store"
    assert config["demo"] is True
    assert config["spike"] is True
    assert config["orders"] is True
    assert config["accounts"] == [f"DEMO-{n:04d}" for n in range(1, 51)]
    assert config["accounts_total"] == 50
    assert config["heartbeat_interval_s"] == 5.0
    assert config["max_subscriptions"] == 256
    assert config["anonymous_quotes"] is True


async def test_config_lists_at_most_100_demo_accounts(tmp_path):
    settings = make_settings(tmp_path, portfolio={"demo_accounts": 120})
    async with running_gateway(settings, source=ScriptedSource()) as gw:
        _, _, body = await get(f"{gw.url}/dashboard/config")

    config = orjson.loads(body)
    assert len(config["accounts"]) == 100
    assert config["accounts"][-1] == "DEMO-0100"
    assert config["accounts_total"] == 120


async def test_config_offers_no_spike_when_the_source_is_not_the_simulator(tmp_path):
    async with running_gateway(make_settings(tmp_path), source=ScriptedSource()) as gw:
        _, _, body = await get(f"{gw.url}/dashboard/config")

    config = orjson.loads(body)
    assert config["demo"] is True
    assert config["spike"] is False


async def test_config_outside_demo_mode_lists_no_accounts(tmp_path):
    settings = make_settings(tmp_path, dashboard={"demo": False})
    async with running_gateway(settings) as gw:
        _, _, body = await get(f"{gw.url}/dashboard/config")

    config = orjson.loads(body)
    assert (config["demo"], config["spike"], config["accounts"]) == (False, False, [])
    assert config["orders"] is False
    assert config["accounts_total"] == 0


# --- POST /dashboard/token -------------------------------------------------------------


async def test_demo_token_reads_and_trades_the_asked_demo_account_only(tmp_path):
    async with running_gateway(make_settings(tmp_path), source=ScriptedSource()) as gw:
        before_s = time.time()
        status, issued = await token_request(gw, {"account": "DEMO-0003"})
        after_s = time.time()
        token = issued["token"]
        assert isinstance(token, str)
        own, _ = await http("GET", f"{gw.url}/v1/accounts/DEMO-0003", token=token)
        other, _ = await http("GET", f"{gw.url}/v1/accounts/DEMO-0004", token=token)
        spike, _ = await http("POST", f"{gw.url}/admin/spike", body=b"{}", token=token)
        orders, _ = await http("GET", f"{gw.api_url}/v1/orders?account_id=DEMO-0003", token=token)
        others, _ = await http("GET", f"{gw.api_url}/v1/orders?account_id=DEMO-0004", token=token)
        state, _ = await http("GET", f"{gw.api_url}/admin/trading-state", token=token)

    principal = verifier().verify(token, time.time())
    assert status == 200
    assert set(issued) == {"token", "sub", "accounts", "scopes", "exp"}
    assert (issued["sub"], issued["accounts"], issued["scopes"]) == (
        "dashboard-demo",
        ["DEMO-0003"],
        ["orders:read", "orders:write", "read"],
    )
    assert principal.subject == "dashboard-demo"
    assert principal.accounts == {"DEMO-0003"}
    assert principal.scopes == {"read", "orders:read", "orders:write"}
    assert int(before_s + 300) <= principal.expires_at_s <= int(after_s + 300)
    assert principal.expires_at_s == issued["exp"]
    assert (own, other, spike) == (200, 403, 403)
    assert (orders, others, state) == (200, 403, 403)


async def test_a_demo_token_asked_with_the_read_scope_only_reads(tmp_path):
    async with running_gateway(make_settings(tmp_path), source=ScriptedSource()) as gw:
        status, issued = await token_request(gw, {"account": "DEMO-0003", "scope": "read"})
        token = issued["token"]
        assert isinstance(token, str)
        own, _ = await http("GET", f"{gw.url}/v1/accounts/DEMO-0003", token=token)
        orders, _ = await http("GET", f"{gw.api_url}/v1/orders?account_id=DEMO-0003", token=token)

    assert status == 200
    assert issued["scopes"] == ["read"]
    assert verifier().verify(token, time.time()).scopes == {"read"}
    assert (own, orders) == (200, 403)


async def test_demo_token_lifetime_follows_its_setting(tmp_path):
    settings = make_settings(tmp_path, dashboard={"demo_token_ttl_s": 45.0})
    async with running_gateway(settings, source=ScriptedSource()) as gw:
        before_s = time.time()
        _, issued = await token_request(gw, {"account": "DEMO-0001", "scope": "read"})
        after_s = time.time()

    exp = issued["exp"]
    assert isinstance(exp, int)
    assert int(before_s + 45) <= exp <= int(after_s + 45)


async def test_demo_admin_token_starts_a_spike_and_lives_30_seconds(tmp_path):
    async with running_gateway(make_settings(tmp_path)) as gw:
        before_s = time.time()
        status, issued = await token_request(gw, {"scope": "admin"})
        after_s = time.time()
        token = issued["token"]
        assert isinstance(token, str)
        spike, _ = await http("POST", f"{gw.url}/admin/spike", body=b"{}", token=token)
        source = gw.gateway.source
        assert isinstance(source, SimulatorSource)
        regime = source.model.regime

    principal = verifier().verify(token, time.time())
    assert status == 200
    assert (issued["accounts"], issued["scopes"]) == ([], ["admin"])
    assert principal.accounts == frozenset()
    assert int(before_s + 30) <= principal.expires_at_s <= int(after_s + 30)
    assert spike == 202
    assert regime.name == "spike"


async def test_a_renewed_demo_token_for_another_account_moves_the_connection_to_it(tmp_path):
    async with running_gateway(make_settings(tmp_path), source=ScriptedSource()) as gw:
        _, first = await token_request(gw, {"account": "DEMO-0001"})
        _, second = await token_request(gw, {"account": "DEMO-0002"})
        async with client(f"{gw.ws_url}?token={first['token']}") as c:
            await c.until(lambda m: m["type"] == "authenticated")
            await c.request(
                {"op": "subscribe", "channel": "portfolio", "account": "DEMO-0001", "id": 1}
            )
            renewed = await c.request({"op": "auth", "token": second["token"], "id": 2})
            revoked = await c.until(lambda m: m["type"] == "unsubscribed")
            moved = await c.request(
                {"op": "subscribe", "channel": "portfolio", "account": "DEMO-0002", "id": 3}
            )

    assert (renewed["type"], renewed["accounts"]) == ("authenticated", ["DEMO-0002"])
    assert revoked["keys"] == ["DEMO-0001"]
    assert "id" not in revoked
    assert (moved["type"], moved["keys"]) == ("subscribed", ["DEMO-0002"])


async def test_admin_token_is_refused_when_the_source_cannot_spike(tmp_path):
    async with running_gateway(make_settings(tmp_path), source=ScriptedSource()) as gw:
        status, reply = await token_request(gw, {"scope": "admin"})

    assert status == 409
    assert reply["error"] == {
        "code": "spike_unavailable",
        "message": "the scripted source cannot spike",
    }


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"x" * 1025, 413, "body_too_large"),
        (b"{not json", 400, "bad_json"),
        (b"[]", 400, "bad_request"),
        (b'{"account":"DEMO-0001","ttl_s":9999}', 400, "bad_request"),
        (b'{"account":"DEMO-0001","scope":"trade"}', 400, "bad_request"),
        (b'{"scope":"read"}', 400, "bad_request"),
        (b"", 400, "bad_request"),
        (b'{"account":""}', 400, "bad_request"),
        (b'{"account":7}', 400, "bad_request"),
        (b'{"account":"DEMO-0001","scope":"admin"}', 400, "bad_request"),
        (b'{"account":"DEMO-9999"}', 404, "unknown_account"),
        (b'{"account":"ACC-1"}', 404, "unknown_account"),
    ],
)
async def test_token_request_refused_with_its_documented_code(tmp_path, body, status, code):
    async with running_gateway(make_settings(tmp_path), source=ScriptedSource()) as gw:
        answer, reply = await token_request(gw, body)

    assert answer == status
    error = reply["error"]
    assert isinstance(error, dict)
    assert error["code"] == code


async def test_no_demo_account_exists_when_accounts_come_from_a_positions_file(tmp_path):
    path = tmp_path / "positions.jsonl"
    line = {
        "account": "DEMO-0001",
        "base_currency": "USD",
        "cash": {"USD": 1000.0},
        "positions": {"AAPL": {"quantity": 1, "avg_cost": 100.0}},
    }
    path.write_bytes(orjson.dumps(line) + b"\n")
    settings = make_settings(tmp_path, portfolio={"positions_file": path})
    async with running_gateway(settings, source=ScriptedSource()) as gw:
        status, reply = await token_request(gw, {"account": "DEMO-0001"})
        _, _, body = await get(f"{gw.url}/dashboard/config")

    assert status == 404
    assert reply["error"] == {
        "code": "unknown_account",
        "message": "DEMO-0001 is not a demo account",
    }
    assert orjson.loads(body)["accounts_total"] == 0


async def test_token_route_does_not_exist_outside_demo_mode(tmp_path):
    settings = make_settings(tmp_path, dashboard={"demo": False})
    async with running_gateway(settings) as gw:
        status, _ = await http("POST", f"{gw.url}/dashboard/token", body=b'{"scope":"admin"}')

    assert status == 404


async def test_no_dashboard_answer_carries_the_signing_secret(tmp_path):
    async with running_gateway(make_settings(tmp_path)) as gw:
        bodies = [(await get(f"{gw.url}/{path}"))[2] for path in ("", "dashboard/config")]
        bodies += [(await get(f"{gw.url}/static/{p.name}"))[2] for p in STATIC_DIR.iterdir()]
        for body in ({"account": "DEMO-0001"}, {"scope": "admin"}):
            _, reply = await http("POST", f"{gw.url}/dashboard/token", body=orjson.dumps(body))
            bodies.append(reply)

    assert len(bodies) >= 10
    assert not [b for b in bodies if TEST_SECRET.encode() in b]
