"""HTTP endpoints: health, metrics, reference data and the admin spike."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from gateway.marketdata.simulator import SimulatorSource
from pricing.simulator import CALM
from tests.builders import TEST_SECRET, make_settings, make_token
from tests.harness import RunningGateway, ScriptedSource, client, http, running_gateway

pytestmark = pytest.mark.e2e


def simulator(gw: RunningGateway) -> SimulatorSource:
    source = gw.gateway.source
    assert isinstance(source, SimulatorSource)
    return source


async def test_healthz_reports_ready_with_feed_and_clients(tmp_path):
    async with running_gateway(make_settings(tmp_path)) as gw, client(gw.ws_url) as c:
        await c.request({"op": "ping", "id": 1})
        status, body = await http("GET", f"{gw.url}/healthz")

    health = orjson.loads(body)
    assert status == 200
    assert health["status"] == "ok"
    assert health["feed"] == {"source": "simulator", "is_up": True}
    assert health["clients"] == 1
    assert health["epoch"] == gw.gateway.epoch


async def test_healthz_is_degraded_while_the_feed_is_down(tmp_path):
    source = ScriptedSource()
    source.is_up = False
    async with running_gateway(make_settings(tmp_path), source=source) as gw:
        status, body = await http("GET", f"{gw.url}/healthz")

    assert status == 200
    assert orjson.loads(body)["status"] == "degraded"


async def test_metrics_expose_counters_in_prometheus_text(tmp_path):
    async with running_gateway(make_settings(tmp_path)) as gw, client(gw.ws_url) as c:
        await c.ws.send("not json")
        await c.until(lambda m: m["type"] == "error")
        status, body = await http("GET", f"{gw.url}/metrics")

    text = body.decode()
    assert status == 200
    assert "tickgate_ws_connections_total 1.0" in text
    assert 'tickgate_ws_errors_total{code="bad_json"} 1.0' in text
    assert "tickgate_ws_clients 1.0" in text
    assert "tickgate_tick_batch_seconds_bucket" in text


async def test_instruments_endpoint_lists_the_master(tmp_path):
    async with running_gateway(make_settings(tmp_path), source=ScriptedSource()) as gw:
        status, body = await http("GET", f"{gw.url}/v1/instruments")

    rows = orjson.loads(body)
    assert status == 200
    assert len(rows) == len(gw.gateway.master)
    assert {"symbol", "type", "currency"} <= set(rows[0])


async def test_admin_spike_switches_the_simulator_regime(tmp_path):
    body = orjson.dumps({"rate_multiplier": 10, "vol_multiplier": 5, "duration_s": 30})
    async with running_gateway(make_settings(tmp_path)) as gw:
        token = make_token(scopes=["admin"])
        status, reply = await http("POST", f"{gw.url}/admin/spike", body=body, token=token)
        regime = simulator(gw).model.regime

    assert status == 202
    assert orjson.loads(reply)["regime"] == "spike"
    assert (regime.rate_multiplier, regime.vol_multiplier) == (10.0, 5.0)


@pytest.mark.parametrize(
    ("token_kind", "body", "status", "code"),
    [
        ("none", b"{}", 401, "token_missing"),
        ("expired", b"{}", 401, "token_expired"),
        ("bad_signature", b"{}", 401, "token_invalid"),
        ("read", b"{}", 403, "forbidden"),
        ("admin", b"{nope", 400, "bad_json"),
        ("admin", b'{"rate_multiplier": -1}', 400, "bad_request"),
        ("admin", b'{"rate_multiplier": "fast"}', 400, "bad_request"),
        ("admin", b'{"duration_s": 999999}', 400, "bad_request"),
        ("admin", b'{"colour": "red"}', 400, "bad_request"),
        ("admin", b"[1]", 400, "bad_request"),
    ],
)
async def test_admin_spike_refusals(tmp_path, token_kind, body, status, code):
    tokens = {
        "none": None,
        "expired": make_token(scopes=["admin"], ttl_s=10, now_s=time.time() - 100),
        "bad_signature": make_token(scopes=["admin"], secret="s" * 48),
        "read": make_token(scopes=["read"]),
        "admin": make_token(scopes=["admin"]),
    }
    async with running_gateway(make_settings(tmp_path)) as gw:
        got_status, reply = await http(
            "POST", f"{gw.url}/admin/spike", body=body, token=tokens[token_kind]
        )
        regime = simulator(gw).model.regime

    assert (got_status, orjson.loads(reply)["error"]["code"]) == (status, code)
    assert regime is CALM


async def test_admin_spike_on_a_source_that_cannot_spike_is_409(tmp_path):
    async with running_gateway(make_settings(tmp_path), source=ScriptedSource()) as gw:
        status, reply = await http(
            "POST", f"{gw.url}/admin/spike", body=b"{}", token=make_token(scopes=["admin"])
        )

    assert (status, orjson.loads(reply)["error"]["code"]) == (409, "spike_unavailable")


async def test_spike_command_triggers_the_spike_on_a_running_gateway(tmp_path, monkeypatch):
    from gateway.cli import main

    monkeypatch.setenv("TICKGATE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TICKGATE_AUTH_JWT_SECRET", TEST_SECRET)
    async with running_gateway(make_settings(tmp_path)) as gw:
        argv = ["spike", "--rate-multiplier", "3", "--vol-multiplier", "2", "--duration-s", "9"]
        status = await asyncio.to_thread(main, [*argv, "--url", gw.url])
        regime = simulator(gw).model.regime

    assert status == 0
    assert (regime.name, regime.rate_multiplier, regime.vol_multiplier) == ("spike", 3.0, 2.0)
