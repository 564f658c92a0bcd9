"""An order's trace id from the API through the bus and the ledger to the ``orders`` push:
in the events, in the logs of each hop, and as OpenTelemetry spans when the SDK is set up."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway._otel import otel_tracer
from gateway.settings import Settings
from tests.builders import make_batch, make_settings, make_token
from tests.harness import (
    Client,
    Message,
    RunningGateway,
    ScriptedSource,
    client,
    poll_until,
    request,
    running_gateway,
)

pytestmark = pytest.mark.e2e

ACCOUNT = "ACC-1"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
HOPS = {"orders.accepted", "ledger.event_committed", "orders.event_pushed"}


def order_settings(tmp_path: Path) -> Settings:
    path = tmp_path / "positions.jsonl"
    account = {"account": ACCOUNT, "base_currency": "USD", "version": 1, "cash": {"USD": 1e5}}
    path.write_bytes(orjson.dumps(account))
    return make_settings(tmp_path, portfolio={"positions_file": path})


def token() -> str:
    return make_token(accounts=[ACCOUNT], scopes=["orders:write", "orders:read", "read"])


async def traced_order_fills(gw: RunningGateway, source: ScriptedSource) -> tuple[Message, Message]:
    """Send a traced market buy; return its 202 body and the fill pushed on ``orders``."""
    aapl = gw.gateway.master.symbol_index["AAPL"]
    source.push(make_batch([aapl], bid=[100.0], ask=[100.02]))
    await poll_until(source.is_drained, what="the quote")
    body = {
        "account_id": ACCOUNT,
        "symbol": "AAPL",
        "side": "buy",
        "quantity": "2",
        "type": "market",
        "time_in_force": "day",
    }
    async with client(gw.ws_url + f"?token={token()}") as c:
        await subscribe_orders(c)
        answer = await request(
            "POST",
            f"{gw.api_url}/v1/orders",
            body=orjson.dumps(body),
            token=token(),
            headers={"Idempotency-Key": str(uuid.uuid4()), "traceparent": TRACEPARENT},
        )
        fill = await c.until(lambda m: m.get("channel") == "orders" and m.get("event") == "fill")
        await c.until(lambda m: m.get("channel") == "orders" and m.get("status") == "filled")
    assert answer.status == 202
    return answer.json(), fill


async def subscribe_orders(c: Client) -> None:
    await c.send({"op": "subscribe", "channel": "orders", "account": ACCOUNT, "id": 1})
    await c.until(lambda m: m.get("type") == "snapshot" and m.get("channel") == "orders")


async def test_the_trace_id_reaches_the_orders_push_and_every_hop_logs_it(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="gateway.trading")
    source = ScriptedSource()
    async with running_gateway(order_settings(tmp_path), source=source) as gw:
        accepted, fill = await traced_order_fills(gw, source)

    traced = [r for r in caplog.records if getattr(r, "trace_id", None) == TRACE_ID]
    assert accepted["trace_id"] == TRACE_ID
    assert fill["trace_id"] == TRACE_ID
    assert {getattr(r, "event", None) for r in traced} == HOPS
    pushed = [r for r in traced if getattr(r, "event", None) == "orders.event_pushed"]
    assert {"order", "fill"} <= {str(getattr(r, "ledger_event", None)) for r in pushed}


async def test_with_the_sdk_each_hop_is_a_span_of_the_orders_trace(tmp_path, monkeypatch):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # The app asks build_tracer for the configured provider; this test configures its own.
    monkeypatch.setattr("gateway.app.build_tracer", lambda: otel_tracer(provider))
    source = ScriptedSource()
    async with running_gateway(order_settings(tmp_path), source=source) as gw:
        await traced_order_fills(gw, source)

        def pushed() -> bool:
            return any(s.name == "tickgate.orders.push" for s in exporter.get_finished_spans())

        await poll_until(pushed, what="the push span")
    spans = exporter.get_finished_spans()

    names = {s.name for s in spans}
    assert {"tickgate.order.accept", "tickgate.ledger.commit", "tickgate.orders.push"} <= names
    assert {format(s.context.trace_id, "032x") for s in spans if s.context} == {TRACE_ID}
    assert all((s.end_time or 0) >= (s.start_time or 0) for s in spans)


def test_without_the_sdk_nothing_of_opentelemetry_is_imported(tmp_path):
    # A fresh interpreter where the opentelemetry package cannot be found:
    # the whole gateway is built, and no OpenTelemetry module is loaded.
    script = f"""
import importlib.util, sys
def is_hidden(name):
    return name.split(".")[0] == "opentelemetry"
class Absent:
    # An import of the package fails as when it is not installed.
    @staticmethod
    def find_spec(name, path=None, target=None):
        if is_hidden(name):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Absent)
real = importlib.util.find_spec
def hidden(name, package=None):
    return None if is_hidden(name) else real(name, package)
importlib.util.find_spec = hidden
from gateway.app import build_gateway
from gateway.tracing import NO_TRACER
from tests.builders import make_settings
from pathlib import Path
gateway = build_gateway(make_settings(Path({str(tmp_path)!r})))
assert gateway.trading.tracer is NO_TRACER
print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
"""
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"


async def test_a_resting_orders_trace_id_is_in_the_snapshot_after_a_restart(tmp_path):
    settings = order_settings(tmp_path)
    body = {
        "account_id": ACCOUNT,
        "symbol": "AAPL",
        "side": "buy",
        "quantity": "1",
        "type": "limit",
        "limit_price": "95.00",
        "time_in_force": "gtc",
    }
    source = ScriptedSource()
    async with running_gateway(settings, source=source) as gw:
        aapl = gw.gateway.master.symbol_index["AAPL"]
        source.push(make_batch([aapl], bid=[100.0], ask=[100.02]))
        await poll_until(source.is_drained, what="the quote")
        async with client(gw.ws_url + f"?token={token()}") as c:
            await subscribe_orders(c)
            answer = await request(
                "POST",
                f"{gw.api_url}/v1/orders",
                body=orjson.dumps(body),
                token=token(),
                headers={"Idempotency-Key": str(uuid.uuid4()), "traceparent": TRACEPARENT},
            )
            assert answer.status == 202, answer.body
            await c.until(lambda m: m.get("channel") == "orders" and m.get("status") == "reserved")

    async with (
        running_gateway(settings, source=ScriptedSource()) as gw,
        client(gw.ws_url + f"?token={token()}") as c,
    ):
        await c.send({"op": "subscribe", "channel": "orders", "account": ACCOUNT, "id": 1})
        snapshot = await c.until(
            lambda m: m.get("type") == "snapshot" and m.get("channel") == "orders"
        )

    assert answer.status == 202
    [resting] = snapshot["orders"]
    assert (resting["order_id"], resting["trace_id"]) == (answer.json()["order_id"], TRACE_ID)
