"""The dashboard's order panels in Chromium against a live gateway: ticket, replay, blotter.

A real gateway with its simulator, the embedded ledger and the seeded demo
accounts; the page trades ``DEMO-0001`` through ``/dashboard/api``. The
tests wait, with deadlines, for what a person would see: a fill in the
blotter and the position that moved, the replay of a resent order, a
refusal's problem code, and a blotter that catches up after the server
drops the connection while orders change: by the channel's recovery when
the server still holds the missed events, else by re-reading the order API.
Every test checks the console: it may hold only the errors Chromium logs
itself for the refusals the test provokes (422 answers, 503 upgrades).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from decimal import ROUND_DOWN, Decimal
from typing import Any

import orjson
import pytest
from playwright.async_api import Page

from gateway.ws import closecodes
from tests.browser.live import OpenPage, dashboard_settings, open_dashboard, wait_live
from tests.harness import Client, RunningGateway, client, request, running_gateway

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

ACCOUNT = "DEMO-0001"
REFUSED = re.compile(
    r"console: Failed to load resource: the server responded with a status of 422 "
)
# Chromium logs each reconnect the gateway refuses while the test keeps the page out.
REFUSED_UPGRADE = re.compile(r"console: WebSocket connection to 'ws://[^']+' failed: .* 503$")


async def ready(page: Page) -> None:
    """The page is live, its blotter has read the account's recent orders, AAPL is priced."""
    await wait_live(page)
    await page.wait_for_selector(f"#blotter[data-account='{ACCOUNT}'][data-rereads='1']")
    await page.wait_for_selector("#portfolio #positions tbody tr")
    await page.wait_for_selector("#quotes tr[data-symbol='AAPL'] [data-field=ask][data-value]")


async def position(page: Page, symbol: str) -> int:
    """The quantity the portfolio panel shows for ``symbol`` (0 without a row)."""
    result: int = await page.evaluate(
        """(symbol) => {
             const row = [...document.querySelectorAll("#positions tbody tr")]
               .find((tr) => tr.cells[0].textContent === symbol);
             return row === undefined ? 0 : Number(
               row.querySelector("[data-field=quantity]").textContent.replace(/,/g, ""));
           }""",
        symbol,
    )
    return result


async def send_order(page: Page, **fields: str) -> None:
    if "quantity" in fields:
        await page.fill("#order-quantity", fields["quantity"])
    if "type" in fields:
        await page.select_option("#order-type", fields["type"])
    if "limit_price" in fields:
        await page.fill("#order-limit", fields["limit_price"])
    await page.click("#order-send")


async def last_answer(page: Page, sends: int) -> dict[str, str]:
    """The last request's data attributes and texts once it has had ``sends`` answers."""
    await page.wait_for_selector(f"#last-request[data-sends='{sends}'][data-busy='false']")
    result: dict[str, str] = await page.evaluate(
        """() => {
             const root = document.querySelector("#last-request");
             const text = (part) => root.querySelector(`[data-part=${part}]`).textContent;
             return { ...root.dataset, answer: text("answer"), replay: text("replay"),
                      key: text("key") };
           }"""
    )
    return result


async def demo_token(gw: RunningGateway) -> str:
    answer = await request(
        "POST", f"{gw.url}/dashboard/token", body=orjson.dumps({"account": ACCOUNT})
    )
    token = answer.json()["token"]
    assert isinstance(token, str)
    return token


async def api(gw: RunningGateway, method: str, path: str, body: object = None) -> Any:
    """Call the order API's own listener as another client of the account would."""
    token = await demo_token(gw)
    answer = await request(
        method,
        gw.api_url + path,
        body=None if body is None else orjson.dumps(body),
        token=token,
        headers={"Idempotency-Key": str(uuid.uuid4())} if method == "POST" else {},
    )
    assert answer.status < 300, answer.body
    return answer.json()


@contextlib.asynccontextmanager
async def page_cut_off(opened: OpenPage, gw: RunningGateway) -> AsyncIterator[Client]:
    """The server closes the page's connections (1001) and refuses new ones (503)
    for the block, so the page misses what happens in it. The block gets a client
    of its own, connected before, that watches the account's ``orders`` channel:
    an event it has seen is in the channel's history."""
    token = await demo_token(gw)
    pages = list(gw.gateway.hub.connections)
    async with client(f"{gw.ws_url}?token={token}") as watcher:
        await watcher.request({"op": "subscribe", "channel": "orders", "account": ACCOUNT, "id": 1})
        gw.gateway.hub.is_accepting = False
        for connection in pages:
            connection.close(closecodes.GOING_AWAY, "server closing")
        await opened.page.wait_for_selector("#badge[data-state='reconnecting']")
        try:
            yield watcher
        finally:
            gw.gateway.hub.is_accepting = True


async def published(watcher: Client, order_id: str, status: str) -> None:
    """Wait until the channel has published the order's ``status``."""
    await watcher.until(
        lambda m: m.get("event") == "order" and m["order_id"] == order_id and m["status"] == status
    )


