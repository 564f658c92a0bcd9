"""The naive baseline server of the benchmark: its protocol subset, run in-process under uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import uvicorn

from load_tests.baselines.naive import NaiveServer, create_app, load_instruments, uvicorn_config
from tests.harness import Client, Message, assert_gap_free, http, poll_until, updates_for
from tests.harness import client as plain_client
from tests.servers import free_port, run_process

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
HEADER = (
    "instrument_id,symbol,type,currency,tick_size,lot_size,multiplier,sector,underlying,"
    "option_type,strike,expiry,base_currency,ref_price,volatility,weight"
)
ROWS = (
    "AAA.X,AAA,equity,USD,0.01,1,1,technology,,,,,,100.0,0.3,10",
    "BBB.X,BBB,equity,USD,0.01,1,1,financials,,,,,,50.0,0.2,10",
    "CCC.X,CCC,future,USD,0.25,1,50,equity_index,,,,2026-12-18,,5000.0,0.15,5",
    "EURUSD.FX,EURUSD,fx,USD,0.00001,1000,1,fx,,,,,EUR,1.165,0.07,5",
    "AAA261218C100.OPRA,AAA261218C100,option,USD,0.01,1,100,technology,AAA,C,100,2026-12-18,,8.5,0.3,1",
)
SYMBOLS = ["AAA", "BBB", "CCC", "EURUSD", "AAA261218C100"]


@pytest.fixture
def instruments_csv(tmp_path: Path) -> Path:
    path = tmp_path / "instruments.csv"
    path.write_text("\n".join((HEADER, *ROWS)) + "\n", encoding="utf-8")
    return path


@dataclass
class Baseline:
    url: str
    ws_url: str
    server: NaiveServer


@contextlib.asynccontextmanager
async def running_baseline(csv_path: Path, *, tick_rate: float = 2000.0) -> AsyncIterator[Baseline]:
    port = free_port()
    app = create_app(load_instruments(csv_path), tick_rate=tick_rate, step_ms=5, seed=7)
    server = uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    await poll_until(lambda: server.started, what="uvicorn to start")
    try:
        yield Baseline(
            url=f"http://127.0.0.1:{port}",
            ws_url=f"ws://127.0.0.1:{port}/ws?token=ignored",
            server=app.state.server,
        )
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=20)


def client(url: str) -> contextlib.AbstractAsyncContextManager[Client]:
    """A client whose library reads everything the server sends, whether the test reads or not.

    The baseline stalls on a client that stops reading (that is its naivety); a
    client that buffers without bound lets each test close promptly.
    """
    return plain_client(url, max_queue=None)


async def read_updates(c: Client, count: int, *, timeout_s: float = 20.0) -> None:
    """Read frames until ``count`` more update messages have arrived."""
    seen = 0

    def counted(m: Message) -> bool:
        nonlocal seen
        seen += m["type"] == "update"
        return bool(seen >= count)

    await c.until(counted, timeout_s)


async def test_snapshot_comes_first_and_updates_have_no_gap(instruments_csv):
    async with running_baseline(instruments_csv) as b, client(b.ws_url) as c:
        reply = await c.request(
            {"op": "subscribe", "channel": "quotes", "symbols": ["AAA", "BBB", "AAA"], "id": 1}
        )
        await read_updates(c, 300)

    assert reply["type"] == "subscribed"
    assert reply["keys"] == ["AAA", "BBB"]
    assert reply["epoch"] == b.server.epoch
    assert c.frames == len(c.received), "one message per frame"
    for key in ("AAA", "BBB"):
        messages = updates_for(c.received, key)
        assert len(messages) > 50
        assert_gap_free(messages)
        update = messages[-1]
        assert update["channel"] == "quotes"
        assert update["epoch"] == b.server.epoch
        assert update["bid"] < update["last"] < update["ask"]
        assert update["size"] in {float(n) for n in range(1, 11)}
        assert update["ts_event"] == update["ts_recv"] > 0
        assert update["ts_sent"] >= update["ts_event"]
        assert update["stale"] is False
    assert {m["key"] for m in c.received if m["type"] == "update"} == {"AAA", "BBB"}


async def test_every_client_sees_the_same_seq_for_the_same_tick(instruments_csv):
    async with (
        running_baseline(instruments_csv) as b,
        client(b.ws_url) as first,
        client(b.ws_url) as second,
    ):
        for c in (first, second):
            await c.request({"op": "subscribe", "channel": "quotes", "symbols": ["AAA"], "id": 1})
        await read_updates(first, 200)
        await read_updates(second, 200)

    def by_seq(c: Client) -> dict[int, tuple[object, ...]]:
        return {
            m["seq"]: (m["bid"], m["ask"], m["last"], m["size"], m["ts_event"])
            for m in updates_for(c.received, "AAA")
        }

    first_seqs, second_seqs = by_seq(first), by_seq(second)
    common = first_seqs.keys() & second_seqs.keys()
    assert len(common) > 100
    assert all(first_seqs[s] == second_seqs[s] for s in common)


async def test_a_symbol_that_never_ticked_has_a_null_snapshot(instruments_csv):
    async with running_baseline(instruments_csv) as b, client(b.ws_url) as c:
        await c.request(
            {"op": "subscribe", "channel": "quotes", "symbols": ["AAA261218C100"], "id": "s"}
        )
        snapshot = await c.until(lambda m: m["type"] == "snapshot")

    assert snapshot == {
        "type": "snapshot",
        "channel": "quotes",
        "key": "AAA261218C100",
        "seq": 0,
        "epoch": b.server.epoch,
        "bid": None,
        "ask": None,
        "last": None,
        "size": None,
        "ts_event": 0,
        "ts_recv": 0,
        "stale": True,
        "ts_sent": snapshot["ts_sent"],
    }


async def test_an_unknown_symbol_subscribes_nothing(instruments_csv):
    async with running_baseline(instruments_csv) as b, client(b.ws_url) as c:
        error = await c.request(
            {"op": "subscribe", "channel": "quotes", "symbols": ["AAA", "ZZZZ"], "id": 1}
        )
        await c.request({"op": "subscribe", "channel": "quotes", "symbols": ["BBB"], "id": 2})
        await read_updates(c, 100)

    assert error["type"] == "error"
    assert error["code"] == "unknown_symbol"
    assert error["symbols"] == ["ZZZZ"]
    assert error["retry"] is False
    assert {m.get("key") for m in c.received if m["type"] in ("snapshot", "update")} == {"BBB"}


async def test_no_update_follows_an_unsubscribe(instruments_csv):
    async with running_baseline(instruments_csv) as b, client(b.ws_url) as c:
        await c.request(
            {"op": "subscribe", "channel": "quotes", "symbols": ["AAA", "BBB"], "id": 1}
        )
        await read_updates(c, 50)
        reply = await c.request(
            {"op": "unsubscribe", "channel": "quotes", "symbols": ["AAA", "CCC"], "id": 2}
        )
        await read_updates(c, 100)

    assert reply == {
        "type": "unsubscribed",
        "channel": "quotes",
        "keys": ["AAA"],
        "id": 2,
        "ts_sent": reply["ts_sent"],
    }
    after = c.received[c.received.index(reply) + 1 :]
    assert {m["key"] for m in after if m["type"] == "update"} == {"BBB"}
    assert_gap_free(updates_for(c.received, "BBB"))


async def test_resubscribing_sends_a_fresh_snapshot_without_a_gap(instruments_csv):
    async with running_baseline(instruments_csv) as b, client(b.ws_url) as c:
        for n in range(1, 6):
            await c.request({"op": "subscribe", "channel": "quotes", "symbols": ["AAA"], "id": n})
            await read_updates(c, 20)

    messages = updates_for(c.received, "AAA")
    snapshots = [i for i, m in enumerate(messages) if m["type"] == "snapshot"]
    assert len(snapshots) == 5
    for start, end in zip(snapshots, [*snapshots[1:], len(messages)], strict=True):
        assert_gap_free(messages[start:end])


async def test_ping_errors_and_other_channels(instruments_csv):
    async with running_baseline(instruments_csv) as b, client(b.ws_url) as c:
        pong = await c.request({"op": "ping", "id": "p-1"})
        unknown_op = await c.request({"op": "trade", "id": 2})
        portfolio = await c.request(
            {"op": "subscribe", "channel": "portfolio", "account": "DEMO-0001", "id": 3}
        )
        bad_symbols = await c.request({"op": "subscribe", "channel": "quotes", "id": 4})
        bad_id = {"op": "ping", "id": ["x"]}
        await c.send(bad_id)
        bad_id_error = await c.until(lambda m: m["type"] == "error")
        await c.ws.send("{not json")
        bad_json = await c.until(lambda m: m["type"] == "error")
        await c.send([1, 2])
        not_object = await c.until(lambda m: m["type"] == "error")
        await c.ws.send(b"\x00\x01")
        binary = await c.until(lambda m: m["type"] == "error")
        still_there = await c.request({"op": "ping", "id": 5})

    assert pong == {"type": "pong", "id": "p-1", "ts_sent": pong["ts_sent"]}
    assert (unknown_op["code"], unknown_op["op"]) == ("unknown_op", "trade")
    assert portfolio["code"] == "unknown_channel"
    assert bad_symbols["code"] == "bad_request"
    assert bad_id_error["code"] == "bad_request"
    assert "id" not in bad_id_error
    assert bad_json["code"] == "bad_json"
    assert not_object["code"] == "bad_request"
    assert binary["code"] == "bad_frame"
    assert still_there["type"] == "pong"


async def test_a_client_that_goes_away_is_dropped_and_the_stream_goes_on(instruments_csv):
    async with running_baseline(instruments_csv) as b:
        async with client(b.ws_url) as leaving:
            await leaving.request(
                {"op": "subscribe", "channel": "quotes", "symbols": ["AAA", "BBB"], "id": 1}
            )
            await read_updates(leaving, 20)
            leaving.ws.transport.abort()  # no closing handshake, mid-stream
        await poll_until(
            lambda: not b.server.subscribers["AAA"] and not b.server.subscribers["BBB"],
            what="the departed client to be dropped",
        )
        async with client(b.ws_url) as staying:
            await staying.request(
                {"op": "subscribe", "channel": "quotes", "symbols": ["AAA"], "id": 1}
            )
            await read_updates(staying, 200)
        status, body = await http("GET", f"{b.url}/healthz")

    assert_gap_free(updates_for(staying.received, "AAA"))
    assert (status, orjson.loads(body)) == (200, {"status": "ok"})


async def test_http_instruments_metrics_and_health(instruments_csv):
    async with running_baseline(instruments_csv) as b:
        instruments = await http("GET", f"{b.url}/v1/instruments")
        metrics = await http("GET", f"{b.url}/metrics")
        health = await http("GET", f"{b.url}/healthz")

    assert instruments[0] == 200
    listed = orjson.loads(instruments[1])
    assert [i["symbol"] for i in listed] == SYMBOLS
    assert [i["type"] for i in listed] == ["equity", "equity", "future", "fx", "option"]
    assert listed[0]["id"] == "AAA.X"
    assert listed[0]["underlying"] is None
    assert metrics[0] == 200
    assert b"process_resident_memory_bytes" in metrics[1]
    assert health == (200, b'{"status":"ok"}')


async def test_admin_spike_multiplies_then_returns_to_calm(instruments_csv):
    async with running_baseline(instruments_csv) as b:
        defaults = await http("POST", f"{b.url}/admin/spike", body=b"", token="anything")
        defaults_regime = b.server.regime()
        short = await http(
            "POST",
            f"{b.url}/admin/spike",
            token="anything",
            body=b'{"rate_multiplier": 2, "vol_multiplier": 3.5, "duration_s": 0.2}',
        )
        short_regime = b.server.regime()
        await poll_until(lambda: b.server.regime() == (1.0, 1.0), what="the spike to end")

    assert defaults == (202, b'{"rate_multiplier":10.0,"vol_multiplier":5.0,"duration_s":30.0}')
    assert defaults_regime == (10.0, 5.0)
    assert short[0] == 202
    assert orjson.loads(short[1]) == {
        "rate_multiplier": 2.0,
        "vol_multiplier": 3.5,
        "duration_s": 0.2,
    }
    assert short_regime == (2.0, 3.5)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"rate_multiplier": 0}', "bad_request"),
        (b'{"vol_multiplier": -1}', "bad_request"),
        (b'{"duration_s": "30"}', "bad_request"),
        (b'{"duration_s": true}', "bad_request"),
        (b'{"rate_multiplier": 1000}', "bad_request"),
        (b'{"rate": 2}', "bad_request"),
        (b"[1]", "bad_request"),
        (b"{oops", "bad_json"),
    ],
)
async def test_admin_spike_refuses_bad_bodies(instruments_csv, body, code):
    async with running_baseline(instruments_csv) as b:
        status, answer = await http("POST", f"{b.url}/admin/spike", body=body, token="anything")
        regime = b.server.regime()

    assert status == 400
    assert orjson.loads(answer)["code"] == code
    assert regime == (1.0, 1.0)


def test_the_packaged_instrument_master_loads():
    instruments = load_instruments(ROOT / "pricing" / "data" / "instruments.csv")

    assert len(instruments) == 684
    assert sum(i.ticks for i in instruments) == 474
    assert instruments[0].reference["id"] == "NVDA.XNAS"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("DDD.X,DDD,equity,USD,0.01,1,1,tech,,,,,,abc,0.3,1", "ref_price must be a number"),
        ("DDD.X,DDD,equity,USD,0.01,1,1,tech,,,,,,0,0.3,1", "ref_price must be finite and > 0"),
        ("DDD.X,DDD,equity,USD,0.01,1,1,tech,,,,,,10,0.3,-1", "weight must be finite and >= 0"),
        ("AAA.Y,AAA,equity,USD,0.01,1,1,tech,,,,,,10,0.3,1", "duplicate symbol 'AAA'"),
    ],
)
def test_a_bad_instrument_row_is_refused_with_its_line(instruments_csv, row, message):
    instruments_csv.write_text(instruments_csv.read_text() + row + "\n")

    with pytest.raises(ValueError, match=rf"line 7: {message}"):
        load_instruments(instruments_csv)


async def test_the_command_line_serves_on_the_given_port(instruments_csv):
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "load_tests.baselines.naive",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--instruments-file",
        str(instruments_csv),
        "--tick-rate",
        "20000",
        "--step-ms",
        "5",
        "--seed",
        "7",
    ]
    with run_process(args, port):
        status, body = await http("GET", f"http://127.0.0.1:{port}/healthz")
        async with client(f"ws://127.0.0.1:{port}/ws") as c:
            await c.request({"op": "subscribe", "channel": "quotes", "symbols": ["CCC"], "id": 1})
            await read_updates(c, 20)

    assert (status, body) == (200, b'{"status":"ok"}')
    assert_gap_free(updates_for(c.received, "CCC"))


def test_the_command_line_refuses_a_missing_instruments_file(tmp_path):
    args = [sys.executable, "-m", "load_tests.baselines.naive"]
    args += ["--instruments-file", str(tmp_path / "missing.csv")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)

    assert done.returncode == 2
    assert "--instruments-file" in done.stderr
