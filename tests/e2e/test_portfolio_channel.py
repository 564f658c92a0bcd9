"""The portfolio channel over a real socket: authz, snapshot, updates, risk, recovery."""

from __future__ import annotations

import calendar
import time

import numpy as np
import orjson
import pytest

from gateway.marketdata.simulator import SimulatorSource
from gateway.ws import closecodes
from portfolio.engine import TOTAL_FIELDS
from portfolio.types import AccountId, Fill
from tests.builders import NS, ManualClock, make_batch, make_settings, make_token
from tests.harness import (
    Client,
    Message,
    RawClient,
    ScriptedSource,
    client,
    http,
    poll_until,
    running_gateway,
)

pytestmark = pytest.mark.e2e

ACCOUNTS = [
    {
        "account": "ACC-1",
        "base_currency": "USD",
        "version": 3,
        "cash": {"USD": 100000.0},
        "positions": {
            "AAPL": {"quantity": 100, "avg_cost": 200.0},
            "MSFT": {"quantity": -50, "avg_cost": 400.0},
        },
    },
    {
        "account": "ACC-2",
        "base_currency": "EUR",
        "version": 1,
        "cash": {"EUR": 5000.0},
        "positions": {"SAP": {"quantity": 10, "avg_cost": 150.0}},
    },
]


def portfolio_settings(tmp_path, **sections):
    path = tmp_path / "positions.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(a) for a in ACCOUNTS))
    return make_settings(
        tmp_path,
        portfolio={"positions_file": path},
        risk={"interval_ms": 60_000},
        **sections,
    )


def headers(*accounts: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(subject='trader', accounts=accounts)}"}


async def subscribe(c: Client, account: str = "ACC-1") -> Message:
    await c.send({"op": "subscribe", "channel": "portfolio", "account": account, "id": "s"})
    return await c.until(lambda m: m["type"] in ("snapshot", "error"))


async def test_anonymous_subscribe_to_portfolio_gets_auth_required(tmp_path):
    settings = portfolio_settings(tmp_path)
    async with running_gateway(settings, source=ScriptedSource()) as gw, client(gw.ws_url) as c:
        error = await subscribe(c)
        pong = await c.request({"op": "ping", "id": "p"})

    assert error["code"] == "auth_required"
    assert pong["type"] == "pong"


async def test_account_outside_the_token_is_forbidden_and_the_connection_stays(tmp_path):
    settings = portfolio_settings(tmp_path)
    async with (
        running_gateway(settings, source=ScriptedSource()) as gw,
        client(gw.ws_url, headers=headers("ACC-1")) as c,
    ):
        error = await subscribe(c, "ACC-2")
        snapshot = await subscribe(c, "ACC-1")

    assert (error["code"], error["accounts"]) == ("forbidden", ["ACC-2"])
    assert snapshot["key"] == "ACC-1"


async def test_granted_account_without_positions_is_unknown_account(tmp_path):
    settings = portfolio_settings(tmp_path)
    async with (
        running_gateway(settings, source=ScriptedSource()) as gw,
        client(gw.ws_url, headers=headers("ACC-9")) as c,
    ):
        error = await subscribe(c, "ACC-9")

    assert error["code"] == "unknown_account"


async def test_snapshot_has_every_position_totals_and_no_risk_yet(tmp_path):
    source = ScriptedSource()
    settings = portfolio_settings(tmp_path)
    async with running_gateway(settings, source=source) as gw:
        index = gw.gateway.master.symbol_index
        source.push(
            make_batch([index["AAPL"], index["MSFT"]], bid=[210.0, 390.0], ask=[210.0, 390.0])
        )
        await poll_until(source.is_drained, what="prices applied")
        async with client(gw.ws_url, headers=headers("ACC-1")) as c:
            snapshot = await subscribe(c)

    rows = {row["symbol"]: row for row in snapshot["positions"]}
    totals = snapshot["totals"]
    assert set(rows) == {"AAPL", "MSFT"}
    # AAPL: 100 x (210 - 200) = 1,000; MSFT: -50 x (390 - 400) = 500.
    assert rows["AAPL"]["unrealised_pnl"] == pytest.approx(1000.0)
    assert rows["MSFT"]["unrealised_pnl"] == pytest.approx(500.0)
    # Equity = cash 100,000 + 100 x 210 - 50 x 390 = 101,500.
    assert totals["equity"] == pytest.approx(101_500.0)
    assert totals["unrealised_pnl"] == pytest.approx(1_500.0)
    assert set(TOTAL_FIELDS) <= set(totals)
    assert (totals["currency"], totals["status"]) == ("USD", "ok")
    assert snapshot["risk"] is None