def market_buy(quantity: str) -> dict[str, str]:
    return {
        "account_id": ACCOUNT,
        "symbol": "AAPL",
        "side": "buy",
        "quantity": quantity,
        "type": "market",
        "time_in_force": "day",
    }


async def test_an_order_from_the_ticket_fills_in_the_blotter_moves_the_position_and_replays(
    tmp_path,
):
    async with (
        running_gateway(dashboard_settings(tmp_path)) as gw,
        open_dashboard(gw, tmp_path) as opened,
    ):
        page = opened.page
        await ready(page)
        before = await position(page, "AAPL")
        await send_order(page, quantity="10")
        first = await last_answer(page, 1)
        order_id = first["answer"].split()[-1]
        await page.wait_for_selector(
            f"#blotter-orders tr[data-order-id='{order_id}'][data-status='filled']"
        )
        await page.wait_for_selector(
            f"#blotter-activity tr[data-kind='fill'][data-order-id='{order_id}']"
        )
        await page.wait_for_function(
            """([symbol, expected]) => [...document.querySelectorAll("#positions tbody tr")]
                 .some((tr) => tr.cells[0].textContent === symbol && Number(
                   tr.querySelector("[data-field=quantity]").textContent.replace(/,/g, ""))
                   === expected)""",
            arg=["AAPL", before + 10],
        )
        await page.click("#send-again")
        again = await last_answer(page, 2)
        listed = await api(gw, "GET", f"/v1/orders?account_id={ACCOUNT}")
        fill_text = await page.text_content(
            f"#blotter-activity tr[data-kind='fill'][data-order-id='{order_id}']"
        )
        await page.screenshot(path=str(tmp_path / "dashboard-orders.png"))

    assert first["status"] == "202"
    assert re.fullmatch(r"202 accepted ord_[0-9a-f-]{36}", first["answer"])
    assert re.fullmatch(
        r"Idempotency-Key [0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-.{4}-.{12}", first["key"]
    )
    assert (again["replayed"], again["identical"]) == ("true", "true")
    assert again["replay"].startswith(
        "send again #1: Idempotent-Replayed: true, the same 202 and body, byte for byte"
    )
    assert again["key"] == first["key"]
    # One order for the key, however often it was sent: the fresh ledger holds it alone.
    assert [o["order_id"] for o in listed["data"]] == [order_id]
    assert (listed["data"][0]["status"], listed["data"][0]["filled_quantity"]) == ("filled", "10")
    assert fill_text is not None
    assert "AAPLbuy10" in fill_text.replace(" ", "")
    assert (tmp_path / "dashboard-orders.png").stat().st_size > 10_000
    assert opened.errors.messages == []


async def test_a_refused_order_shows_its_problem_code_and_a_stored_refusal_replays(tmp_path):
    async with (
        running_gateway(dashboard_settings(tmp_path)) as gw,
        open_dashboard(gw, tmp_path) as opened,
    ):
        page = opened.page
        await ready(page)
        # Off the 0.01 tick grid: refused before execution, so nothing is stored.
        await send_order(page, quantity="5", type="limit", limit_price="100.005")
        off_tick = await last_answer(page, 1)
        await page.click("#send-again")
        off_tick_again = await last_answer(page, 2)
        # 100,000 AAPL at about 270 USD is far over the 1,000,000 USD notional limit:
        # a business refusal after execution started, stored and replayed.
        await send_order(page, quantity="100000", type="market")
        too_big = await last_answer(page, 1)
        await page.click("#send-again")
        too_big_again = await last_answer(page, 2)
        listed = await api(gw, "GET", f"/v1/orders?account_id={ACCOUNT}")

    assert (off_tick["status"], off_tick["code"]) == ("422", "price_off_tick")
    assert off_tick["answer"] == (
        "422 price_off_tick: limit_price must be a multiple of the tick size 0.01 of AAPL, "
        "was 100.005"
    )
    assert (off_tick_again["replayed"], off_tick_again["identical"]) == ("false", "true")
    assert (too_big["status"], too_big["code"]) == ("422", "notional_limit_exceeded")
    assert too_big["answer"].startswith("422 notional_limit_exceeded: ")
    assert (too_big_again["replayed"], too_big_again["identical"]) == ("true", "true")
    assert listed["data"] == []
    assert len(opened.errors.messages) == 4
    assert all(REFUSED.match(m) for m in opened.errors.messages)


