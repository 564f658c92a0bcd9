"""The order path end to end: HTTP order API -> embedded ledger -> ``orders`` and ``portfolio``.

A real gateway with both listeners, the embedded SQLite ledger and a
scripted market (AAPL quoted 100.00 / 100.02), one account seeded with
100,000.00 USD. Every expected number is worked by hand in the test.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.settings import Settings
from ledger.admin import verify
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
OTHER = "ACC-2"
TRADER = ("orders:write", "orders:read", "read")


def order_settings(tmp_path: Path, **sections: Any) -> Settings:
    path = tmp_path / "positions.jsonl"
    accounts = [
        {"account": ACCOUNT, "base_currency": "USD", "version": 1, "cash": {"USD": 100_000.0}},
        {"account": OTHER, "base_currency": "USD", "version": 1, "cash": {"USD": 5_000.0}},
    ]
    path.write_bytes(b"\n".join(orjson.dumps(a) for a in accounts))
    return make_settings(
        tmp_path,
        portfolio={"positions_file": path},
        risk={"interval_ms": 60_000},
        **sections,
    )


def token(accounts: tuple[str, ...] = (ACCOUNT,), scopes: tuple[str, ...] = TRADER) -> str:
    return make_token(subject="oms", accounts=accounts, scopes=scopes)


def quote_aapl(gw: RunningGateway, source: ScriptedSource, bid: float, ask: float) -> None:
    aapl = gw.gateway.master.symbol_index["AAPL"]
    source.push(make_batch([aapl], bid=[bid], ask=[ask]))


async def submit(
    gw: RunningGateway, path: str, body: dict[str, object], *, key: str | None = None
) -> Any:
    return await request(
        "POST",
        gw.api_url + path,
        body=orjson.dumps(body),
        token=token(),
        headers={"Idempotency-Key": key or str(uuid.uuid4())},
    )


def buy(quantity: str, **extra: object) -> dict[str, object]:
    return {
        "account_id": ACCOUNT,
        "symbol": "AAPL",
        "side": "buy",
        "quantity": quantity,
        "type": "market",
        "time_in_force": "day",
    } | extra


async def subscribed(c: Client, channel: str, account: str = ACCOUNT) -> Message:
    await c.send({"op": "subscribe", "channel": channel, "account": account, "id": channel})
    return await c.until(
        lambda m: m["type"] in ("snapshot", "error") and m.get("channel", channel) == channel
    )


async def test_an_order_fills_on_the_orders_channel_and_moves_the_portfolio(tmp_path):
    source = ScriptedSource()
    async with running_gateway(order_settings(tmp_path), source=source) as gw:
        quote_aapl(gw, source, 100.00, 100.02)
        await poll_until(source.is_drained, what="the quote to be applied")
        async with client(gw.ws_url + f"?token={token()}") as c:
            await subscribed(c, "orders")
            await subscribed(c, "portfolio")

            answer = await submit(gw, "/v1/orders", buy("10"))
            fill = await c.until(
                lambda m: m.get("channel") == "orders" and m.get("event") == "fill"
            )
            update = await c.until(
                lambda m: (
                    m.get("channel") == "portfolio"
                    and any(p["symbol"] == "AAPL" for p in m.get("positions", []))
                )
            )

    assert answer.status == 202
    accepted = answer.json()
    assert (accepted["status"], accepted["quantity"], accepted["symbol"]) == (
        "accepted",
        "10",
        "AAPL",
    )
    # A market buy fills at the ask, 100.02, without slippage or fees.
    assert fill["order_id"] == accepted["order_id"]
    assert (fill["symbol"], fill["side"], fill["quantity"], fill["price"]) == (
        "AAPL",
        "buy",
        "10",
        "100.02",
    )
    assert isinstance(fill["ledger_seq"], int)
    assert isinstance(fill["seq"], int)
    row = next(p for p in update["positions"] if p["symbol"] == "AAPL")
    assert (row["quantity"], row["avg_cost"]) == (10.0, 100.02)
    # 100,000.00 - 10 x 100.02 = 98,999.80 of cash.
    assert update["totals"]["cash"] == pytest.approx(98_999.80)


async def test_a_retried_order_answers_the_first_bytes_with_the_replay_header(tmp_path):
    source = ScriptedSource()
    async with running_gateway(order_settings(tmp_path), source=source) as gw:
        quote_aapl(gw, source, 100.00, 100.02)
        await poll_until(source.is_drained, what="the quote")
        first = await submit(gw, "/v1/orders", buy("3"), key="retry-1")
        again = await submit(gw, "/v1/orders", buy("3"), key="retry-1")
        other = await submit(gw, "/v1/orders", buy("4"), key="retry-1")
        await poll_until(
            lambda: (
                gw.accounts.positions.has_account(ACCOUNT) and _quantity(gw, ACCOUNT, "AAPL") == 3.0
            ),
            what="the one fill",
        )

    assert (first.status, again.status) == (202, 202)
    assert again.body == first.body
    assert again.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    assert (other.status, other.json()["code"]) == (422, "idempotency_key_reused")


async def test_a_deposit_moves_the_portfolio_cash_and_the_ledger_balance(tmp_path):
    source = ScriptedSource()
    async with running_gateway(order_settings(tmp_path), source=source) as gw:
        async with client(gw.ws_url + f"?token={token()}") as c:
            await subscribed(c, "portfolio")
            payment = await submit(
                gw,
                "/v1/payments",
                {"account_id": ACCOUNT, "kind": "deposit", "amount": "2500.50", "currency": "USD"},
            )
            update = await c.until(
                lambda m: (
                    m.get("channel") == "portfolio" and "totals" in m and m["type"] == "update"
                )
            )
        balances = await request(
            "GET", gw.api_url + f"/v1/accounts/{ACCOUNT}/balances", token=token()
        )

    assert payment.status == 202
    assert payment.json()["payment_id"].startswith("pay_")
    assert update["totals"]["cash"] == pytest.approx(102_500.50)
    usd = next(b for b in balances.json()["balances"] if b["currency"] == "USD")
    assert (usd["balance"], usd["pending"], usd["available"]) == ("102500.50", "0.00", "102500.50")


async def test_a_withdrawal_whose_bank_reply_is_lost_settles_exactly_once(tmp_path):
    # Every reply of the simulated bank is lost: the transfer happens, the ledger
    # hears a timeout, and must ask the bank rather than send it again.
    settings = order_settings(
        tmp_path, ledger={"rail_lost_reply_rate": 1.0, "rail_settle_after_ms": 100.0}
    )
    async with running_gateway(settings, source=ScriptedSource()) as gw:
        answer = await submit(
            gw,
            "/v1/payments",
            {"account_id": ACCOUNT, "kind": "withdrawal", "amount": "1000.00", "currency": "USD"},
        )
        payment_id = answer.json()["payment_id"]

        async def settled() -> bool:
            got = await request("GET", gw.api_url + f"/v1/payments/{payment_id}", token=token())
            return bool(got.json()["status"] in ("settled", "rejected"))

        await poll_until(settled, what="the withdrawal to resolve", timeout_s=20)
        final = await request("GET", gw.api_url + f"/v1/payments/{payment_id}", token=token())
        await poll_until(lambda: _cash(gw, ACCOUNT) < 100_000.0, what="the portfolio's cash")
        ledger = gw.gateway.trading.ledger
        assert ledger is not None
        sends, payouts = ledger.bank.sends, ledger.bank.payouts()
        report = await verify(gw.gateway.trading.store)

    assert answer.status == 202
    assert final.json()["status"] == "settled"
    assert sends == 1  # sent once; the lost reply was resolved by asking
    assert list(payouts.values()) == [(100_000, "USD")]
    assert _cash(gw, ACCOUNT) == pytest.approx(99_000.0)
    assert report.is_clean, report.summary()


async def test_the_orders_channel_replays_what_a_reconnecting_client_missed(tmp_path):
    source = ScriptedSource()
    async with running_gateway(order_settings(tmp_path), source=source) as gw:
        quote_aapl(gw, source, 100.00, 100.02)
        await poll_until(source.is_drained, what="the quote")
        async with client(gw.ws_url + f"?token={token()}") as c:
            snapshot = await subscribed(c, "orders")
            epoch, last_seq = snapshot["epoch"], snapshot["seq"]
        await submit(gw, "/v1/orders", buy("1"))
        await submit(gw, "/v1/orders", buy("2"))
        await poll_until(lambda: _quantity(gw, ACCOUNT, "AAPL") == 3.0, what="both fills")
        async with client(gw.ws_url + f"?token={token()}") as c:
            await c.send(
                {
                    "op": "subscribe",
                    "channel": "orders",
                    "account": ACCOUNT,
                    "id": "r",
                    "epoch": epoch,
                    "last_seq": last_seq,
                }
            )
            ack = await c.until(lambda m: m.get("id") == "r")
            replayed = [await c.until(lambda m: m.get("channel") == "orders")]
            while sum(m["event"] == "fill" for m in replayed) < 2:
                replayed.append(await c.until(lambda m: m.get("channel") == "orders"))

    assert ack["recovered"] is True
    assert [m["seq"] for m in replayed] == list(range(last_seq + 1, last_seq + 1 + len(replayed)))
    fills = [m for m in replayed if m["event"] == "fill"]
    assert [f["quantity"] for f in fills] == ["1", "2"]
    # Each order's life, in order: accepted, reserved, its fill, filled.
    assert [(m["event"], m.get("status")) for m in replayed[:4]] == [
        ("order", "accepted"),
        ("order", "reserved"),
        ("fill", None),
        ("order", "filled"),
    ]


async def test_the_orders_channel_refuses_an_account_the_token_does_not_grant(tmp_path):
    settings = order_settings(tmp_path)
    async with (
        running_gateway(settings, source=ScriptedSource()) as gw,
        client(gw.ws_url + f"?token={token()}") as c,
    ):
        error = await subscribed(c, "orders", account=OTHER)

    assert (error["type"], error["code"]) == ("error", "forbidden")


async def test_the_account_routes_read_positions_and_refuse_other_accounts(tmp_path):
    source = ScriptedSource()
    async with running_gateway(order_settings(tmp_path), source=source) as gw:
        quote_aapl(gw, source, 100.00, 100.02)
        await poll_until(source.is_drained, what="the quote")
        await submit(gw, "/v1/orders", buy("5"))
        await poll_until(lambda: _quantity(gw, ACCOUNT, "AAPL") == 5.0, what="the fill")
        positions = await request(
            "GET", gw.api_url + f"/v1/accounts/{ACCOUNT}/positions", token=token()
        )
        forbidden = await request(
            "GET", gw.api_url + f"/v1/accounts/{OTHER}/positions", token=token()
        )
        unknown = await request(
            "GET",
            gw.api_url + "/v1/accounts/NOPE/balances",
            token=token(accounts=("*",)),
        )
        no_scope = await request(
            "GET",
            gw.api_url + f"/v1/accounts/{ACCOUNT}/balances",
            token=token(scopes=("read",)),
        )

    assert positions.status == 200
    (aapl,) = positions.json()["positions"]
    assert (aapl["symbol"], aapl["quantity"], aapl["avg_cost"]) == ("AAPL", "5", "100.02")
    assert (forbidden.status, forbidden.json()["code"]) == (403, "account_forbidden")
    assert (unknown.status, unknown.json()["code"]) == (404, "account_not_found")
    assert (no_scope.status, no_scope.json()["code"]) == (403, "insufficient_scope")
    assert forbidden.headers["content-type"] == "application/problem+json"


async def test_the_ledger_route_pages_entries_with_running_balances(tmp_path):
    source = ScriptedSource()
    async with running_gateway(order_settings(tmp_path), source=source) as gw:
        quote_aapl(gw, source, 100.00, 100.02)
        await poll_until(source.is_drained, what="the quote")
        await submit(gw, "/v1/orders", buy("10"))
        await poll_until(lambda: _quantity(gw, ACCOUNT, "AAPL") == 10.0, what="the fill")
        await submit(
            gw,
            "/v1/payments",
            {"account_id": ACCOUNT, "kind": "deposit", "amount": "2500.50", "currency": "USD"},
        )
        await poll_until(lambda: _cash(gw, ACCOUNT) > 100_000.0, what="the deposit")
        ledger_url = gw.api_url + f"/v1/accounts/{ACCOUNT}/ledger"
        whole = await request("GET", ledger_url, token=token())
        pages = [await request("GET", ledger_url + "?limit=1", token=token())]
        while pages[-1].json()["next_cursor"] is not None:
            cursor = pages[-1].json()["next_cursor"]
            pages.append(
                await request("GET", f"{ledger_url}?limit=1&cursor={cursor}", token=token())
            )
        aapl = await request("GET", ledger_url + "?asset=inst:AAPL", token=token())

    assert whole.status == 200
    body = whole.json()
    assert (body["account_id"], body["next_cursor"]) == (ACCOUNT, None)
    # Hand-worked, newest first: 100,000.00 seeded; 10 AAPL bought at 100.02 (1,000.20,
    # no fee); 2,500.50 deposited: 100,000.00 - 1,000.20 + 2,500.50 = 101,500.30.
    assert [(e["kind"], e["asset"], e["amount"], e["balance"]) for e in body["data"]] == [
        ("deposit", "cash:USD", "2500.50", "101500.30"),
        ("fill", "cash:USD", "-1000.20", "98999.80"),
        ("fill", "inst:AAPL", "10", "10"),
        ("deposit", "cash:USD", "100000.00", "100000.00"),
    ]
    seqs = [e["seq"] for e in body["data"]]
    assert seqs == sorted(seqs, reverse=True)
    assert body["data"][0]["posted_at"].endswith("Z")
    assert [p.json()["data"][0] for p in pages] == body["data"]
    assert [e["amount"] for e in aapl.json()["data"]] == ["10"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        # The query's form (tests/unit/gateway/trading/test_ledgerreads.py covers the rest);
        # a cursor is refused by the store, which parses it.
        ("?asset=inst:NOPE", "asset"),
        ("?cursor=abc", "cursor"),
    ],
)
async def test_the_ledger_route_refuses_a_bad_query(tmp_path, query, field):
    async with running_gateway(order_settings(tmp_path), source=ScriptedSource()) as gw:
        answer = await request(
            "GET", gw.api_url + f"/v1/accounts/{ACCOUNT}/ledger{query}", token=token()
        )

    assert (answer.status, answer.json()["code"]) == (400, "query_param_invalid")
    assert answer.json()["field"] == field


async def test_the_ledger_route_has_the_authorisation_of_the_balances(tmp_path):
    async with running_gateway(order_settings(tmp_path), source=ScriptedSource()) as gw:
        forbidden = await request("GET", gw.api_url + f"/v1/accounts/{OTHER}/ledger", token=token())
        unknown = await request(
            "GET", gw.api_url + "/v1/accounts/NOPE/ledger", token=token(accounts=("*",))
        )
        no_scope = await request(
            "GET", gw.api_url + f"/v1/accounts/{ACCOUNT}/ledger", token=token(scopes=("read",))
        )
        no_token = await request("GET", gw.api_url + f"/v1/accounts/{ACCOUNT}/ledger")

    assert (forbidden.status, forbidden.json()["code"]) == (403, "account_forbidden")
    assert (unknown.status, unknown.json()["code"]) == (404, "account_not_found")
    assert (no_scope.status, no_scope.json()["code"]) == (403, "insufficient_scope")
    assert (no_token.status, no_token.json()["code"]) == (401, "token_missing")


async def test_a_limit_order_rests_until_the_market_reaches_it(tmp_path):
    source = ScriptedSource()
    async with running_gateway(order_settings(tmp_path), source=source) as gw:
        quote_aapl(gw, source, 100.00, 100.02)
        await poll_until(source.is_drained, what="the quote")
        answer = await submit(
            gw, "/v1/orders", buy("4", type="limit", limit_price="99.50", time_in_force="gtc")
        )
        order_id = answer.json()["order_id"]

        async def status() -> str:
            got = await request("GET", gw.api_url + f"/v1/orders/{order_id}", token=token())
            return str(got.json()["status"])

        await poll_until(lambda: _awaits(status(), "reserved"), what="the order to rest")
        quote_aapl(gw, source, 99.40, 99.45)  # the ask crosses the limit
        await poll_until(lambda: _awaits(status(), "filled"), what="the fill")
        final = await request("GET", gw.api_url + f"/v1/orders/{order_id}", token=token())

    # A resting buy fills at the ask that reached it: 99.45, better than its limit.
    assert (final.json()["filled_quantity"], final.json()["average_price"]) == ("4", "99.45")
    assert _quantity(gw, ACCOUNT, "AAPL") == 4.0


async def test_the_api_listener_serves_no_websocket_and_documents_the_account_routes(tmp_path):
    async with running_gateway(order_settings(tmp_path), source=ScriptedSource()) as gw:
        upgrade = await request(
            "GET",
            gw.api_url + "/ws",
            headers={
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
        )
        document = await request("GET", gw.api_url + "/openapi.json")

    assert upgrade.status == 404
    paths = document.json()["paths"]
    assert "get" in paths["/v1/accounts/{account_id}/balances"]
    assert "get" in paths["/v1/accounts/{account_id}/positions"]
    assert "get" in paths["/v1/accounts/{account_id}/ledger"]
    assert "post" in paths["/v1/orders"]


async def _awaits(value: Any, expected: str) -> bool:
    return bool(await value == expected)


def _quantity(gw: RunningGateway, account: str, symbol: str) -> float:
    book = gw.accounts.positions
    row = book.position_row(book.account_ix(account), gw.gateway.master.symbol_index[symbol])
    return 0.0 if row is None else float(book.column("quantity")[row])


def _cash(gw: RunningGateway, account: str) -> float:
    book = gw.accounts.positions
    return float(book.cash[book.account_ix(account), book.currencies.index("USD")])


async def test_a_body_declared_over_the_limit_is_refused_before_it_is_read(tmp_path):
    settings = order_settings(tmp_path, api={"max_body_bytes": 1024})
    async with running_gateway(settings, source=ScriptedSource()) as gw:
        answer = await submit(gw, "/v1/orders", buy("1", client_order_id="x" * 2000))

    assert (answer.status, answer.json()["code"]) == (413, "body_too_large")
    assert answer.headers["content-type"] == "application/problem+json"