async def test_tick_on_a_held_instrument_pushes_its_row_and_new_totals(tmp_path):
    source = ScriptedSource()
    settings = portfolio_settings(tmp_path)
    async with running_gateway(settings, source=source) as gw:
        index = gw.gateway.master.symbol_index
        source.push(
            make_batch([index["AAPL"], index["MSFT"]], bid=[210.0, 390.0], ask=[210.0, 390.0])
        )
        await poll_until(source.is_drained, what="prices applied")
        async with client(gw.ws_url, headers=headers("ACC-1")) as c:
            snapshot = await subscribe(c)
            source.push(make_batch([index["AAPL"]], bid=[220.0], ask=[220.0], ts_event=2_000))
            update = await c.until(lambda m: m["type"] == "update")

    assert update["seq"] == snapshot["seq"] + 1
    assert [row["symbol"] for row in update["positions"]] == ["AAPL"]
    assert update["positions"][0]["price"] == 220.0
    assert update["totals"]["equity"] == pytest.approx(102_500.0)


async def test_unpriced_position_is_flagged_not_dropped(tmp_path):
    source = ScriptedSource()
    settings = portfolio_settings(tmp_path)
    async with running_gateway(settings, source=source) as gw:
        index = gw.gateway.master.symbol_index
        source.push(make_batch([index["AAPL"]], bid=[210.0], ask=[210.0]))
        await poll_until(source.is_drained, what="prices applied")
        async with client(gw.ws_url, headers=headers("ACC-1")) as c:
            snapshot = await subscribe(c)

    rows = {row["symbol"]: row for row in snapshot["positions"]}
    assert rows["MSFT"]["status"] == "unpriced"
    assert rows["MSFT"]["market_value"] is None
    assert snapshot["totals"]["status"] == "unpriced"
    assert snapshot["totals"]["unpriced_positions"] == 1


async def test_fill_pushes_the_new_position_state_with_realised_pnl(tmp_path):
    source = ScriptedSource()
    settings = portfolio_settings(tmp_path)
    async with running_gateway(settings, source=source) as gw:
        index = gw.gateway.master.symbol_index
        source.push(
            make_batch([index["AAPL"], index["MSFT"]], bid=[210.0, 390.0], ask=[210.0, 390.0])
        )
        await poll_until(source.is_drained, what="prices applied")
        async with client(gw.ws_url, headers=headers("ACC-1")) as c:
            await subscribe(c)
            fill = Fill(AccountId("ACC-1"), index["AAPL"], -40.0, 215.0, ledger_seq=4)
            gw.accounts.apply_fills([fill], gw.gateway.clock.now_ns())
            update = await c.until(lambda m: m["type"] == "update")

    row = update["positions"][0]
    # Sold 40 of 100 bought at 200, at 215: realised 40 x 15 = 600.
    assert (row["symbol"], row["quantity"], row["realised_pnl"]) == ("AAPL", 60.0, 600.0)
    assert update["totals"]["realised_pnl"] == pytest.approx(600.0)


