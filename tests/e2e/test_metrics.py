"""/metrics of a running gateway: the operator's series appear and move with the traffic."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.settings import Settings
from tests.builders import make_batch, make_settings, make_token
from tests.harness import (
    RunningGateway,
    ScriptedSource,
    client,
    http,
    poll_until,
    request,
    running_gateway,
)

pytestmark = pytest.mark.e2e

ACCOUNT = "ACC-1"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def order_settings(tmp_path: Path) -> Settings:
    path = tmp_path / "positions.jsonl"
    account = {"account": ACCOUNT, "base_currency": "USD", "version": 1, "cash": {"USD": 1e5}}
    path.write_bytes(orjson.dumps(account))
    return make_settings(tmp_path, portfolio={"positions_file": path})


async def scrape(gw: RunningGateway) -> Samples:
    status, body = await http("GET", f"{gw.url}/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def submit(gw: RunningGateway, key: str, quantity: str = "2") -> int:
    body = {
        "account_id": ACCOUNT,
        "symbol": "AAPL",
        "side": "buy",
        "quantity": quantity,
        "type": "market",
        "time_in_force": "day",
    }
    answer = await request(
        "POST",
        f"{gw.api_url}/v1/orders",
        body=orjson.dumps(body),
        token=make_token(accounts=[ACCOUNT], scopes=["orders:write", "orders:read", "read"]),
        headers={"Idempotency-Key": key},
    )
    return answer.status


async def test_tick_to_push_histogram_counts_the_ticks_pushed(tmp_path):
    source = ScriptedSource()
    async with running_gateway(make_settings(tmp_path), source=source) as gw:
        before = await scrape(gw)
        aapl = gw.gateway.master.symbol_index["AAPL"]
        now = gw.gateway.clock.now_ns()
        source.push(make_batch([aapl], bid=[100.0], ask=[100.1], ts_event=now, ts_recv=now))
        await poll_until(source.is_drained, what="the batch to be applied")
        after = await scrape(gw)

    assert value(before, "tickgate_tick_to_push_seconds_count") == 0.0
    assert value(after, "tickgate_tick_to_push_seconds_count") == 1.0
    assert value(after, "tickgate_tick_to_push_seconds_bucket", le="+Inf") == 1.0


async def test_orders_ledger_and_idempotency_series_move_with_an_order(tmp_path):
    source = ScriptedSource()
    async with running_gateway(order_settings(tmp_path), source=source) as gw:
        aapl = gw.gateway.master.symbol_index["AAPL"]
        source.push(make_batch([aapl], bid=[100.0], ask=[100.02]))
        await poll_until(source.is_drained, what="the quote")
        before = await scrape(gw)
        key = str(uuid.uuid4())
        statuses = [await submit(gw, key), await submit(gw, key), await submit(gw, key, "3")]

        async def filled() -> bool:
            return value(await scrape(gw), "tickgate_order_updates_total", status="filled") >= 1

        await poll_until(filled, what="the order's fill to reach the gateway")
        after = await scrape(gw)

    assert statuses == [202, 202, 422]
    for name in ("tickgate_ledger_batches_total", "tickgate_ledger_transactions_total"):
        assert value(after, name) > value(before, name), name
    # The fill is one balanced transaction of at least two postings.
    assert (
        value(after, "tickgate_ledger_postings_total")
        - value(before, "tickgate_ledger_postings_total")
        >= 2
    )
    assert value(after, "tickgate_ledger_batch_commands_count") > value(
        before, "tickgate_ledger_batch_commands_count"
    )
    assert ("tickgate_ledger_outbox_backlog", ()) in after
    assert value(after, "tickgate_ledger_open_orders") == 0.0
    assert value(after, "tickgate_orders_requests_total", status="202") == 2.0
    assert value(after, "tickgate_orders_idempotent_replays_total", operation="submit_order") == 1
    conflicts = "tickgate_orders_idempotency_conflicts_total"
    assert value(after, conflicts, code="idempotency_key_reused") == 1.0


async def test_close_codes_are_counted_per_code(tmp_path):
    async with running_gateway(make_settings(tmp_path, ws={"max_inbound_bytes": 64})) as gw:
        async with client(gw.ws_url) as c:
            await c.ws.send("x" * 1000)
            code, _ = await c.closed()
        samples = await scrape(gw)

    assert code == 1009
    assert value(samples, "tickgate_ws_closes_total", code="1009") == 1.0


async def test_closes_by_the_client_are_counted_per_code(tmp_path):
    async with running_gateway(make_settings(tmp_path)) as gw:
        async with client(gw.ws_url) as c:
            await c.request({"op": "ping", "id": 1})
            await c.ws.close(4100, "bye")

        async def counted() -> bool:
            samples = await scrape(gw)
            return value(samples, "tickgate_ws_peer_closes_total", code="4100") == 1.0

        await poll_until(counted, what="the client's close to be counted")


async def test_risk_run_duration_is_observed_per_periodic_run(tmp_path):
    async with running_gateway(make_settings(tmp_path, risk={"interval_ms": 200})) as gw:

        async def ran() -> bool:
            return value(await scrape(gw), "tickgate_risk_run_seconds_count") >= 1

        await poll_until(ran, what="a periodic risk run to be timed", timeout_s=30)
