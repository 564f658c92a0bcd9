"""The audit log: admin actions and requests that move money, as structured events."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson
import pytest

from gateway.audit import AUDIT_LOGGER
from tests.builders import make_batch, make_token
from tests.e2e.test_order_path import ACCOUNT, buy, order_settings
from tests.harness import RunningGateway, ScriptedSource, poll_until, request, running_gateway

pytestmark = pytest.mark.e2e


def audit_events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [orjson.loads(r.getMessage()) for r in caplog.records if r.name == AUDIT_LOGGER]


def quote_aapl(gw: RunningGateway, source: ScriptedSource) -> None:
    aapl = gw.gateway.master.symbol_index["AAPL"]
    source.push(make_batch([aapl], bid=[100.0], ask=[100.02]))


async def post(url: str, body: object, token: str, key: str | None = None) -> Any:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return await request("POST", url, body=orjson.dumps(body), token=token, headers=headers)


async def test_orders_and_payments_are_audited_accepted_refused_and_replayed(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    source = ScriptedSource()
    trader = make_token(subject="oms", accounts=[ACCOUNT], scopes=("orders:write",))
    reader = make_token(subject="viewer", accounts=[ACCOUNT], scopes=("orders:read",))
    async with running_gateway(order_settings(tmp_path), source=source) as gw:
        quote_aapl(gw, source)
        await poll_until(source.is_drained, what="the quote")
        key = str(uuid.uuid4())
        first = await post(f"{gw.api_url}/v1/orders", buy("10"), trader, key)
        again = await post(f"{gw.api_url}/v1/orders", buy("10"), trader, key)
        refused = await post(f"{gw.api_url}/v1/orders", buy("10"), reader, str(uuid.uuid4()))
        deposit = {"account_id": ACCOUNT, "kind": "deposit", "amount": "5.00", "currency": "USD"}
        paid = await post(f"{gw.api_url}/v1/payments", deposit, trader, str(uuid.uuid4()))

    assert (first.status, again.status, refused.status, paid.status) == (202, 202, 403, 202)
    events = audit_events(caplog)
    order_id = first.json()["order_id"]
    accepted, replayed, denied, payment = events
    assert accepted["event"] == "order.submit"
    assert (accepted["actor"], accepted["outcome"]) == ("oms", "accepted")
    assert (accepted["account_id"], accepted["order_id"]) == (ACCOUNT, order_id)
    assert {"ts_ns", "transfer_id", "trace_id"} <= accepted.keys()
    assert (replayed["event"], replayed["outcome"]) == ("order.submit", "replayed")
    assert replayed["transfer_id"] == accepted["transfer_id"]
    assert (denied["event"], denied["actor"], denied["outcome"]) == (
        "order.submit",
        "viewer",
        "refused",
    )
    assert (denied["status"], denied["code"]) == (403, "insufficient_scope")
    assert (payment["event"], payment["outcome"]) == ("payment.submit", "accepted")
    assert payment["payment_id"] == paid.json()["payment_id"]
    assert "amount" not in payment, "the ledger holds amounts; the audit holds identifiers"


async def test_the_trading_state_and_spikes_are_audited(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    admin = make_token(subject="ops", accounts=[], scopes=("admin",))
    nobody = make_token(subject="intruder", accounts=[], scopes=("read",))
    async with running_gateway(order_settings(tmp_path)) as gw:
        halted = await post(
            f"{gw.api_url}/admin/trading-state", {"state": "HALTED", "reason": "drill"}, admin
        )
        spiked = await post(f"{gw.url}/admin/spike", {"duration_s": 1}, admin)
        forbidden = await post(f"{gw.url}/admin/spike", {}, nobody)

    assert (halted.status, spiked.status, forbidden.status) == (200, 202, 403)
    state, spike, refused = audit_events(caplog)
    assert (state["event"], state["actor"], state["outcome"]) == (
        "trading_state.set",
        "ops",
        "changed",
    )
    assert (state["previous"], state["state"], state["reason"]) == ("ACTIVE", "HALTED", "drill")
    assert (spike["event"], spike["actor"], spike["outcome"]) == (
        "simulator.spike",
        "ops",
        "started",
    )
    assert spike["duration_s"] == 1
    assert (refused["event"], refused["actor"], refused["outcome"]) == (
        "simulator.spike",
        "intruder",
        "refused",
    )
    assert (refused["status"], refused["code"]) == (403, "forbidden")


def test_the_audit_file_is_created_0600_and_gets_one_json_line_per_event(tmp_path):
    from gateway.audit import audit, open_audit_file

    path = tmp_path / "logs" / "audit.jsonl"
    handler = open_audit_file(path)
    try:
        audit("simulator.spike", ts_ns=1, actor="ops", outcome="started", duration_s=2.0)
        audit("ledger.dlq_redrive", ts_ns=2, actor="alice", outcome="failed", error="X")
    finally:
        logging.getLogger(AUDIT_LOGGER).removeHandler(handler)
        handler.close()

    lines = [orjson.loads(line) for line in path.read_text().splitlines()]
    assert [e["event"] for e in lines] == ["simulator.spike", "ledger.dlq_redrive"]
    assert lines[0] == {
        "ts_ns": 1,
        "event": "simulator.spike",
        "actor": "ops",
        "outcome": "started",
        "duration_s": 2.0,
    }
    assert path.stat().st_mode & 0o777 == 0o600
