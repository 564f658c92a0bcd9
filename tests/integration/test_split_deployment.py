"""The split deployment: ``tickgate ledger run`` in its own process on PostgreSQL, the gateway and
its order API in another, talking over a real Kafka-compatible broker.

The ledger process seeds the demo accounts into PostgreSQL, consumes the
commands the API produces to ``orders.submitted`` and publishes its events
to ``orders.events``, which the gateway consumes into its portfolios and
its ``orders`` channel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest

from tests.builders import make_settings, make_token
from tests.harness import client, poll_until, request, running_gateway
from tests.ledger_faults import create_topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ACCOUNT = "DEMO-0001"


def split_env(tmp_path: Path, bootstrap: str, dsn: str, run: str) -> dict[str, str]:
    return {
        "TICKGATE_DATA_DIR": str(tmp_path),
        "TICKGATE_KAFKA_BOOTSTRAP": bootstrap,
        "TICKGATE_ORDERS_BUS": "kafka",
        "TICKGATE_ORDERS_KAFKA_TOPIC": f"cmd-{run}",
        "TICKGATE_ORDERS_EVENTS_TOPIC": f"evt-{run}",
        "TICKGATE_ORDERS_EVENTS_GROUP_ID": f"gw-{run}",
        "TICKGATE_LEDGER_DLQ_TOPIC": f"dlq-{run}",
        "TICKGATE_LEDGER_GROUP_ID": f"ledger-{run}",
        "TICKGATE_LEDGER_URL": dsn,
        "TICKGATE_LEDGER_EMBEDDED": "false",
        "TICKGATE_PORTFOLIO_DEMO_ACCOUNTS": "5",
        "TICKGATE_AUTH_JWT_SECRET": "t" * 40,
    }


async def wait_for_line(
    process: subprocess.Popen[bytes], log: Path, text: str, timeout_s: float = 60
) -> None:
    # The process logs to a file (a pipe nobody drains could block it).
    def ready() -> bool:
        if process.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise AssertionError(f"the ledger process exited with {process.returncode}:\n{tail}")
        return text in log.read_text(encoding="utf-8", errors="replace")

    await poll_until(ready, what=repr(text), timeout_s=timeout_s)


async def test_an_order_crosses_kafka_and_a_ledger_process_on_postgres(
    tmp_path, tansu, postgres_dsn
):
    run = uuid.uuid4().hex[:8]
    env = split_env(tmp_path, tansu.bootstrap, postgres_dsn, run)
    await create_topics(tansu.bootstrap, f"cmd-{run}", f"evt-{run}", f"dlq-{run}")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TICKGATE_")}
    log = tmp_path / "ledger.log"
    with log.open("wb") as sink:
        ledger = subprocess.Popen(  # noqa: ASYNC220 - a server process that outlives this call
            [sys.executable, "-m", "gateway", "ledger", "run"],
            env=clean | env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        await wait_for_line(ledger, log, "ledger service running")
        settings = make_settings(
            tmp_path,
            feed={"source": "simulator"},
            kafka={"bootstrap": tansu.bootstrap},
            orders={
                "bus": "kafka",
                "kafka_topic": f"cmd-{run}",
                "events_topic": f"evt-{run}",
                "events_group_id": f"gw-{run}",
            },
            ledger={"url": _secret(postgres_dsn), "embedded": False},
            portfolio={"demo_accounts": 5},
            risk={"interval_ms": 60_000},
        )
        token = make_token(
            subject="oms", accounts=(ACCOUNT,), scopes=("orders:write", "orders:read", "read")
        )
        async with running_gateway(settings) as gw:
            assert gw.gateway.trading.service is None  # the ledger runs elsewhere
            await poll_until(
                lambda: gw.gateway.book.ask[gw.gateway.master.symbol_index["AAPL"]] > 0,
                what="a price for AAPL",
            )
            async with client(gw.ws_url + f"?token={token}") as c:
                await c.send({"op": "subscribe", "channel": "orders", "account": ACCOUNT, "id": 1})
                await c.until(lambda m: m["type"] == "snapshot")
                answer = await request(
                    "POST",
                    gw.api_url + "/v1/orders",
                    body=orjson.dumps(
                        {
                            "account_id": ACCOUNT,
                            "symbol": "AAPL",
                            "side": "buy",
                            "quantity": "7",
                            "type": "market",
                            "time_in_force": "ioc",
                        }
                    ),
                    token=token,
                    headers={"Idempotency-Key": f"split-{run}"},
                )
                order_id = answer.json()["order_id"]
                # The seed's own fills come first: the events topic is read from its start.
                fill = await c.until(
                    lambda m: m.get("event") == "fill" and m.get("order_id") == order_id,
                    timeout_s=30,
                )
            ready = await request("GET", gw.url + "/readyz")
            book = gw.accounts.positions
            row = book.position_row(
                book.account_ix(ACCOUNT), gw.gateway.master.symbol_index["AAPL"]
            )
            positions = await request(
                "GET", gw.api_url + f"/v1/accounts/{ACCOUNT}/positions", token=token
            )
            before = {p["symbol"]: p for p in positions.json()["positions"]}
    finally:
        ledger.terminate()
        ledger.wait(timeout=30)

    assert answer.status == 202, answer.body
    assert (fill["order_id"], fill["quantity"], fill["side"]) == (
        answer.json()["order_id"],
        "7",
        "buy",
    )
    # The trace id crossed Kafka and the ledger process to the orders channel.
    assert fill["trace_id"] == answer.json()["trace_id"]
    kafka = ready.json()["dependencies"]["kafka"]
    assert (ready.status, kafka["status"]) == (200, "up")
    assert kafka["detail"] == "order_bus up; ledger_events up"
    assert ready.json()["dependencies"]["order_bus"] == {
        "adapter": "kafka",
        "status": "up",
        "required": True,
        "detail": None,
    }
    assert row is not None
    # The ledger on PostgreSQL and the gateway's portfolio agree on the position.
    ledger_quantity = float(before["AAPL"]["quantity"])
    assert float(book.column("quantity")[row]) == ledger_quantity
    assert ledger.returncode == 0


def _secret(dsn: str) -> object:
    from gateway.settings import Secret

    return Secret(dsn)