async def test_risk_arrives_on_its_cadence_naming_method_confidence_and_horizon(tmp_path):
    settings = portfolio_settings(tmp_path)
    settings = make_settings(
        tmp_path,
        portfolio={"positions_file": settings.portfolio.positions_file},
        risk={"interval_ms": 20, "intraday_half_life_s": 0.2},
        simulator={"tick_rate_per_s": 20_000.0},
    )
    async with (
        running_gateway(settings) as gw,
        client(gw.ws_url, headers=headers("ACC-1")) as c,
    ):
        await subscribe(c)
        risk = await c.until(
            lambda m: (
                m["type"] == "update"
                and m.get("risk", {}).get("intraday", {}).get("status") == "ok"
            ),
            timeout_s=20,
        )

    report = risk["risk"]
    methods = {(v["method"], v["confidence"]) for v in report["var"]}
    assert methods == {
        ("parametric", 0.95),
        ("parametric", 0.99),
        ("historical", 0.95),
        ("historical", 0.99),
    }
    parametric = next(v for v in report["var"] if v["method"] == "parametric")
    historical = next(v for v in report["var"] if v["method"] == "historical")
    assert (parametric["returns"], parametric["lambda"]) == ("daily", 0.94)
    assert (historical["returns"], historical["window"], historical["scenarios"]) == (
        "daily",
        250,
        250,
    )
    assert (historical["quantile"], historical["options"]) == ("linear", "full_revaluation")
    # Seeded from the simulator's 500-day history: ok from the first report.
    assert (report["status"], report["days"], report["horizon_days"]) == ("ok", 500, 1.0)
    assert report["as_of"] > 0
    assert all(v["value"] is not None and v["value"] >= 0 for v in report["var"])
    intraday = report["intraday"]
    assert (intraday["half_life_s"], intraday["sample_interval_ms"]) == (0.2, 20)
    assert intraday["samples"] >= 10
    assert intraday["pnl_volatility"] > 0
    assert intraday["ratio_to_daily"] > 0
    assert {s["scenario"] for s in report["stress"]} >= {"equity_-10%", "vol_+50%", "fx_+5%"}


async def test_day_roll_enters_the_days_return_into_the_daily_model(tmp_path):
    settings = make_settings(tmp_path, risk={"interval_ms": 60_000})
    async with running_gateway(settings) as gw:
        accounts = gw.accounts
        source = gw.gateway.source
        assert isinstance(source, SimulatorSource)
        model = source.model
        await poll_until(lambda: model.steps > 200, what="a second of simulated market")
        risk_model = accounts.risk.model
        assert risk_model.closes is not None
        before, closes = risk_model.daily, risk_model.closes.copy()

        # No await from here on: the simulator does not step in between.
        accounts.roll_day(gw.gateway.clock.now_ns())
        after, steps = risk_model.daily, model.steps
        assert risk_model.closes is not None
        closes_now = risk_model.closes.copy()

    # One more daily return, and the model replaced rather than changed.
    assert (before.samples, after.samples) == (500, 501)
    assert after is not before
    # The market ran ``steps`` steps of 5 ms since the start, a fraction of a
    # trading day of 23,400 s: the return is scaled up to one day's.
    days = steps * 0.005 / 23_400
    with np.errstate(divide="ignore", invalid="ignore"):
        moved = np.log(closes_now / closes)
    expected = np.where(np.isfinite(moved), moved, 0.0) / np.sqrt(days)
    np.testing.assert_allclose(after.scenarios()[-1], expected, rtol=1e-9, atol=1e-15)
    assert np.abs(expected).max() > 0


