"""The dashboard's protocol client (client.js, sequence.js) driven by scripted frames.

The modules run in Chromium as the page loads them, from a fake origin
that Playwright serves from the package's static directory, with a fake
WebSocket and manual timers (fakes.js): no gateway, so every frame, close
and delay is the test's choice. Expected values come from docs/protocol.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page

from tests.browser.scripted import scripted_page

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def page(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Page]:
    async with scripted_page(tmp_path_factory.mktemp("chromium-profile")) as page:
        yield page


async def run(page: Page, body: str) -> Any:
    """Evaluate ``body`` in an async function that has the modules and the fakes in scope."""
    script = f"""async () => {{
        const {{ GatewayClient }} = await import("/static/client.js");
        const seq = await import("/static/sequence.js");
        const f = await import("/fakes.js");
        const strip = (messages) => messages.map(({{ id, ...rest }}) => rest);
        {body}
    }}"""
    return await page.evaluate(script)


# --- the gap rule and recovery bookkeeping (sequence.js) -------------------------------


async def test_gap_rule_accepts_only_the_next_seq_in_the_same_epoch(page):
    result = await run(
        page,
        """
        const t = new seq.SeqTracker();
        const out = [];
        out.push(t.update(f.update("quotes", "AAPL", 1)));  // never subscribed
        t.expect("AAPL");
        out.push(t.update(f.update("quotes", "AAPL", 1)));  // before its snapshot
        t.snapshot("AAPL", 5, f.EPOCH);
        out.push(t.update(f.update("quotes", "AAPL", 6)));
        out.push(t.update(f.update("quotes", "AAPL", 9, { seq_from: 7 })));  // merged 7..9
        out.push(t.update(f.update("quotes", "AAPL", 9)));  // a repeat is a gap too
        out.push(t.update(f.update("quotes", "AAPL", 10)));  // waits for the fresh snapshot
        t.snapshot("AAPL", 20, f.EPOCH);
        out.push(t.update(f.update("quotes", "AAPL", 22)));  // 21 missing
        t.snapshot("AAPL", 30, f.EPOCH);
        out.push(t.update({ ...f.update("quotes", "AAPL", 31), epoch: "e-2" }));
        t.snapshot("AAPL", 40, f.EPOCH);
        out.push(t.update(f.update("quotes", "AAPL", 43, { seq_from: 42 })));  // 41 missing
        return out;
        """,
    )

    assert result == ["drop", "drop", "apply", "apply", "gap", "drop", "gap", "gap", "gap"]


async def test_recoverable_keys_are_the_live_ones_grouped_by_epoch(page):
    result = await run(
        page,
        """
        const t = new seq.SeqTracker();
        t.snapshot("AAPL", 5, "e-1");
        t.snapshot("MSFT", 7, "e-1");
        t.snapshot("EURUSD", 2, "e-0");
        t.expect("NVDA");
        t.snapshot("TSLA", 1, "e-1");
        t.update(f.update("quotes", "TSLA", 3));
        return Object.fromEntries(t.recoverable());
        """,
    )

    assert result == {"e-1": {"AAPL": 5, "MSFT": 7}, "e-0": {"EURUSD": 2}}


async def test_backoff_doubles_from_250_ms_up_to_30_s_with_jitter_in_the_upper_half(page):
    result = await run(
        page,
        """
        const draw = (random) => {
          const b = new seq.Backoff({ random });
          return Array.from({ length: 10 }, () => b.next());
        };
        const b = new seq.Backoff({ random: () => 0 });
        b.next(); b.next(); b.reset();
        return { low: draw(() => 0), high: draw(() => 1), afterReset: b.next() };
        """,
    )

    assert result["low"] == [125, 250, 500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]
    assert result["high"] == [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
    assert result["afterReset"] == 125


async def test_quantile_takes_the_nearest_rank(page):
    result = await run(
        page,
        """
        const v = [5, 1, 3, 2, 4];
        return [seq.quantile(v, 0.5), seq.quantile(v, 0.99), seq.quantile(v, 0.2),
                seq.quantile([], 0.5)];
        """,
    )

    assert result == [3, 5, 1, None]


# --- the client (client.js) ------------------------------------------------------------


async def test_client_sends_auth_first_then_subscribes_each_channel(page):
    result = await run(
        page,
        """
        const h = await f.harness(GatewayClient);
        h.client.subscribe("quotes", ["AAPL", "MSFT"]);
        h.client.subscribe("portfolio", ["DEMO-0001"]);
        h.client.start();
        await f.settle();
        const sock = f.FakeSocket.last();
        sock.open();
        return { url: sock.url, sent: sock.sent, state: h.client.status().state };
        """,
    )

    assert result["url"] == "ws://gateway.test/ws"
    assert result["state"] == "live"
    assert result["sent"] == [
        {"op": "auth", "token": "T1", "id": 1},
        {"op": "subscribe", "channel": "quotes", "symbols": ["AAPL", "MSFT"], "id": 2},
        {"op": "subscribe", "channel": "portfolio", "accounts": ["DEMO-0001"], "id": 3},
    ]


async def test_client_names_the_accounts_of_the_orders_channel_as_on_portfolio(page):
    result = await run(
        page,
        """
        const h = await f.harness(GatewayClient);
        const seen = [];
        h.client.on("orders", (m) => seen.push(m));
        h.client.subscribe("orders", ["DEMO-0001"]);
        h.client.start();
        await f.settle();
        const sock = f.FakeSocket.last();
        sock.open();
        sock.deliver(
          { type: "subscribed", channel: "orders", keys: ["DEMO-0001"], epoch: f.EPOCH, id: 2 },
          f.snapshot("orders", "DEMO-0001", 4, { orders: [] }),
          f.update("orders", "DEMO-0001", 5, { event: "order" }),
          f.update("orders", "DEMO-0001", 7, { event: "fill" }),  // 6 is missing
        );
        h.client.unsubscribe("orders", ["DEMO-0001"]);
        return { sent: strip(sock.sent), seen: seen.map((m) => [m.type, m.seq ?? null]),
                 gaps: h.client.status().gaps };
        """,
    )

    assert result["sent"] == [
        {"op": "auth", "token": "T1"},
        {"op": "subscribe", "channel": "orders", "accounts": ["DEMO-0001"]},
        # The gap: the key is subscribed again for a fresh snapshot.
        {"op": "subscribe", "channel": "orders", "accounts": ["DEMO-0001"]},
        {"op": "unsubscribe", "channel": "orders", "accounts": ["DEMO-0001"]},
    ]
    assert result["seen"] == [["subscribed", None], ["snapshot", 4], ["update", 5]]
    assert result["gaps"] == 1


async def test_client_subscribes_many_keys_in_messages_of_at_most_64(page):
    result = await run(
        page,
        """
        const h = await f.harness(GatewayClient);
        h.client.start();
        await f.settle();
        const sock = f.FakeSocket.last();
        sock.open();
        h.client.subscribe("quotes", Array.from({ length: 130 }, (_, i) => `S${i}`));
        return sock.sent.filter((m) => m.op === "subscribe").map((m) => m.symbols.length);
        """,
    )

    assert result == [64, 64, 2]


async def test_client_repairs_a_gap_by_resubscribing_the_key_alone(page):
    result = await run(
        page,
        """
        const h = await f.harness(GatewayClient);
        h.client.subscribe("quotes", ["AAPL", "MSFT"]);
        h.client.start();
        await f.settle();
        const sock = f.FakeSocket.last();
        sock.open();
        sock.deliver(
          { type: "subscribed", channel: "quotes", keys: ["AAPL", "MSFT"], epoch: f.EPOCH, id: 2 },
          f.snapshot("quotes", "AAPL", 5),
          f.snapshot("quotes", "MSFT", 1),
        );
        sock.deliver(f.update("quotes", "AAPL", 6), f.update("quotes", "AAPL", 9, { seq_from: 7 }));
        sock.deliver(f.update("quotes", "AAPL", 11));  // 10 lost
        sock.deliver(f.update("quotes", "AAPL", 12), f.update("quotes", "MSFT", 2));
        sock.deliver(f.snapshot("quotes", "AAPL", 20), f.update("quotes", "AAPL", 21));
        return {
          aapl: h.seen.filter((m) => m.key === "AAPL").map((m) => [m.type, m.seq]),
          msft: h.seen.filter((m) => m.key === "MSFT").map((m) => [m.type, m.seq]),
          gaps: h.client.status().gaps,
          sent: strip(sock.sent.slice(2)),
        };
        """,
    )

    assert result["aapl"] == [
        ["snapshot", 5],
        ["update", 6],
        ["update", 9],
        ["snapshot", 20],
        ["update", 21],
    ]
    assert result["msft"] == [["snapshot", 1], ["update", 2]]
    assert result["gaps"] == 1
    assert result["sent"] == [{"op": "subscribe", "channel": "quotes", "symbols": ["AAPL"]}]


async def test_client_reconnects_and_recovers_every_key_from_its_epoch_and_last_seq(page):
    result = await run(
        page,
        """
        const h = await f.harness(GatewayClient);
        h.client.subscribe("quotes", ["AAPL", "MSFT"]);
        h.client.subscribe("portfolio", ["DEMO-0001"]);
        h.client.start();
        await f.settle();
        const first = f.FakeSocket.last();
        first.open();
        first.deliver(
          f.snapshot("quotes", "AAPL", 5),
          f.snapshot("quotes", "MSFT", 7),
          f.snapshot("portfolio", "DEMO-0001", 3),
        );
        first.drop(1006);
        const dropped = { state: h.client.status().state, delays: h.timers.pendingDelays() };
        await h.timers.advance(dropped.delays[0]);
        const second = f.FakeSocket.last();
        second.open();
        second.deliver(
          { type: "subscribed", channel: "quotes", keys: ["AAPL", "MSFT"], epoch: f.EPOCH,
            recovered: true, id: 5 },
          f.update("quotes", "AAPL", 6),
        );
        const status = h.client.status();
        return {
          dropped,
          sockets: f.FakeSocket.all.length,
          sent: strip(second.sent),
          asked: h.asked,
          recovered: status.recovered,
          reconnects: status.reconnects,
          last: [h.seen.at(-1).key, h.seen.at(-1).seq],
        };
        """,
    )

    # The first delay is drawn from [125, 250] ms; the fake random draws the middle.
    assert result["dropped"] == {"state": "reconnecting", "delays": [187.5]}
    assert result["sockets"] == 2
    assert result["sent"] == [
        {"op": "auth", "token": "T1"},
        {
            "op": "subscribe",
            "channel": "quotes",
            "symbols": ["AAPL", "MSFT"],
            "epoch": "e-1",
            "last_seq": {"AAPL": 5, "MSFT": 7},
        },
        {
            "op": "subscribe",
            "channel": "portfolio",
            "accounts": ["DEMO-0001"],
            "epoch": "e-1",
            "last_seq": 3,
        },
    ]
    assert result["asked"] == [{"fresh": False}, {"fresh": False}]
    assert (result["recovered"], result["reconnects"]) == (2, 1)
    assert result["last"] == ["AAPL", 6]


async def test_client_recovery_after_a_restart_takes_the_fresh_snapshots(page):
    result = await run(
        page,
        """
        const h = await f.harness(GatewayClient);
        h.client.subscribe("quotes", ["AAPL"]);
        h.client.start();
        await f.settle();
        const first = f.FakeSocket.last();
        first.open();
        first.deliver(f.snapshot("quotes", "AAPL", 900));
        first.drop(1001, "server shutting down");
        await h.timers.advance(h.timers.pendingDelays()[0]);
        const second = f.FakeSocket.last();
        second.open();
        second.deliver(
          { type: "subscribed", channel: "quotes", keys: ["AAPL"], epoch: "e-2", recovered: false,
            id: 4 },
          { ...f.snapshot("quotes", "AAPL", 3), epoch: "e-2", recovered: false },
          { ...f.update("quotes", "AAPL", 4), epoch: "e-2" },
        );
        return {
          seqs: h.seen.filter((m) => m.key === "AAPL").map((m) => [m.type, m.seq, m.epoch]),
          status: h.client.status(),
        };
        """,
    )

    assert result["seqs"] == [
        ["snapshot", 900, "e-1"],
        ["snapshot", 3, "e-2"],
        ["update", 4, "e-2"],
    ]
    assert result["status"]["gaps"] == 0
    assert result["status"]["epoch"] == "e-2"
    assert result["status"]["recovered"] == 0


async def test_client_backoff_grows_while_failing_and_restarts_after_a_stable_connection(page):
    result = await run(
        page,
        """
        const h = await f.harness(GatewayClient);
        h.client.start();
        await f.settle();
        const delays = [];
        for (let i = 0; i < 3; i += 1) {
          f.FakeSocket.last().drop(1006);  // refused before opening
          delays.push(h.timers.pendingDelays()[0]);
          await h.timers.advance(delays.at(-1));
        }
        const sock = f.FakeSocket.last();
        sock.open();
        for (let i = 0; i < 3; i += 1) {
          await h.timers.advance(2000);
          sock.deliver({ type: "heartbeat", ts_sent: 0 });
        }
        sock.drop(1011);
        delays.push(h.timers.pendingDelays()[0]);
        return delays;
        """,
    )

    assert result == [187.5, 375, 750, 187.5]


@pytest.mark.parametrize("code", [1008, 1009])
async def test_client_does_not_reconnect_after_a_close_that_retrying_cannot_fix(page, code):
    result = await run(
        page,
        f"""
        const h = await f.harness(GatewayClient);
        h.client.start();
        await f.settle();
        const sock = f.FakeSocket.last();
        sock.open();
        sock.drop({code}, "too_many_errors");
        await h.timers.advance(60000);
        return {{ state: h.client.status().state, sockets: f.FakeSocket.all.length }};
        """,
    )

    assert result == {"state": "failed", "sockets": 1}


async def test_client_reconnects_with_a_fresh_token_after_4001(page):
    result = await run(
        page,
        """
        const h = await f.harness(GatewayClient, { tokens: ["T1", "T2"] });
        h.client.start();
        await f.settle();
        f.FakeSocket.last().open();
        f.FakeSocket.last().drop(4001, "token_expired");
        await h.timers.advance(h.timers.pendingDelays()[0]);
        const sock = f.FakeSocket.last();
        sock.open();
        return { asked: h.asked, sent: strip(sock.sent) };
        """,
    )

    assert result["asked"] == [{"fresh": False}, {"fresh": True}]
    assert result["sent"] == [{"op": "auth", "token": "T2"}]


async def test_client_pings_and_survives_quiet_periods_that_heartbeats_fill(page):
    result = await run(
        page,
        """
        const h = await f.harness(GatewayClient, { heartbeatIntervalS: 5 });
        h.client.start();
        await f.settle();
        const sock = f.FakeSocket.last();
        sock.open();
        for (let i = 0; i < 15; i += 1) {
          await h.timers.advance(4000);
          sock.deliver({ type: "heartbeat", ts_sent: 0 });
        }
        const ping = sock.sent.find((m) => m.op === "ping");
        await h.timers.advance(40);
        sock.deliver({ type: "pong", id: sock.sent.filter((m) => m.op === "ping").at(-1).id,
                       ts_sent: 0 });
        return {
          state: h.client.status().state,
          closed: sock.closedWith,
          pings: sock.sent.filter((m) => m.op === "ping").length,
          firstPing: ping,
          rttMs: h.client.status().rttMs,
        };
        """,
    )

    # One ping a second after opening, then one every 10 s: at 1, 11, 21, 31, 41 and 51 s.
    assert result["state"] == "live"
    assert result["closed"] is None
    assert result["pings"] == 6
    assert result["firstPing"]["op"] == "ping"
    # The last ping went out at 51 s; its pong came at 60.04 s.
    assert result["rttMs"] == pytest.approx(9040)


async def test_client_drops_a_connection_silent_for_three_heartbeat_intervals(page):
    result = await run(
        page,
        """
        const h = await f.harness(GatewayClient, { heartbeatIntervalS: 5 });
        h.client.subscribe("quotes", ["AAPL"]);
        h.client.start();
        await f.settle();
        const sock = f.FakeSocket.last();
        sock.open();
        await h.timers.advance(15000);
        const at15 = { state: h.client.status().state, closed: sock.closedWith };
        await h.timers.advance(1000);
        return {
          at15,
          at16: { state: h.client.status().state, closed: sock.closedWith },
          delays: h.timers.pendingDelays(),
        };
        """,
    )

    assert result["at15"] == {"state": "live", "closed": None}
    assert result["at16"] == {
        "state": "reconnecting",
        "closed": {"code": 1000, "reason": "heartbeat timeout"},
    }
    assert result["delays"] == [187.5]


async def test_client_renews_its_token_with_auth_a_minute_before_expiry(page):
    result = await run(
        page,
        """
        const h = await f.harness(GatewayClient, { tokens: ["T1", "T2"] });
        h.client.start();
        await f.settle();
        const sock = f.FakeSocket.last();
        sock.open();
        const exp = h.timers.now() / 1000 + 300;
        sock.deliver({ type: "authenticated", sub: "dashboard-demo", accounts: ["DEMO-0001"],
                       scopes: ["read"], exp, id: 1, ts_sent: 0 });
        const auths = () => sock.sent.filter((m) => m.op === "auth").map((m) => m.token);
        for (let i = 0; i < 59; i += 1) {  // 236 s, heartbeats keeping the connection alive
          await h.timers.advance(4000);
          sock.deliver({ type: "heartbeat", ts_sent: 0 });
        }
        await h.timers.advance(3999);
        const before = auths();
        await h.timers.advance(1);
        return { before, after: auths(), asked: h.asked };
        """,
    )

    assert result["before"] == ["T1"]
    assert result["after"] == ["T1", "T2"]
    assert result["asked"] == [{"fresh": False}, {"fresh": True}]


async def test_client_resends_a_rate_limited_subscribe_after_the_given_delay(page):
    result = await run(
        page,
        """
        const h = await f.harness(GatewayClient);
        h.client.subscribe("quotes", ["AAPL"]);
        h.client.start();
        await f.settle();
        const sock = f.FakeSocket.last();
        sock.open();
        sock.deliver({ type: "error", code: "rate_limited", message: "slow down", retry: true,
                       retry_after_ms: 50, id: 2, ts_sent: 0 });
        await h.timers.advance(49);
        const early = strip(sock.sent.slice(2));
        await h.timers.advance(1);
        return { early, late: strip(sock.sent.slice(2)) };
        """,
    )

    assert result["early"] == []
    assert result["late"] == [{"op": "subscribe", "channel": "quotes", "symbols": ["AAPL"]}]


async def test_client_stops_wanting_keys_the_server_refused_or_revoked(page):
    result = await run(
        page,
        """
        const h = await f.harness(GatewayClient);
        h.client.subscribe("portfolio", ["DEMO-0002"]);
        h.client.subscribe("quotes", ["AAPL"]);
        h.client.start();
        await f.settle();
        const first = f.FakeSocket.last();
        first.open();  // ids: auth 1, portfolio 2, quotes 3
        first.deliver(
          { type: "error", code: "forbidden", message: "no", retry: false,
            accounts: ["DEMO-0002"], id: 2, ts_sent: 0 },
          f.snapshot("quotes", "AAPL", 1),
          { type: "unsubscribed", channel: "quotes", keys: ["AAPL"], ts_sent: 0 },
          f.update("quotes", "AAPL", 2),
        );
        first.drop(1006);
        await h.timers.advance(h.timers.pendingDelays()[0]);
        const second = f.FakeSocket.last();
        second.open();
        const refused = h.seen.find((m) => m.type === "error");
        return {
          refused: [refused.code, refused.keys],
          aapl: h.seen.filter((m) => m.key === "AAPL").map((m) => m.seq),
          sent: strip(second.sent),
        };
        """,
    )

    assert result["refused"] == ["forbidden", ["DEMO-0002"]]
    assert result["aapl"] == [1]
    assert result["sent"] == [{"op": "auth", "token": "T1"}]


async def test_client_sends_nothing_on_a_socket_the_server_is_closing(page):
    result = await run(
        page,
        """
        const h = await f.harness(GatewayClient);
        h.client.subscribe("quotes", ["AAPL"]);
        h.client.start();
        await f.settle();
        const sock = f.FakeSocket.last();
        sock.open();
        sock.deliver(f.update("quotes", "AAPL", 7));  // dropped: AAPL has no snapshot yet
        sock.closing();
        sock.deliver(
          f.snapshot("quotes", "AAPL", 8),
          f.update("quotes", "AAPL", 10),  // another gap, while closing
        );
        await h.timers.advance(2000);  // the first ping falls due
        return { sent: sock.sent.length, whileNotOpen: sock.sentWhileNotOpen,
                 gaps: h.client.status().gaps };
        """,
    )

    # auth and the subscribe went out while the socket was open; nothing after.
    assert result == {"sent": 2, "whileNotOpen": 0, "gaps": 1}


async def test_client_stopped_by_the_page_closes_normally_and_stays_closed(page):
    result = await run(
        page,
        """
        const h = await f.harness(GatewayClient);
        h.client.start();
        await f.settle();
        const sock = f.FakeSocket.last();
        sock.open();
        h.client.stop();
        sock.drop(1000);
        await h.timers.advance(60000);
        return { closed: sock.closedWith, state: h.client.status().state,
                 sockets: f.FakeSocket.all.length };
        """,
    )

    assert result == {
        "closed": {"code": 1000, "reason": "page closed"},
        "state": "stopped",
        "sockets": 1,
    }


async def test_risk_methods_are_named_with_their_parameters(page):
    result = await page.evaluate(
        """async () => {
          const { methodName } = await import("/static/portfolio.js");
          return [
            methodName({ method: "parametric", model: "ewma_sector_factor", lambda: 0.94 }),
            methodName({ method: "historical", window: 250 }),
            methodName({ method: "historical", window: 250, returns: "daily",
                         options: "full_revaluation" }),
            methodName({ method: "cornish_fisher" }),
          ];
        }"""
    )

    assert result == [
        "parametric (EWMA, sector factor, \u03bb 0.94)",
        "historical (window 250)",
        # A report that states its return basis and option treatment gets them named.
        "historical (window 250, full revaluation, daily returns)",
        # A method this page does not know is shown by its name alone.
        "cornish_fisher",
    ]
