"""The order panels' modules (blotter.js, ticket.js, orderapi.js) driven by scripted input.

No gateway: the blotter gets channel messages from a fake client and its
re-reads from a fake order API, both scripted by the test (fakes.js); the
ticket's requests go to a fake API or a fake ``fetch``. Expected values come
from docs/protocol.md ("orders") and docs/api.md, worked by hand.
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
    """Evaluate ``body`` with the order modules and the fakes in scope.

    ``done(b)`` waits for the blotter's re-reads (and the ones they queued)
    and paints it.
    """
    script = f"""async () => {{
        const {{ Blotter, BlotterState, isLater, normalOrder, rfc3339Ms }} =
          await import("/static/blotter.js");
        const {{ LastRequest, OrderTicket, PaymentForm, describe }} =
          await import("/static/ticket.js");
        const {{ ApiAnswer, OrderApi, newIdempotencyKey }} = await import("/static/orderapi.js");
        const f = await import("/fakes.js");
        const done = async (b) => {{
          while (b.running !== null) {{
            await b.running;
            await f.settle();
          }}
          b.paint();
        }};
        {body}
    }}"""
    return await page.evaluate(script)


# --- the blotter's model -------------------------------------------------------------


async def test_an_orders_state_only_moves_forward(page):
    result = await run(
        page,
        """
        const o = (status, filled) => ({ status, filled_quantity: filled });
        return [
          isLater(o("reserved", "0"), o("accepted", "0")),
          isLater(o("accepted", "0"), o("reserved", "0")),
          isLater(o("partially_filled", "6"), o("partially_filled", "4")),
          isLater(o("partially_filled", "4"), o("partially_filled", "6")),
          isLater(o("partially_filled", "4"), o("partially_filled", "4")),
          isLater(o("filled", "10"), o("partially_filled", "6")),
          isLater(o("cancelled", "6"), o("filled", "10")),
          isLater(o("partially_filled", "9"), o("cancelled", "6")),
        ];
        """,
    )

    assert result == [True, False, True, False, False, True, False, False]


async def test_orders_from_the_channel_and_the_api_read_alike(page):
    result = await run(
        page,
        """
        const ev = f.orderEvent(1, "ord_a", { order_type: "limit", limit_price: "99.5" });
        const api = f.apiOrder("ord_a", { type: "limit", limit_price: "99.5" });
        const keep = ({ order_id, type, limit_price, acceptedMs }) =>
          ({ order_id, type, limit_price, acceptedMs });
        return [keep(normalOrder(ev)), keep(normalOrder(api)),
                rfc3339Ms("2027-01-15T08:00:00.123456789Z")];
        """,
    )

    # 1.8e18 ns is 2027-01-15T08:00:00Z; the API's time adds 123.456789 ms (kept to the ms).
    assert result[0] == {
        "order_id": "ord_a",
        "type": "limit",
        "limit_price": "99.5",
        "acceptedMs": 1_800_000_000_000,
    }
    assert result[1]["type"] == "limit"
    assert result[1]["acceptedMs"] == 1_800_000_000_123
    assert result[2] == 1_800_000_000_123


# --- the blotter ---------------------------------------------------------------------


async def test_first_snapshot_shows_the_open_orders_and_one_page_of_history(page):
    result = await run(
        page,
        """
        const history = [f.apiOrder("ord_old1"), f.apiOrder("ord_old2")];
        const api = new f.FakeOrderApi({ orders: history });
        const h = f.blotterHarness(Blotter, api);
        h.blotter.show("DEMO-0001");
        h.client.emit("orders", f.snapshot("orders", "DEMO-0001", 7, {
          orders: [{ ...f.orderEvent(0, "ord_open", { status: "reserved", order_type: "limit",
                                                      limit_price: "90" }) }],
        }));
        await done(h.blotter);
        return { calls: api.calls, rows: h.rows(), seq: h.elements.root.dataset.seq,
                 count: h.elements.count.textContent };
        """,
    )

    assert result["calls"] == [["list", "DEMO-0001", None, 50]]
    orders = {row["orderId"]: row["status"] for row in result["rows"]["orders"]}
    assert orders == {"ord_open": "reserved", "ord_old1": "filled", "ord_old2": "filled"}
    assert result["rows"]["activity"] == []
    assert result["seq"] == "7"
    assert result["count"] == "1 open \u00b7 3 shown"


async def test_events_apply_in_order_and_a_repeated_event_is_dropped(page):
    result = await run(
        page,
        """
        const api = new f.FakeOrderApi();
        const h = f.blotterHarness(Blotter, api);
        h.blotter.show("DEMO-0001");
        h.client.emit("orders", f.snapshot("orders", "DEMO-0001", 0, { orders: [] }));
        await done(h.blotter);
        const fill = f.fillEvent(3, "ord_a", { quantity: "10", price: "100.02" });
        h.client.emit(
          "orders",
          f.orderEvent(1, "ord_a"),
          f.orderEvent(2, "ord_a", { status: "reserved", cause: "buying_power_reserved" }),
          fill,
          f.orderEvent(4, "ord_a", { status: "filled", filled_quantity: "10",
                                     average_price: "100.02", cause: "filled" }),
          { ...fill, seq: 5 },  // the same fact again (after a restart): same event_id
          f.orderEvent(6, "ord_other", { key: "DEMO-0002" }),
        );
        h.blotter.paint();
        return { rows: h.rows(), seq: h.elements.root.dataset.seq };
        """,
    )

    orders = result["rows"]["orders"]
    assert [(o["orderId"], o["status"]) for o in orders] == [("ord_a", "filled")]
    activity = result["rows"]["activity"]
    assert [(a["kind"], a["orderId"]) for a in activity] == [("fill", "ord_a")]
    assert "100.02" in activity[0]["text"]
    assert result["seq"] == "5"


async def test_a_later_snapshot_rereads_back_to_the_gap_and_marks_it(page):
    result = await run(
        page,
        """
        const T = "2027-01-15T08:00:";
        // Before the gap: ord_rest rests (accepted long before), ord_new is accepted.
        const old = Array.from({ length: 250 }, (_, i) =>
          f.apiOrder(`ord_h${i}`, { accepted_at: "2027-01-15T06:00:00.000000000Z" }));
        const api = new f.FakeOrderApi({ orders: old });
        const h = f.blotterHarness(Blotter, api);
        h.blotter.show("DEMO-0001");
        const resting = { status: "reserved", order_type: "limit", limit_price: "90",
                          time_in_force: "gtc", ts_accepted: 1_799_990_000_000_000_000 };
        h.client.emit("orders", f.snapshot("orders", "DEMO-0001", 3, {
          orders: [f.orderEvent(0, "ord_rest", resting)],
        }));
        await done(h.blotter);
        h.client.emit("orders", f.orderEvent(4, "ord_new"));  // last event seen: 08:00:00.004
        // The gap: ord_rest is cancelled, ord_new fills, ord_late is accepted and fills.
        // The API now answers (newest first) ord_late, ord_new, then the history.
        api.orders = [
          f.apiOrder("ord_late", { accepted_at: T + "05.000000000Z" }),
          f.apiOrder("ord_new", { accepted_at: T + "00.000000000Z" }),
          ...old,
        ];
        const rest = f.apiOrder("ord_rest", { status: "cancelled", type: "limit",
          limit_price: "90", time_in_force: "gtc", filled_quantity: "0", average_price: null,
          reason: "cancelled_by_client", accepted_at: "2027-01-15T05:13:20.000000000Z",
          updated_at: T + "03.000000000Z" });
        api.getOrder = async (id) => { api.calls.push(["order", id]); return rest; };
        h.client.emit("orders", f.snapshot("orders", "DEMO-0001", 12, {
          orders: [], ts_sent: 1_800_000_006_000_000_000 }));
        await done(h.blotter);
        return { calls: api.calls, rows: h.rows(), rereads: h.elements.root.dataset.rereads };
        """,
    )

    # The first read: one page of 50. The recovery read: pages of 200 until one
    # reaches back a minute before the last event seen (the first page does: its
    # oldest order is from 06:00), then the order it knew open and no page showed.
    assert result["calls"] == [
        ["list", "DEMO-0001", None, 50],
        ["list", "DEMO-0001", None, 200],
        ["order", "ord_rest"],
    ]
    orders = {o["orderId"]: o for o in result["rows"]["orders"]}
    assert orders["ord_rest"]["status"] == "cancelled"
    assert orders["ord_rest"]["reread"] == "true"
    assert orders["ord_new"]["status"] == "filled"
    assert orders["ord_new"]["reread"] == "true"
    assert orders["ord_late"]["status"] == "filled"
    assert "reread" not in orders["ord_late"]  # new to the page, not changed by the re-read
    gaps = [a for a in result["rows"]["activity"] if a["kind"] == "gap"]
    assert len(gaps) == 1
    assert gaps[0]["failed"] == "false"
    # 200 orders on the page and 1 by id. Moved on: ord_new and ord_rest; new: ord_late
    # (the 148 history orders from 06:00 the first page of 50 had not shown are neither).
    assert "201 orders re-read from GET /v1/orders, 2 moved on, 1 new;" in gaps[0]["text"]
    assert "not listed one by one" in gaps[0]["text"]
    assert result["rereads"] == "2"


async def test_a_reread_pages_on_until_it_reaches_back_before_the_gap(page):
    result = await run(
        page,
        """
        const api = new f.FakeOrderApi({ orders: [] });
        const h = f.blotterHarness(Blotter, api);
        h.blotter.show("DEMO-0001");
        h.client.emit("orders", f.snapshot("orders", "DEMO-0001", 0, { orders: [] }));
        await done(h.blotter);
        // 450 orders accepted during the gap (all after the last event seen), then history.
        api.orders = [
          ...Array.from({ length: 450 }, (_, i) =>
            f.apiOrder(`ord_g${i}`, { accepted_at: "2027-01-15T08:00:30.000000000Z" })),
          ...Array.from({ length: 300 }, (_, i) =>
            f.apiOrder(`ord_h${i}`, { accepted_at: "2027-01-15T07:00:00.000000000Z" })),
        ];
        h.client.emit("orders", f.snapshot("orders", "DEMO-0001", 900, { orders: [] }));
        await done(h.blotter);
        return api.calls;
        """,
    )

    # Orders 0-199 and 200-399 are all in the gap; 400-599 reaches 07:00: the last page.
    assert result == [
        ["list", "DEMO-0001", None, 50],
        ["list", "DEMO-0001", None, 200],
        ["list", "DEMO-0001", "200", 200],
        ["list", "DEMO-0001", "400", 200],
    ]


async def test_a_live_event_and_a_reread_answer_never_undo_each_other(page):
    result = await run(
        page,
        """
        const api = new f.FakeOrderApi({ orders: [] });
        const h = f.blotterHarness(Blotter, api);
        h.blotter.show("DEMO-0001");
        h.client.emit("orders", f.snapshot("orders", "DEMO-0001", 0, { orders: [] }));
        await done(h.blotter);
        h.client.emit("orders", f.orderEvent(1, "ord_x", { status: "reserved" }),
                                f.orderEvent(2, "ord_y", { status: "reserved" }));
        // A gap; the re-read answers ord_x older than an event that arrives before it
        // (partially filled 5), and ord_y newer than an event that arrives late.
        let release;
        const gate = new Promise((resolve) => { release = resolve; });
        api.listOrders = async () => {
          await gate;
          return { data: [
            f.apiOrder("ord_x", { status: "reserved", filled_quantity: "0" }),
            f.apiOrder("ord_y", { status: "filled", filled_quantity: "10" }),
          ], next_cursor: null };
        };
        h.client.emit("orders", f.snapshot("orders", "DEMO-0001", 10, { orders: [
          f.orderEvent(0, "ord_x", { status: "reserved" }),
          f.orderEvent(0, "ord_y", { status: "reserved" }),
        ] }));
        h.client.emit("orders", f.orderEvent(11, "ord_x",
          { status: "partially_filled", filled_quantity: "5" }));
        release();
        await done(h.blotter);
        h.client.emit("orders", f.orderEvent(12, "ord_y",
          { status: "partially_filled", filled_quantity: "4" }));
        h.blotter.paint();
        return h.rows().orders.map((o) => [o.orderId, o.status]);
        """,
    )

    assert sorted(result) == [["ord_x", "partially_filled"], ["ord_y", "filled"]]


async def test_a_failed_reread_is_retried_and_then_reported_not_skipped(page):
    result = await run(
        page,
        """
        const run = async (failures) => {
          const api = new f.FakeOrderApi({ orders: [f.apiOrder("ord_a")] });
          const h = f.blotterHarness(Blotter, api);
          h.blotter.show("DEMO-0001");
          h.client.emit("orders", f.snapshot("orders", "DEMO-0001", 0, { orders: [] }));
          await done(h.blotter);
          api.fail = failures;
          h.client.emit("orders", f.snapshot("orders", "DEMO-0001", 9, { orders: [] }));
          await f.settle();
          const delays = [];
          while (h.timers.queue.length > 0) {
            delays.push(h.timers.pendingDelays()[0]);
            await h.timers.advance(h.timers.pendingDelays()[0]);
            await f.settle();
          }
          await done(h.blotter);
          const gap = h.rows().activity.find((a) => a.kind === "gap");
          return { delays, lists: api.calls.filter((c) => c[0] === "list").length,
                   failed: gap.failed, text: gap.text,
                   notice: h.elements.notice.textContent };
        };
        return [await run(1), await run(9)];
        """,
    )

    once, always = result
    assert once["delays"] == [1000]
    assert once["lists"] == 3  # the first read, the failed one, the retry
    assert once["failed"] == "false"
    assert always["delays"] == [1000, 2000, 4000]
    assert always["lists"] == 1 + 4
    assert always["failed"] == "true"
    assert (
        "events missed; re-reading them failed: 503 state_unavailable: scripted" in (always["text"])
    )
    assert always["notice"].startswith("events missed; re-reading them failed")


async def test_without_the_order_api_a_gap_is_marked_not_skipped(page):
    result = await run(
        page,
        """
        const h = f.blotterHarness(Blotter, null);
        h.blotter.show("DEMO-0001");
        h.client.emit("orders", f.snapshot("orders", "DEMO-0001", 0, { orders: [] }));
        h.client.emit("orders", f.orderEvent(1, "ord_a"));
        h.client.emit("orders", f.snapshot("orders", "DEMO-0001", 9, { orders: [] }));
        await done(h.blotter);
        return h.rows().activity;
        """,
    )

    assert [(a["kind"], a["failed"]) for a in result] == [("gap", "true")]
    assert "cannot be reached from this page outside demo mode" in result[0]["text"]


async def test_unsettled_payments_are_reread_after_a_gap(page):
    result = await run(
        page,
        """
        const settled = { payment_id: "pay_1", status: "settled", account_id: "DEMO-0001",
          kind: "withdrawal", amount: "50.00", currency: "USD", reason: null };
        const api = new f.FakeOrderApi({ payments: { pay_1: settled } });
        const h = f.blotterHarness(Blotter, api);
        h.blotter.show("DEMO-0001");
        h.client.emit("orders", f.snapshot("orders", "DEMO-0001", 0, { orders: [] }));
        await done(h.blotter);
        h.client.emit("orders", f.update("orders", "DEMO-0001", 1, {
          event: "payment", event_id: "ev-p1", payment_id: "pay_1", transfer_id: "1",
          kind: "withdrawal", amount: "50", currency: "USD", status: "pending", reason: null,
          cause: "reserved", ts_event: 1_800_000_000_001_000_000 }));
        h.blotter.paint();
        const before = h.rows().activity.map((a) => a.status);
        h.client.emit("orders", f.snapshot("orders", "DEMO-0001", 5, { orders: [] }));
        await done(h.blotter);
        return { before, calls: api.calls, after: h.rows().activity };
        """,
    )

    assert result["before"] == ["pending"]
    assert result["calls"][-1] == ["payment", "pay_1"]
    payments = [a for a in result["after"] if a["kind"] == "payment"]
    assert [(p["paymentId"], p["status"]) for p in payments] == [("pay_1", "settled")]


async def test_switching_accounts_drops_the_old_accounts_reread(page):
    result = await run(
        page,
        """
        let release;
        const gate = new Promise((resolve) => { release = resolve; });
        const api = new f.FakeOrderApi({ orders: [f.apiOrder("ord_a")] });
        const list = api.listOrders.bind(api);
        api.listOrders = async (...args) => { await gate; return list(...args); };
        const h = f.blotterHarness(Blotter, api);
        h.blotter.show("DEMO-0001");
        h.client.emit("orders", f.snapshot("orders", "DEMO-0001", 0, { orders: [] }));
        h.blotter.show("DEMO-0002");
        release();
        await done(h.blotter);
        return { account: h.blotter.account, rows: h.rows().orders.length };
        """,
    )

    assert result == {"account": "DEMO-0002", "rows": 0}


# --- the ticket and its last request ------------------------------------------------------


async def test_a_fresh_key_is_a_random_version_4_uuid(page):
    result = await run(
        page,
        """
        const zeros = { getRandomValues: (a) => a.fill(0) };
        const ones = { getRandomValues: (a) => a.fill(255) };
        return [newIdempotencyKey(zeros), newIdempotencyKey(ones),
                newIdempotencyKey(), newIdempotencyKey()];
        """,
    )

    assert result[0] == "00000000-0000-4000-8000-000000000000"
    assert result[1] == "ffffffff-ffff-4fff-bfff-ffffffffffff"
    assert result[2] != result[3]


async def test_the_api_client_sends_the_key_the_token_and_the_exact_body(page):
    result = await run(
        page,
        """
        const sent = [];
        const fetch = async (url, init) => {
          sent.push({ url, method: init.method, headers: init.headers, body: init.body });
          return new Response('{"order_id":"ord_1","status":"accepted"}', {
            status: 202,
            headers: { "content-type": "application/json", "idempotent-replayed": "true",
                       location: "/v1/orders/ord_1" },
          });
        };
        const api = new OrderApi(async () => "T1", { fetch });
        const body = '{"account_id":"DEMO-0001", "symbol":"AAPL"}';
        const answer = await api.send({ method: "POST", path: "/v1/orders", body, key: "k-1" });
        return { sent, status: answer.status, replayed: answer.replayed,
                 location: answer.location, problem: answer.problem, text: answer.text };
        """,
    )

    assert result["sent"] == [
        {
            "url": "/dashboard/api/v1/orders",
            "method": "POST",
            "headers": {
                "Accept": "application/json",
                "Authorization": "Bearer T1",
                "Content-Type": "application/json",
                "Idempotency-Key": "k-1",
            },
            "body": '{"account_id":"DEMO-0001", "symbol":"AAPL"}',
        }
    ]
    assert (result["status"], result["replayed"], result["location"]) == (
        202,
        True,
        "/v1/orders/ord_1",
    )
    assert result["problem"] is None
    assert result["text"] == '{"order_id":"ord_1","status":"accepted"}'


async def test_a_problem_answer_reads_as_its_code_and_detail(page):
    result = await run(
        page,
        """
        const headers = new Headers({ "content-type": "application/problem+json" });
        const body = JSON.stringify({ type: "urn:tickgate:problem:price_off_tick",
          title: "The price is not on the tick grid", status: 422, code: "price_off_tick",
          detail: "limit_price must be a multiple of 0.01, was 1.005", field: "/limit_price" });
        const problem = new ApiAnswer(422, headers, body);
        const text = new Headers({ "content-type": "text/plain" });
        const plain = new ApiAnswer(502, text, "bad gateway");
        return [describe(problem), problem.problem.code, describe(plain)];
        """,
    )

    assert result == [
        "422 price_off_tick: limit_price must be a multiple of 0.01, was 1.005",
        "price_off_tick",
        "502: bad gateway",
    ]


async def test_send_again_resends_the_same_key_and_body_and_shows_the_replay(page):
    result = await run(
        page,
        """
        const root = document.createElement("div");
        const parts = Object.fromEntries(["what", "key", "answer", "replay"].map((name) =>
          [name, root.appendChild(document.createElement("p"))]));
        const again = root.appendChild(document.createElement("button"));
        const json = new Headers({ "content-type": "application/json" });
        const replayed = new Headers({ "content-type": "application/json",
                                       "idempotent-replayed": "true" });
        const first = '{"order_id":"ord_1","status":"accepted"}';
        const answers = [new ApiAnswer(202, json, first), new ApiAnswer(202, replayed, first),
                         new ApiAnswer(202, json, '{"order_id":"ord_2","status":"accepted"}')];
        const requests = [];
        const api = { send: async (request) => { requests.push({ ...request });
                                                  return answers.shift(); } };
        let n = 0;
        const last = new LastRequest({ root, ...parts, again }, api,
                                     { newKey: () => `key-${++n}` });
        const disabledBefore = again.disabled;
        await last.send({ label: "buy 10 AAPL market", path: "/v1/orders", body: "B1" });
        const afterFirst = { ...root.dataset, answer: parts.answer.textContent };
        await last.again();
        const afterAgain = { ...root.dataset, replay: parts.replay.textContent };
        await last.send({ label: "buy 10 AAPL market", path: "/v1/orders", body: "B1" });
        return { disabledBefore, requests, afterFirst, afterAgain,
                 afterNew: { ...root.dataset }, key: parts.key.textContent };
        """,
    )

    assert result["disabledBefore"] is True
    assert [(r["key"], r["body"], r["method"], r["path"]) for r in result["requests"]] == [
        ("key-1", "B1", "POST", "/v1/orders"),
        ("key-1", "B1", "POST", "/v1/orders"),
        ("key-2", "B1", "POST", "/v1/orders"),
    ]
    assert result["afterFirst"]["status"] == "202"
    assert result["afterFirst"]["answer"] == "202 accepted ord_1"
    assert result["afterAgain"]["replayed"] == "true"
    assert result["afterAgain"]["identical"] == "true"
    assert result["afterAgain"]["replay"] == (
        "send again #1: Idempotent-Replayed: true, the same 202 and body, byte for byte (40 bytes)"
    )
    # A new order is a new key, and its replay state starts afresh.
    assert (result["afterNew"]["replayed"], result["afterNew"]["sends"]) == ("", "1")
    assert result["key"] == "Idempotency-Key key-2"


async def test_a_refusal_that_was_not_stored_is_not_replayed_and_says_why(page):
    result = await run(
        page,
        """
        const root = document.createElement("div");
        const parts = Object.fromEntries(["what", "key", "answer", "replay"].map((name) =>
          [name, root.appendChild(document.createElement("p"))]));
        const again = root.appendChild(document.createElement("button"));
        const problem = JSON.stringify({ status: 422, code: "price_off_tick", detail: "off" });
        const headers = new Headers({ "content-type": "application/problem+json" });
        const api = { send: async () => new ApiAnswer(422, headers, problem) };
        const last = new LastRequest({ root, ...parts, again }, api);
        await last.send({ label: "x", path: "/v1/orders", body: "B" });
        await last.again();
        return { ...root.dataset, answer: parts.answer.textContent,
                 replay: parts.replay.textContent };
        """,
    )

    assert (result["status"], result["code"]) == ("422", "price_off_tick")
    assert result["answer"] == "422 price_off_tick: off"
    assert (result["replayed"], result["identical"]) == ("false", "true")
    assert result["replay"].startswith("send again #1: not replayed, the same 422 and body")
    assert result["replay"].endswith(
        "(a refusal before execution is not stored: the key was free again)"
    )


async def test_the_ticket_builds_the_apis_order_from_its_fields(page):
    result = await run(
        page,
        """
        const form = document.createElement("form");
        form.innerHTML = `
          <input name="symbol" value=" aapl "><datalist></datalist>
          <input type="radio" name="side" value="buy">
          <input type="radio" name="side" value="sell" checked>
          <input name="quantity" value=" 25 ">
          <select name="type"><option value="market">market</option>
                              <option value="limit">limit</option></select>
          <input name="limit" value="187.25">
          <select name="tif"><option value="day">day</option>
                             <option value="gtc">gtc</option></select>
          <span></span>`;
        const q = (s) => form.querySelector(s);
        const sent = [];
        const last = { send: async (request) => sent.push(request) };
        const ticket = new OrderTicket(
          { form, symbol: q("[name=symbol]"), symbols: q("datalist"),
            quantity: q("[name=quantity]"), type: q("[name=type]"), limit: q("[name=limit]"),
            tif: q("[name=tif]"), hint: q("span") },
          last,
          { instruments: [{ symbol: "AAPL", currency: "USD", lot_size: "1", tick_size: "0.01" }],
            account: () => "DEMO-0001" });
        const limitDisabled = q("[name=limit]").disabled;
        ticket.submit();
        q("[name=type]").value = "limit";
        q("[name=type]").dispatchEvent(new Event("change"));
        q("[name=tif]").value = "gtc";
        ticket.submit();
        return { limitDisabled, limitNow: q("[name=limit]").disabled,
                 sent: sent.map((r) => ({ ...r, body: JSON.parse(r.body) })),
                 texts: sent.map((r) => r.body) };
        """,
    )

    assert result["limitDisabled"] is True
    assert result["limitNow"] is False
    market, limit = result["sent"]
    assert market["path"] == "/v1/orders"
    assert market["body"] == {
        "account_id": "DEMO-0001",
        "symbol": "AAPL",
        "side": "sell",
        "quantity": "25",
        "type": "market",
        "time_in_force": "day",
    }
    assert limit["body"] == market["body"] | {
        "type": "limit",
        "limit_price": "187.25",
        "time_in_force": "gtc",
    }
    assert market["label"] == "sell 25 AAPL market"


async def test_the_payments_form_builds_the_apis_payment(page):
    result = await run(
        page,
        """
        const form = document.createElement("form");
        form.innerHTML = `
          <select name="kind"><option value="deposit">deposit</option>
                              <option value="withdrawal" selected>withdrawal</option></select>
          <input name="amount" value="125.50"><input name="currency" value="">
          <input name="reference" value=" rent ">`;
        const q = (s) => form.querySelector(s);
        const sent = [];
        const last = { send: async (request) => sent.push(request) };
        const payments = new PaymentForm(
          { form, kind: q("[name=kind]"), amount: q("[name=amount]"),
            currency: q("[name=currency]"), reference: q("[name=reference]") },
          last, { account: () => "DEMO-0001", currency: () => "EUR" });
        payments.submit();
        return sent.map((r) => ({ path: r.path, label: r.label, body: JSON.parse(r.body) }));
        """,
    )

    assert result == [
        {
            "path": "/v1/payments",
            "label": "withdrawal 125.50 EUR",
            "body": {
                "account_id": "DEMO-0001",
                "kind": "withdrawal",
                "amount": "125.50",
                "currency": "EUR",
                "reference": "rent",
            },
        }
    ]