async def test_a_deposit_from_the_payments_form_settles_and_moves_the_cash(tmp_path):
    async with (
        running_gateway(dashboard_settings(tmp_path)) as gw,
        open_dashboard(gw, tmp_path) as opened,
    ):
        page = opened.page
        await ready(page)
        balances = f"/v1/accounts/{ACCOUNT}/balances"
        before = (await api(gw, "GET", balances))["balances"]
        await page.wait_for_selector("dd[data-total='cash'][data-value]")
        cash = await page.get_attribute("dd[data-total='cash']", "data-value")
        assert cash is not None
        await page.fill("#payment-amount", "1234.56")
        await page.click("#payment-send")
        answer = await last_answer(page, 1)
        payment_id = answer["answer"].split()[-1]
        await page.wait_for_selector(
            f"#blotter-activity tr[data-payment-id='{payment_id}'][data-status='settled']"
        )
        await page.wait_for_function(
            """(expected) => Math.abs(Number(document.querySelector(
                 "dd[data-total='cash']").dataset.value) - expected) < 0.005""",
            arg=float(cash) + 1234.56,
        )
        after = (await api(gw, "GET", balances))["balances"]

    # The account holds USD alone, so the page's cash total is its USD cash.
    assert [b["currency"] for b in before] == ["USD"]
    assert Decimal(after[0]["balance"]) - Decimal(before[0]["balance"]) == Decimal("1234.56")
    assert answer["status"] == "202"
    assert answer["answer"].startswith("202 accepted pay_")
    assert opened.errors.messages == []


async def test_the_blotter_replays_what_it_missed_after_the_server_drops_the_connection(
    tmp_path,
):
    async with (
        running_gateway(dashboard_settings(tmp_path)) as gw,
        open_dashboard(gw, tmp_path) as opened,
    ):
        page = opened.page
        await ready(page)
        async with page_cut_off(opened, gw) as watcher:
            # Another client of the account trades while the page cannot hear.
            order_id = (await api(gw, "POST", "/v1/orders", market_buy("3")))["order_id"]
            await published(watcher, order_id, "filled")
        await page.wait_for_selector(
            f"#blotter-orders tr[data-order-id='{order_id}'][data-status='filled']"
        )
        await page.wait_for_selector(
            f"#blotter-activity tr[data-kind='fill'][data-order-id='{order_id}']"
        )
        blotter = await page.evaluate("() => ({ ...document.querySelector('#blotter').dataset })")
        gaps = await page.locator("#blotter-activity tr[data-kind='gap']").count()
        status = await page.evaluate("() => tickgate.client.status()")

    # The server still held the missed events: they were replayed, nothing re-read.
    assert blotter["recovered"] == "1"
    assert blotter["rereads"] == "1"
    assert gaps == 0
    assert status["gaps"] == 0
    assert all(REFUSED_UPGRADE.match(m) for m in opened.errors.messages)


async def test_the_blotter_rereads_what_the_server_could_not_replay(tmp_path):
    # The channel keeps one event per account: a reconnect that missed more gets a snapshot.
    settings = dashboard_settings(tmp_path, orders={"channel_history": 1})
    async with running_gateway(settings) as gw, open_dashboard(gw, tmp_path) as opened:
        page = opened.page
        await ready(page)
        ask = await page.get_attribute(
            "#quotes tr[data-symbol='AAPL'] [data-field=ask]", "data-value"
        )
        assert ask is not None
        # A buy limit 5% under the market rests (within the 10% price band).
        limit = (Decimal(ask) * Decimal("0.95")).quantize(Decimal("0.01"), ROUND_DOWN)
        resting = await api(
            gw,
            "POST",
            "/v1/orders",
            market_buy("2") | {"type": "limit", "limit_price": str(limit), "time_in_force": "gtc"},
        )
        resting_id = resting["order_id"]
        await page.wait_for_selector(
            f"#blotter-orders tr[data-order-id='{resting_id}'][data-status='reserved']"
        )
        async with page_cut_off(opened, gw) as watcher:
            await api(gw, "DELETE", f"/v1/orders/{resting_id}")
            await published(watcher, resting_id, "cancelled")
            filled_id = (await api(gw, "POST", "/v1/orders", market_buy("4")))["order_id"]
            await published(watcher, filled_id, "filled")
        await page.wait_for_selector("#blotter[data-rereads='2']")
        rows = await page.evaluate(
            """() => Object.fromEntries([...document.querySelectorAll("#blotter-orders tbody tr")]
                 .map((tr) => [tr.dataset.orderId, { ...tr.dataset }]))"""
        )
        activity = await page.evaluate(
            """() => [...document.querySelectorAll("#blotter-activity tbody tr")]
                 .map((tr) => ({ ...tr.dataset, text: tr.textContent }))"""
        )

    assert rows[resting_id]["status"] == "cancelled"
    assert rows[resting_id]["reread"] == "true"
    assert rows[filled_id]["status"] == "filled"
    gaps = [a for a in activity if a["kind"] == "gap"]
    assert len(gaps) == 1
    assert gaps[0]["failed"] == "false"
    # Both orders of the fresh ledger were re-read: the resting one moved on, the market one is new.
    assert "2 orders re-read from GET /v1/orders, 1 moved on, 1 new" in gaps[0]["text"]
    # Its fill came in the gap: counted in the order's filled quantity, not listed.
    assert [a for a in activity if a["kind"] == "fill"] == []
    assert all(REFUSED_UPGRADE.match(m) for m in opened.errors.messages)
