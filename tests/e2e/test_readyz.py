"""``GET /readyz``: one entry per dependency, 200 when ready and 503 when not."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.settings import Secret
from tests.builders import make_settings, make_token
from tests.harness import ScriptedSource, http, poll_until, request, running_gateway

pytestmark = pytest.mark.e2e

DEPENDENCIES = {"source", "kafka", "redis", "ledger_store", "order_bus"}


async def readyz(url: str) -> tuple[int, Any]:
    status, body = await http("GET", f"{url}/readyz")
    return status, orjson.loads(body)


async def test_embedded_gateway_is_ready_with_every_dependency_listed(tmp_path):
    async with running_gateway(make_settings(tmp_path)) as gw:
        status, body = await readyz(gw.url)

    deps = body["dependencies"]
    assert status == 200
    assert body["status"] == "ready"
    assert body["degraded"] == []
    assert set(deps) == DEPENDENCIES
    assert deps["source"] == {
        "adapter": "simulator",
        "status": "up",
        "required": True,
        "detail": None,
    }
    assert (deps["kafka"]["status"], deps["kafka"]["required"]) == ("not_used", False)
    assert (deps["redis"]["adapter"], deps["redis"]["status"]) == ("memory", "not_used")
    assert (deps["ledger_store"]["adapter"], deps["ledger_store"]["status"]) == ("sqlite", "up")
    assert (deps["order_bus"]["adapter"], deps["order_bus"]["status"]) == ("inbox", "up")


async def test_feed_down_makes_the_gateway_not_ready_while_healthz_stays_200(tmp_path):
    source = ScriptedSource()
    source.is_up = False
    async with running_gateway(make_settings(tmp_path), source=source) as gw:
        status, body = await readyz(gw.url)
        health_status, _ = await http("GET", f"{gw.url}/healthz")

    assert status == 503
    assert body["status"] == "not_ready"
    assert body["dependencies"]["source"]["status"] == "down"
    assert body["degraded"] == ["feed_down"]
    assert health_status == 200


async def test_halted_trading_is_a_degraded_mode_not_unreadiness(tmp_path):
    admin = make_token(subject="ops", scopes=["admin"])
    halt = orjson.dumps({"state": "HALTED", "reason": "incident"})
    async with running_gateway(make_settings(tmp_path)) as gw:
        answer = await request("POST", f"{gw.api_url}/admin/trading-state", body=halt, token=admin)
        status, body = await readyz(gw.url)

    assert answer.status == 200
    assert status == 200
    assert body["degraded"] == ["trading_halted"]


@pytest.mark.integration
async def test_redis_down_is_reported_but_the_gateway_stays_ready(tmp_path, redis_server):
    settings = make_settings(tmp_path, redis={"url": redis_server.url, "timeout_ms": 500})
    async with running_gateway(settings) as gw:
        status_up, body_up = await readyz(gw.url)
        redis_server.stop()
        status_down, body_down = await readyz(gw.url)

    assert (status_up, body_up["dependencies"]["redis"]["status"]) == (200, "up")
    redis = body_down["dependencies"]["redis"]
    assert status_down == 200
    assert (redis["adapter"], redis["status"], redis["required"]) == ("redis", "down", False)
    assert redis["detail"]


@pytest.mark.integration
@pytest.mark.slow
async def test_ledger_store_down_makes_the_gateway_not_ready(tmp_path, private_postgres):
    dsn = private_postgres.create_database("readyz")
    settings = make_settings(tmp_path, ledger={"url": Secret(dsn)})
    async with running_gateway(settings) as gw:
        status_up, _ = await readyz(gw.url)
        private_postgres.stop()
        status_down, body = await readyz(gw.url)
        private_postgres.start()

        async def ready_again() -> bool:
            return (await readyz(gw.url))[0] == 200

        await poll_until(ready_again, what="the ledger store to answer again", timeout_s=30)

    deps = body["dependencies"]
    assert status_up == 200
    assert status_down == 503
    assert (deps["ledger_store"]["adapter"], deps["ledger_store"]["status"]) == (
        "postgresql",
        "down",
    )
    assert deps["order_bus"]["status"] == "down"