async def test_lagging_client_gets_merged_updates_with_every_row(tmp_path):
    source = ScriptedSource()
    settings = portfolio_settings(
        tmp_path,
        fanout={
            "write_buffer_high_bytes": 2048,
            "write_buffer_low_bytes": 512,
            "slow_consumer_grace_ms": 60_000,
        },
    )
    async with running_gateway(settings, source=source) as gw:
        index = gw.gateway.master.symbol_index
        pair = [index["AAPL"], index["MSFT"]]
        token = make_token(subject="trader", accounts=["ACC-1"])
        slow = RawClient(f"{gw.ws_url}?token={token}")
        await slow.connect(receive_buffer_bytes=4096)
        await slow.send({"op": "subscribe", "channel": "portfolio", "account": "ACC-1"})
        hub = gw.gateway.hub
        price = 100.0
        while not any(conn.outbox.conflated for conn in hub.connections):
            price += 1.0
            # AAPL and MSFT tick in separate batches: each update has one row.
            source.push(make_batch([pair[0]], bid=[price], ask=[price]))
            source.push(make_batch([pair[1]], bid=[price + 1000], ask=[price + 1000]))
            await poll_until(source.is_drained, what="batches applied")
            assert price < 50_000, "the client never fell behind"
        while not any(
            row["symbol"] == "MSFT" and row["price"] == price + 1000
            for m in slow.messages
            for row in m.get("positions", ())
        ):
            await slow.read_some(5.0)
        slow.close()

    merged = [m for m in slow.messages if m["type"] == "update" and "seq_from" in m]
    assert merged, "no update was conflated"
    assert all({r["symbol"] for r in m["positions"]} == {"AAPL", "MSFT"} for m in merged)


async def test_resubscribe_recovers_the_accounts_latest_state_in_one_update(tmp_path):
    source = ScriptedSource()
    settings = portfolio_settings(tmp_path)
    async with running_gateway(settings, source=source) as gw:
        index = gw.gateway.master.symbol_index
        aapl = index["AAPL"]
        async with client(gw.ws_url, headers=headers("ACC-1")) as watcher:
            first = await subscribe(watcher)
            async with client(gw.ws_url, headers=headers("ACC-1")) as c:
                snapshot = await subscribe(c)
            # c is gone; the watcher shows when each revaluation was sent.
            # One batch at a time: batches that arrive before the previous one
            # was revalued are revalued together, as one update.
            for price in (201.0, 202.0):
                source.push(make_batch([aapl], bid=[price], ask=[price], ts_event=int(price)))
                await watcher.until(
                    lambda m, price=price: bool(  # type: ignore[misc]  # a default-bound lambda
                        m["type"] == "update" and m["positions"][0]["price"] == price
                    )
                )
            async with client(gw.ws_url, headers=headers("ACC-1")) as again:
                await again.send(
                    {
                        "op": "subscribe",
                        "channel": "portfolio",
                        "account": "ACC-1",
                        "epoch": snapshot["epoch"],
                        "last_seq": snapshot["seq"],
                        "id": "r",
                    }
                )
                ack = await again.until(lambda m: m.get("id") == "r")
                latest = await again.until(lambda m: m["type"] == "update")

    assert first["seq"] == snapshot["seq"]
    assert ack["recovered"] is True
    assert (latest["seq_from"], latest["seq"]) == (snapshot["seq"] + 1, snapshot["seq"] + 2)
    assert [r["price"] for r in latest["positions"] if r["symbol"] == "AAPL"] == [202.0]
    assert set(latest) >= {"currency", "positions", "totals", "risk"}


async def get_json(url: str, token: str | None) -> tuple[int, Message]:
    status, body = await http("GET", url, token=token)
    return status, orjson.loads(body)


async def test_account_endpoint_returns_positions_and_totals_for_a_granted_token(tmp_path):
    async with running_gateway(portfolio_settings(tmp_path), source=ScriptedSource()) as gw:
        token = make_token(accounts=["ACC-2"])
        status, body = await get_json(f"{gw.url}/v1/accounts/ACC-2", token)
        denied, refusal = await get_json(f"{gw.url}/v1/accounts/ACC-1", token)
        missing, _ = await get_json(f"{gw.url}/v1/accounts/ACC-2", None)

    assert status == 200
    assert [row["symbol"] for row in body["positions"]] == ["SAP"]
    assert body["totals"]["currency"] == "EUR"
    assert (denied, refusal["error"]["code"]) == (403, "forbidden")
    assert missing == 401


