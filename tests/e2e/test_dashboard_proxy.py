"""The dashboard's route to the order API (``/dashboard/api/{path}``) over HTTP.

A real gateway in demo mode with its seeded demo accounts and a scripted
market (AAPL 100.00 / 100.02). Every refusal the route adds has a test, and
the answers it forwards are compared with the order API listener's own,
byte for byte.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.settings import Settings
from tests.builders import make_batch, make_settings, make_token
from tests.harness import (
    HttpAnswer,
    RunningGateway,
    ScriptedSource,
    poll_until,
    request,
    running_gateway,
)

pytestmark = pytest.mark.e2e

ACCOUNT = "DEMO-0001"
DEMO_SUBJECT = "dashboard-demo"


def proxy_settings(tmp_path: Path, **sections: Any) -> Settings:
    return make_settings(tmp_path, risk={"interval_ms": 60_000}, **sections)


async def demo_token(gw: RunningGateway, account: str = ACCOUNT) -> str:
    answer = await request(
        "POST", f"{gw.url}/dashboard/token", body=orjson.dumps({"account": account})
    )
    assert answer.status == 200
    token = answer.json()["token"]
    assert isinstance(token, str)
    return token


def buy(quantity: str = "5", account: str = ACCOUNT, **extra: object) -> bytes:
    body = {
        "account_id": account,
        "symbol": "AAPL",
        "side": "buy",
        "quantity": quantity,
        "type": "market",
        "time_in_force": "day",
    }
    return orjson.dumps(body | extra)


async def via_proxy(
    gw: RunningGateway,
    method: str,
    path: str,
    *,
    token: str | None,
    body: bytes | None = None,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> HttpAnswer:
    sent = dict(headers or {})
    if key is not None:
        sent["Idempotency-Key"] = key
    return await request(
        method, f"{gw.url}/dashboard/api{path}", body=body, token=token, headers=sent
    )


async def via_api(
    gw: RunningGateway,
    method: str,
    path: str,
    *,
    token: str,
    body: bytes | None = None,
    key: str | None = None,
) -> HttpAnswer:
    headers = {} if key is None else {"Idempotency-Key": key}
    return await request(method, gw.api_url + path, body=body, token=token, headers=headers)


async def quoted(gw: RunningGateway, source: ScriptedSource) -> None:
    aapl = gw.gateway.master.symbol_index["AAPL"]
    source.push(make_batch([aapl], bid=[100.00], ask=[100.02]))
    await poll_until(source.is_drained, what="the quote to be applied")


def problem(answer: HttpAnswer) -> tuple[int, str]:
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["status"] == answer.status
    assert body["type"] == f"urn:tickgate:problem:{body['code']}"
    return answer.status, body["code"]


# --- what it forwards ------------------------------------------------------------------


async def test_an_order_through_the_route_is_accepted_and_replayed_byte_for_byte(tmp_path):
    source = ScriptedSource()
    async with running_gateway(proxy_settings(tmp_path), source=source) as gw:
        await quoted(gw, source)
        token = await demo_token(gw)
        first = await via_proxy(gw, "POST", "/v1/orders", token=token, body=buy(), key="k-1")
        again = await via_proxy(gw, "POST", "/v1/orders", token=token, body=buy(), key="k-1")
        # The listener shares the idempotency records: the same key and body replay there.
        listener = await via_api(gw, "POST", "/v1/orders", token=token, body=buy(), key="k-1")
        reused = await via_proxy(gw, "POST", "/v1/orders", token=token, body=buy("6"), key="k-1")

    assert first.status == 202
    accepted = first.json()
    assert (accepted["account_id"], accepted["symbol"], accepted["quantity"]) == (
        ACCOUNT,
        "AAPL",
        "5",
    )
    assert first.headers["location"] == f"/v1/orders/{accepted['order_id']}"
    assert first.headers["content-type"] == "application/json"
    assert first.headers["cache-control"] == "no-store"
    assert "idempotent-replayed" not in first.headers
    assert (again.status, again.body) == (202, first.body)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert (listener.status, listener.body) == (202, first.body)
    assert listener.headers["idempotent-replayed"] == "true"
    assert problem(reused) == (422, "idempotency_key_reused")


async def test_reads_answer_what_the_listener_answers(tmp_path):
    source = ScriptedSource()
    async with running_gateway(proxy_settings(tmp_path), source=source) as gw:
        await quoted(gw, source)
        token = await demo_token(gw)
        order_id = (
            await via_proxy(gw, "POST", "/v1/orders", token=token, body=buy(), key="k-2")
        ).json()["order_id"]

        async def filled() -> bool:
            answer = await via_proxy(gw, "GET", f"/v1/orders/{order_id}", token=token)
            return bool(answer.json()["status"] == "filled")

        await poll_until(filled, what="the order to fill")
        reads = [
            f"/v1/orders/{order_id}",
            f"/v1/orders?account_id={ACCOUNT}",
            f"/v1/orders?account_id={ACCOUNT}&status=filled&limit=1",
        ]
        proxied = [await via_proxy(gw, "GET", path, token=token) for path in reads]
        direct = [await via_api(gw, "GET", path, token=token) for path in reads]

    assert [a.status for a in proxied] == [200, 200, 200]
    assert [a.body for a in proxied] == [a.body for a in direct]
    order = proxied[0].json()
    # A market buy of 5 fills at the ask.
    assert (order["filled_quantity"], order["average_price"]) == ("5", "100.02")
    assert [o["order_id"] for o in proxied[2].json()["data"]] == [order_id]


async def test_a_payment_and_its_read_go_through(tmp_path):
    async with running_gateway(proxy_settings(tmp_path), source=ScriptedSource()) as gw:
        token = await demo_token(gw)
        body = orjson.dumps(
            {"account_id": ACCOUNT, "kind": "deposit", "amount": "250.00", "currency": "USD"}
        )
        accepted = await via_proxy(gw, "POST", "/v1/payments", token=token, body=body, key="p-1")
        payment_id = accepted.json()["payment_id"]

        async def settled() -> bool:
            answer = await via_proxy(gw, "GET", f"/v1/payments/{payment_id}", token=token)
            return bool(answer.json()["status"] == "settled")

        await poll_until(settled, what="the deposit to settle")

    assert accepted.status == 202
    assert accepted.headers["location"] == f"/v1/payments/{payment_id}"


async def test_a_cancel_of_a_filled_order_answers_the_apis_problem(tmp_path):
    source = ScriptedSource()
    async with running_gateway(proxy_settings(tmp_path), source=source) as gw:
        await quoted(gw, source)
        token = await demo_token(gw)
        order_id = (
            await via_proxy(gw, "POST", "/v1/orders", token=token, body=buy(), key="k-3")
        ).json()["order_id"]

        async def filled() -> bool:
            answer = await via_proxy(gw, "GET", f"/v1/orders/{order_id}", token=token)
            return bool(answer.json()["status"] == "filled")

        await poll_until(filled, what="the order to fill")
        cancel = await via_proxy(gw, "DELETE", f"/v1/orders/{order_id}", token=token)

    assert problem(cancel) == (422, "order_not_cancellable")
    assert cancel.json()["status_of_order"] == "filled"


async def test_retry_after_of_a_rate_limited_submit_comes_back(tmp_path):
    settings = proxy_settings(tmp_path, orders={"submit_rate_per_s": 0.01, "submit_burst": 1})
    source = ScriptedSource()
    async with running_gateway(settings, source=source) as gw:
        await quoted(gw, source)
        token = await demo_token(gw)
        first = await via_proxy(gw, "POST", "/v1/orders", token=token, body=buy(), key="r-1")
        second = await via_proxy(gw, "POST", "/v1/orders", token=token, body=buy(), key="r-2")

    assert first.status == 202
    assert problem(second) == (429, "rate_limited")
    # One submit per 100 s (0.01/s) and a burst of one: the next is due in 100 s,
    # less the milliseconds since the first, rounded up. The header comes back
    # as the API wrote it (as its body's retry_after_s).
    assert second.headers["retry-after"] == str(second.json()["retry_after_s"])
    assert float(second.headers["retry-after"]) == 100


@pytest.mark.parametrize(
    ("headers", "key", "expected"),
    [
        ({}, None, (400, "idempotency_key_missing")),
        ({}, "", (400, "idempotency_key_invalid")),
        ({"Content-Type": "text/plain"}, "m-1", (415, "unsupported_media_type")),
    ],
)
async def test_the_key_and_the_media_type_reach_the_api(tmp_path, headers, key, expected):
    async with running_gateway(proxy_settings(tmp_path), source=ScriptedSource()) as gw:
        token = await demo_token(gw)
        answer = await via_proxy(
            gw, "POST", "/v1/orders", token=token, body=buy(), key=key, headers=headers
        )

    assert problem(answer) == expected


async def test_a_query_the_route_cannot_read_is_left_for_the_api_to_refuse(tmp_path):
    async with running_gateway(proxy_settings(tmp_path), source=ScriptedSource()) as gw:
        token = await demo_token(gw)
        # 17 fields: more than the API parses (and than the route reads).
        query = "&".join([f"account_id={ACCOUNT}", *(f"f{n}=1" for n in range(16))])
        answer = await via_proxy(gw, "GET", f"/v1/orders?{query}", token=token)

    assert problem(answer) == (400, "query_param_invalid")


async def test_a_body_over_the_apis_bound_is_refused_by_the_api(tmp_path):
    settings = proxy_settings(tmp_path, api={"max_body_bytes": 256})
    async with running_gateway(settings, source=ScriptedSource()) as gw:
        token = await demo_token(gw)
        body = buy(client_order_id="x" * 300)
        answer = await via_proxy(gw, "POST", "/v1/orders", token=token, body=body, key="b-1")

    assert len(body) > 256
    assert problem(answer) == (413, "body_too_large")


@pytest.mark.parametrize(
    ("token_of", "expected"),
    [
        ("none", (401, "token_missing")),
        ("garbage", (401, "token_invalid")),
        ("expired", (401, "token_expired")),
        ("read_only", (403, "insufficient_scope")),
    ],
)
async def test_token_problems_are_the_apis_own(tmp_path, token_of, expected):
    async with running_gateway(proxy_settings(tmp_path), source=ScriptedSource()) as gw:
        tokens = {
            "none": None,
            "garbage": "not.a.token",
            "expired": make_token(subject=DEMO_SUBJECT, accounts=[ACCOUNT], ttl_s=1, now_s=1e9),
            "read_only": make_token(subject=DEMO_SUBJECT, accounts=[ACCOUNT], scopes=["read"]),
        }
        answer = await via_proxy(
            gw, "POST", "/v1/orders", token=tokens[token_of], body=buy(), key="t-1"
        )

    assert problem(answer) == expected


# --- what it refuses -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/trading-state"),
        ("POST", "/admin/trading-state"),
        ("GET", "/openapi.json"),
        ("GET", f"/v1/accounts/{ACCOUNT}/balances"),
        ("GET", "/v1/nothing"),
        ("PUT", "/v1/orders"),
        ("PATCH", "/v1/orders/ord_1"),
        ("GET", "/"),
    ],
)
async def test_other_routes_are_not_forwarded(tmp_path, method, path):
    async with running_gateway(proxy_settings(tmp_path), source=ScriptedSource()) as gw:
        token = await demo_token(gw)
        answer = await via_proxy(gw, method, path, token=token, body=b"{}")

    assert problem(answer) == (404, "route_not_proxied")


@pytest.mark.parametrize(
    ("subject", "accounts"),
    [
        ("oms", [ACCOUNT]),  # a real principal, even for a demo account
        (DEMO_SUBJECT, [ACCOUNT, "ACC-1"]),  # an account that is not a demo account
        (DEMO_SUBJECT, ["*"]),  # the wildcard
    ],
)
async def test_a_token_that_is_not_a_demo_token_is_refused(tmp_path, subject, accounts):
    async with running_gateway(proxy_settings(tmp_path), source=ScriptedSource()) as gw:
        token = make_token(
            subject=subject, accounts=accounts, scopes=["orders:write", "orders:read"]
        )
        submit = await via_proxy(gw, "POST", "/v1/orders", token=token, body=buy(), key="d-1")
        listing = await via_proxy(gw, "GET", f"/v1/orders?account_id={ACCOUNT}", token=token)

    assert problem(submit) == (403, "demo_token_required")
    assert problem(listing) == (403, "demo_token_required")


@pytest.mark.parametrize(
    ("method", "path", "body", "refused"),
    [
        ("POST", "/v1/orders", buy(account="ACC-1"), "ACC-1"),
        ("POST", "/v1/orders", buy(account="*"), "*"),
        (
            "POST",
            "/v1/payments",
            orjson.dumps(
                {"account_id": "ACC-2", "kind": "deposit", "amount": "1.00", "currency": "USD"}
            ),
            "ACC-2",
        ),
        ("GET", "/v1/orders?account_id=ACC-3", None, "ACC-3"),
        ("GET", f"/v1/orders?account_id={ACCOUNT}&account_id=ACC-4", None, "ACC-4"),
    ],
)
async def test_an_account_that_is_not_a_demo_account_is_refused(
    tmp_path, method, path, body, refused
):
    async with running_gateway(proxy_settings(tmp_path), source=ScriptedSource()) as gw:
        token = await demo_token(gw)
        answer = await via_proxy(gw, method, path, token=token, body=body, key=str(uuid.uuid4()))

    assert problem(answer) == (403, "not_a_demo_account")
    assert answer.json()["detail"] == f"{refused} is not one of this gateway's demo accounts"


async def test_the_routes_checks_come_before_the_apis_token_check(tmp_path):
    async with running_gateway(proxy_settings(tmp_path), source=ScriptedSource()) as gw:
        foreign = await via_proxy(
            gw, "POST", "/v1/orders", token=None, body=buy(account="ACC-1"), key="c-1"
        )
        demo = await via_proxy(gw, "POST", "/v1/orders", token=None, body=buy(), key="c-2")

    assert problem(foreign) == (403, "not_a_demo_account")
    assert problem(demo) == (401, "token_missing")


async def test_another_demo_account_than_the_tokens_is_the_apis_refusal(tmp_path):
    async with running_gateway(proxy_settings(tmp_path), source=ScriptedSource()) as gw:
        token = await demo_token(gw)
        answer = await via_proxy(
            gw, "POST", "/v1/orders", token=token, body=buy(account="DEMO-0002"), key="o-1"
        )

    assert problem(answer) == (403, "account_forbidden")


async def test_a_gateway_that_is_not_ready_answers_state_unavailable(tmp_path):
    async with running_gateway(proxy_settings(tmp_path), source=ScriptedSource()) as gw:
        token = await demo_token(gw)
        gw.gateway.is_ready = False
        try:
            answer = await via_proxy(gw, "POST", "/v1/orders", token=token, body=buy(), key="s-1")
        finally:
            gw.gateway.is_ready = True

    assert problem(answer) == (503, "state_unavailable")
    assert answer.headers["retry-after"] == "1"


async def test_the_route_does_not_exist_outside_demo_mode(tmp_path):
    settings = proxy_settings(tmp_path, dashboard={"demo": False})
    async with running_gateway(settings, source=ScriptedSource()) as gw:
        token = make_token(
            subject=DEMO_SUBJECT, accounts=[ACCOUNT], scopes=["orders:write", "orders:read"]
        )
        answer = await via_proxy(gw, "POST", "/v1/orders", token=token, body=buy(), key="n-1")
        listing = await via_proxy(gw, "GET", f"/v1/orders?account_id={ACCOUNT}", token=token)

    # No such path on the gateway: its generic 404, not one of the route's refusals.
    assert (answer.status, listing.status) == (404, 404)
    assert answer.json()["code"] == "route_not_found"