async def test_risk_endpoint_runs_risk_on_demand(tmp_path):
    source = ScriptedSource()
    async with running_gateway(portfolio_settings(tmp_path), source=source) as gw:
        index = gw.gateway.master.symbol_index
        source.push(
            make_batch([index["AAPL"], index["MSFT"]], bid=[210.0, 390.0], ask=[210.0, 390.0])
        )
        await poll_until(source.is_drained, what="prices applied")
        started = time.time_ns()
        status, report = await get_json(
            f"{gw.url}/v1/accounts/ACC-1/risk", make_token(accounts=["ACC-1"])
        )

    assert status == 200
    assert report["as_of"] >= started
    assert report["status"] == "warming_up"  # no return samples yet: VaR needs history
    stress = {s["scenario"]: s["pnl"] for s in report["stress"]}
    # Equity -10%: AAPL 100 x -21 + MSFT -50 x -39 = -2,100 + 1,950 = -150.
    assert stress["equity_-10%"] == pytest.approx(-150.0)


async def test_portfolio_subscription_closes_on_token_expiry_like_any_other(tmp_path):
    async with running_gateway(portfolio_settings(tmp_path), source=ScriptedSource()) as gw:
        token = make_token(accounts=["ACC-1"], ttl_s=1, now_s=time.time() - 10)
        async with client(gw.ws_url, headers={"Authorization": f"Bearer {token}"}) as c:
            code, _ = await c.closed()

    assert code == closecodes.UNAUTHORIZED


async def test_batches_applied_in_one_loop_step_are_revalued_as_one_update(tmp_path):
    settings = portfolio_settings(tmp_path)
    async with running_gateway(settings, source=ScriptedSource()) as gw:
        aapl = gw.gateway.master.symbol_index["AAPL"]
        async with client(gw.ws_url, headers=headers("ACC-1")) as c:
            snapshot = await subscribe(c)
            # Two batches with no await between them: the portfolio is revalued
            # once, in a later loop step, at the latest price.
            gw.gateway.pipeline.apply(make_batch([aapl], bid=[205.0], ask=[205.0]))
            gw.gateway.pipeline.apply(make_batch([aapl], bid=[206.0], ask=[206.0], ts_event=2_000))
            update = await c.until(lambda m: m["type"] == "update")

    # The first update is already at 206 and the next seq: 205 never got one.
    assert update["seq"] == snapshot["seq"] + 1
    assert update["positions"][0]["price"] == 206.0


async def test_fx_tick_resends_rows_of_foreign_positions_with_the_new_rate(tmp_path):
    path = tmp_path / "positions.jsonl"
    foreign = {
        "account": "ACC-3",
        "base_currency": "EUR",
        "version": 1,
        "cash": {"EUR": 1000.0},
        "positions": {"AAPL": {"quantity": 10, "avg_cost": 200.0}},
    }
    path.write_bytes(orjson.dumps(foreign))
    settings = make_settings(
        tmp_path, portfolio={"positions_file": path}, risk={"interval_ms": 60_000}
    )
    source = ScriptedSource()
    async with running_gateway(settings, source=source) as gw:
        index = gw.gateway.master.symbol_index
        source.push(
            make_batch([index["AAPL"], index["EURUSD"]], bid=[210.0, 1.2], ask=[210.0, 1.2])
        )
        await poll_until(source.is_drained, what="prices applied")
        async with client(gw.ws_url, headers=headers("ACC-3")) as c:
            snapshot = await subscribe(c, "ACC-3")
            source.push(make_batch([index["EURUSD"]], bid=[1.25], ask=[1.25], ts_event=2_000))
            update = await c.until(lambda m: m["type"] == "update")

    assert snapshot["positions"][0]["fx_rate"] == pytest.approx(1 / 1.2)
    # Only the rate moved, yet the AAPL row comes again with it: 10 x 210 / 1.25.
    assert [row["symbol"] for row in update["positions"]] == ["AAPL"]
    assert update["positions"][0]["fx_rate"] == pytest.approx(1 / 1.25)
    assert update["totals"]["market_value"] == pytest.approx(2_100.0 / 1.25)


async def test_renewed_token_without_the_account_ends_its_subscription(tmp_path):
    settings = portfolio_settings(tmp_path)
    async with (
        running_gateway(settings, source=ScriptedSource()) as gw,
        client(gw.ws_url, headers=headers("ACC-1", "ACC-2")) as c,
    ):
        await subscribe(c, "ACC-1")
        await subscribe(c, "ACC-2")
        narrower = make_token(subject="trader", accounts=("ACC-2",))
        await c.send({"op": "auth", "token": narrower, "id": "renew"})
        authenticated = await c.until(lambda m: m.get("id") == "renew")
        dropped = await c.until(lambda m: m["type"] == "unsubscribed")
        # ACC-2 is still served: a fill on it arrives.
        fill = Fill(AccountId("ACC-2"), gw.gateway.master.symbol_index["SAP"], 1.0, 150.0, 9)
        gw.accounts.apply_fills([fill], 1)
        update = await c.until(lambda m: m["type"] == "update")

    assert authenticated["accounts"] == ["ACC-2"]
    assert dropped["channel"] == "portfolio"
    assert dropped["keys"] == ["ACC-1"]
    assert update["key"] == "ACC-2"


async def test_day_roll_restarts_day_pnl_from_the_current_prices(tmp_path):
    source = ScriptedSource()
    settings = portfolio_settings(tmp_path)
    async with running_gateway(settings, source=source) as gw:
        index = gw.gateway.master.symbol_index
        source.push(
            make_batch([index["AAPL"], index["MSFT"]], bid=[210.0, 390.0], ask=[210.0, 390.0])
        )
        await poll_until(source.is_drained, what="prices applied")
        async with client(gw.ws_url, headers=headers("ACC-1")) as c:
            before = await subscribe(c)
            gw.accounts.roll_day(10**18)
            rolled = await c.until(lambda m: m["type"] == "update")
            source.push(make_batch([index["AAPL"]], bid=[211.0], ask=[211.0], ts_event=2_000))
            moved = await c.until(lambda m: m["type"] == "update")

    assert before["totals"]["day_pnl"] != 0.0  # measured from the master's reference prices
    assert {row["symbol"]: row["day_pnl"] for row in rolled["positions"]} == {
        "AAPL": 0.0,
        "MSFT": 0.0,
    }
    assert rolled["totals"]["day_pnl"] == 0.0
    # The new day counts from 210: 100 x (211 - 210).
    assert moved["totals"]["day_pnl"] == pytest.approx(100.0)


async def test_day_roll_at_its_time_reaches_the_position_cache(tmp_path):
    path = tmp_path / "positions.jsonl"
    traded_today = {
        "account": "ACC-1",
        "base_currency": "USD",
        "version": 3,
        "positions": {"AAPL": {"quantity": 100, "avg_cost": 200.0, "day_open_quantity": 60}},
    }
    path.write_bytes(orjson.dumps(traded_today))
    settings = make_settings(
        tmp_path,
        portfolio={"positions_file": path, "day_roll_utc": "22:00"},
        risk={"interval_ms": 60_000},
        position_cache={"flush_interval_ms": 20},
    )
    # 0.2 s before 22:00 UTC on the gateway's clock.
    clock = ManualClock(calendar.timegm((2026, 11, 20, 22, 0, 0)) * NS - 200_000_000)

    async def rolled_in_cache(gw) -> bool:
        record = (await gw.gateway.store.load()).get(AccountId("ACC-1"))
        return record is not None and record.positions["AAPL"].day_open_quantity == 100.0

    async with running_gateway(settings, source=ScriptedSource(), clock=clock) as gw:
        await poll_until(lambda: rolled_in_cache(gw), what="the rolled day in the cache")
        position = gw.accounts.positions.position_state(0)

    assert position.day_open_quantity == 100.0
    assert position.day_trade_value == 0.0
