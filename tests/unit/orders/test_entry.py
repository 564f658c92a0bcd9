"""OrderEntry: routing, auth, bodies, reads, cancels, the kill switch (memory store, doubles)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.api import ApiRequest, Unauthenticated
from orders.commands import CancelOrder, SubmitOrder
from orders.events import TradingStateChanged
from orders.trading import TradingState
from orders.types import (
    AccountId,
    OrderId,
    OrderType,
    PaymentId,
    PaymentKind,
    Side,
    TimeInForce,
    TransferId,
    cancel_transfer_id_for,
)
from orders.views import OrderRecord, OrderStatus, PaymentRecord, PaymentStatus
from tests.orderdoubles import (
    ACCOUNT,
    NS,
    T0,
    body_of,
    caller,
    get,
    make_harness,
    order_json,
    payment_json,
    post,
    problem_code,
)

ADMIN = caller("admin")


def record(order_id: str = "ord_1", **changes) -> OrderRecord:
    fields = {
        "order_id": OrderId(order_id),
        "transfer_id": TransferId("t-" + order_id),
        "account_id": AccountId(ACCOUNT),
        "symbol": "AAPL",
        "side": Side.BUY,
        "quantity": Decimal("10"),
        "order_type": OrderType.LIMIT,
        "limit_price": Decimal("100.00"),
        "time_in_force": TimeInForce.DAY,
        "client_order_id": None,
        "status": OrderStatus.RESERVED,
        "filled_quantity": Decimal("0"),
        "average_price": None,
        "reason": None,
        "ts_accepted": T0,
        "ts_updated": T0 + 1,
    } | changes
    return OrderRecord(**fields)


# --- routing and auth -------------------------------------------------------------------------


async def test_an_unknown_path_is_404_route_not_found():
    response = await make_harness().entry.handle(get("/v1/nothing"))

    assert (response.status, problem_code(response)) == (404, "route_not_found")


async def test_a_known_path_with_another_method_is_405_with_allow():
    response = await make_harness().entry.handle(get("/v1/orders/ord_1", method="PUT"))

    assert (response.status, problem_code(response)) == (405, "method_not_allowed")
    assert response.header("allow") == "DELETE, GET"


@pytest.mark.parametrize("code", ["token_missing", "token_invalid", "token_expired"])
async def test_no_valid_token_is_401_with_the_adapters_code(code):
    who = Unauthenticated(code, "refused")

    response = await make_harness().entry.handle(get("/v1/orders/ord_1", who=who))

    assert (response.status, problem_code(response)) == (401, code)


@pytest.mark.parametrize(
    ("request_", "scope"),
    [
        (post("/v1/orders", order_json(), who=caller("orders:read")), "orders:write"),
        (get("/v1/orders/ord_1", who=caller("orders:write")), "orders:read"),
        (get("/admin/trading-state", who=caller("orders:write", "orders:read")), "admin"),
        (get("/v1/orders/ord_1", method="DELETE", who=caller("orders:read")), "orders:write"),
    ],
    ids=["submit", "read", "admin", "cancel"],
)
async def test_a_token_without_the_routes_scope_is_403_insufficient_scope(request_, scope):
    response = await make_harness().entry.handle(request_)

    assert (response.status, problem_code(response)) == (403, "insufficient_scope")
    assert scope in body_of(response)["detail"]


async def test_the_openapi_document_needs_no_token():
    response = await make_harness().entry.handle(
        get("/openapi.json", who=Unauthenticated("token_missing", "none"))
    )

    assert response.status == 200
    assert body_of(response)["openapi"] == "3.1.0"


async def test_the_wildcard_accounts_claim_covers_every_account():
    h = make_harness()
    h.accounts.set_account("ACC-9")

    response = await h.entry.handle(
        post("/v1/orders", order_json(account_id="ACC-9"), who=caller(accounts=["*"]))
    )

    assert response.status == 202


# --- the body of a submit ------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
async def test_a_body_that_is_not_declared_json_is_415(content_type):
    request = post("/v1/orders", order_json(), headers={"content-type": content_type})

    response = await make_harness().entry.handle(request)

    assert (response.status, problem_code(response)) == (415, "unsupported_media_type")


async def test_json_with_a_charset_parameter_is_accepted():
    request = post(
        "/v1/orders", order_json(), headers={"content-type": "application/json; charset=utf-8"}
    )

    assert (await make_harness().entry.handle(request)).status == 202


async def test_a_body_over_the_limit_is_413():
    body = b'{"account_id":"' + b"A" * 20_000 + b'"}'

    response = await make_harness().entry.handle(post("/v1/orders", body))

    assert (response.status, problem_code(response)) == (413, "body_too_large")


@pytest.mark.parametrize("body", [b"{", b'{"quantity": NaN}', b"\xff"])
async def test_a_body_that_is_not_json_is_400_malformed_json(body):
    response = await make_harness().entry.handle(post("/v1/orders", body))

    assert (response.status, problem_code(response)) == (400, "malformed_json")


async def test_a_body_with_a_repeated_field_is_400_duplicate_field():
    body = b'{"account_id":"ACC-1","quantity":"1","quantity":"1000"}'

    response = await make_harness().entry.handle(post("/v1/orders", body))

    assert (response.status, problem_code(response)) == (400, "duplicate_field")


# --- the 202 --------------------------------------------------------------------------------------


async def test_an_accepted_order_answers_202_with_the_order_object():
    h = make_harness()
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    response = await h.entry.handle(
        post(
            "/v1/orders",
            order_json(client_order_id="c-7"),
            now_ns=T0 + 123_456_789,
            headers={"traceparent": traceparent},
        )
    )

    (command,) = h.bus.submitted
    assert isinstance(command, SubmitOrder)
    assert response.status == 202
    assert body_of(response) == {
        "order_id": f"ord_{command.transfer_id}",
        "status": "accepted",
        "account_id": "ACC-1",
        "symbol": "AAPL",
        "side": "buy",
        "quantity": "10",
        "type": "limit",
        "limit_price": "100.00",
        "time_in_force": "day",
        "client_order_id": "c-7",
        "transfer_id": command.transfer_id,
        "accepted_at": "2027-01-15T08:00:00.123456789Z",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    }
    assert response.header("location") == f"/v1/orders/ord_{command.transfer_id}"
    assert response.header("content-type") == "application/json"
    assert command.ts_accepted == T0 + 123_456_789


async def test_without_a_traceparent_the_trace_id_is_the_transfer_ids_hex():
    h = make_harness()

    response = await h.entry.handle(post("/v1/orders", order_json()))

    body = body_of(response)
    assert body["trace_id"] == str(body["transfer_id"]).replace("-", "")


async def test_an_accepted_payment_answers_202_with_the_payment_object():
    h = make_harness()

    response = await h.entry.handle(post("/v1/payments", payment_json(reference="r-1")))

    (command,) = h.bus.submitted
    assert body_of(response) == {
        "payment_id": f"pay_{command.transfer_id}",
        "status": "accepted",
        "account_id": "ACC-1",
        "kind": "deposit",
        "amount": "2500.00",
        "currency": "USD",
        "reference": "r-1",
        "transfer_id": command.transfer_id,
        "accepted_at": "2027-01-15T08:00:00.000000000Z",
        "trace_id": str(command.transfer_id).replace("-", ""),
    }


async def test_two_quick_orders_cannot_both_spend_the_same_cash():
    h = make_harness()
    h.accounts.set_account(cash={"USD": "1500"})

    first = await h.entry.handle(post("/v1/orders", order_json(), key="a"))
    second = await h.entry.handle(post("/v1/orders", order_json(), key="b"))

    assert first.status == 202
    assert problem_code(second) == "insufficient_buying_power"


async def test_a_ledger_event_releases_the_reservation_and_the_read_your_write_entry():
    h = make_harness()
    h.accounts.set_account(cash={"USD": "1500"})
    first = await h.entry.handle(post("/v1/orders", order_json(), key="a"))
    transfer_id = TransferId(str(body_of(first)["transfer_id"]))

    h.entry.note_ledger_event(transfer_id)
    second = await h.entry.handle(post("/v1/orders", order_json(), key="b"))
    lookup = await h.entry.handle(get(f"/v1/orders/{body_of(first)['order_id']}"))

    assert second.status == 202
    assert problem_code(lookup) == "order_not_found"  # the view has not got it in this double


# --- reads ---------------------------------------------------------------------------------------


async def test_get_order_answers_the_views_record():
    h = make_harness()
    h.orders.orders = [record("ord_1", filled_quantity=Decimal("4"), average_price=Decimal("99.5"))]

    response = await h.entry.handle(get("/v1/orders/ord_1"))

    assert response.status == 200
    body = body_of(response)
    assert (body["status"], body["filled_quantity"], body["average_price"]) == (
        "reserved",
        "4",
        "99.5",
    )
    assert body["updated_at"] == "2027-01-15T08:00:00.000000001Z"


async def test_get_order_of_an_order_the_ledger_has_not_shown_answers_accepted():
    h = make_harness()
    accepted = await h.entry.handle(post("/v1/orders", order_json()))

    response = await h.entry.handle(get(f"/v1/orders/{body_of(accepted)['order_id']}"))

    body = body_of(response)
    assert (response.status, body["status"], body["filled_quantity"]) == (200, "accepted", "0")


async def test_get_order_of_another_accounts_order_is_404():
    h = make_harness()
    h.orders.orders = [record("ord_1", account_id=AccountId("ACC-2"))]

    response = await h.entry.handle(get("/v1/orders/ord_1"))

    assert (response.status, problem_code(response)) == (404, "order_not_found")


async def test_get_order_while_the_view_is_down_is_503_unless_the_process_knows_it():
    h = make_harness()
    accepted = await h.entry.handle(post("/v1/orders", order_json()))
    h.orders.is_down = True

    unknown = await h.entry.handle(get("/v1/orders/ord_1"))
    known = await h.entry.handle(get(f"/v1/orders/{body_of(accepted)['order_id']}"))

    assert (unknown.status, problem_code(unknown)) == (503, "state_unavailable")
    assert unknown.header("retry-after") == "1"
    assert known.status == 200


async def test_list_orders_pages_with_a_cursor():
    h = make_harness()
    h.orders.orders = [record(f"ord_{i}") for i in range(3)]

    first = await h.entry.handle(get("/v1/orders", query="account_id=ACC-1&limit=2"))
    cursor = body_of(first)["next_cursor"]
    second = await h.entry.handle(
        get("/v1/orders", query=f"account_id=ACC-1&limit=2&cursor={cursor}")
    )

    assert [o["order_id"] for o in body_of(first)["data"]] == ["ord_0", "ord_1"]
    assert cursor == "2"
    assert [o["order_id"] for o in body_of(second)["data"]] == ["ord_2"]
    assert body_of(second)["next_cursor"] is None


async def test_list_orders_filters_by_status():
    h = make_harness()
    h.orders.orders = [record("ord_a"), record("ord_b", status=OrderStatus.FILLED)]

    response = await h.entry.handle(get("/v1/orders", query="account_id=ACC-1&status=filled"))

    assert [o["order_id"] for o in body_of(response)["data"]] == ["ord_b"]


async def test_list_orders_puts_orders_the_ledger_has_not_shown_first():
    h = make_harness()
    h.orders.orders = [record("ord_old")]
    accepted = await h.entry.handle(post("/v1/orders", order_json()))

    response = await h.entry.handle(get("/v1/orders", query="account_id=ACC-1"))

    ids = [o["order_id"] for o in body_of(response)["data"]]
    assert ids == [body_of(accepted)["order_id"], "ord_old"]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "query_param_missing"),
        ("account_id=bad%20id", "query_param_invalid"),
        ("account_id=ACC-1&status=open", "query_param_invalid"),
        ("account_id=ACC-1&limit=0", "query_param_invalid"),
        ("account_id=ACC-1&limit=201", "query_param_invalid"),
        ("account_id=ACC-1&limit=ten", "query_param_invalid"),
        ("account_id=ACC-1&cursor=zzz", "query_param_invalid"),
        ("account_id=ACC-1&colour=red", "query_param_invalid"),
        ("account_id=ACC-1&account_id=ACC-1", "query_param_invalid"),
    ],
)
async def test_list_orders_with_a_bad_query_is_400(query, code):
    h = make_harness()

    response = await h.entry.handle(get("/v1/orders", query=query))

    assert (response.status, problem_code(response)) == (400, code)


async def test_list_orders_of_an_account_the_token_lacks_is_403():
    response = await make_harness().entry.handle(get("/v1/orders", query="account_id=ACC-2"))

    assert (response.status, problem_code(response)) == (403, "account_forbidden")


async def test_get_payment_answers_the_views_record_or_404():
    h = make_harness()
    h.orders.payments[PaymentId("pay_1")] = PaymentRecord(
        payment_id=PaymentId("pay_1"),
        transfer_id=TransferId("t-1"),
        account_id=AccountId(ACCOUNT),
        kind=PaymentKind.WITHDRAWAL,
        amount=Decimal("10.00"),
        currency="USD",
        reference=None,
        status=PaymentStatus.PENDING,
        reason=None,
        ts_accepted=T0,
        ts_updated=T0,
    )

    found = await h.entry.handle(get("/v1/payments/pay_1"))
    missing = await h.entry.handle(get("/v1/payments/pay_2"))

    assert (found.status, body_of(found)["status"], body_of(found)["amount"]) == (
        200,
        "pending",
        "10.00",
    )
    assert (missing.status, problem_code(missing)) == (404, "payment_not_found")


async def test_get_payment_the_ledger_has_not_shown_answers_accepted():
    h = make_harness()
    accepted = await h.entry.handle(post("/v1/payments", payment_json()))

    response = await h.entry.handle(get(f"/v1/payments/{body_of(accepted)['payment_id']}"))

    assert body_of(response)["status"] == "accepted"


# --- cancel ---------------------------------------------------------------------------------------


def delete(order_id: str, **kwargs) -> ApiRequest:
    return get(f"/v1/orders/{order_id}", method="DELETE", **kwargs)


async def test_cancel_of_a_resting_order_submits_a_cancel_and_answers_202():
    h = make_harness()
    h.orders.orders = [record("ord_1")]

    response = await h.entry.handle(delete("ord_1", now_ns=T0 + NS))

    (command,) = h.bus.submitted
    assert isinstance(command, CancelOrder)
    assert command.transfer_id == cancel_transfer_id_for(OrderId("ord_1"))
    assert response.status == 202
    assert body_of(response) == {
        "order_id": "ord_1",
        "status": "cancel_requested",
        "transfer_id": command.transfer_id,
        "requested_at": "2027-01-15T08:00:01.000000000Z",
        "trace_id": command.transfer_id.replace("-", ""),
    }


async def test_cancelling_twice_sends_the_same_transfer_id_so_the_ledger_applies_it_once():
    h = make_harness()
    h.orders.orders = [record("ord_1")]

    await h.entry.handle(delete("ord_1"))
    await h.entry.handle(delete("ord_1", who=caller(principal="another-service")))

    assert len({c.transfer_id for c in h.bus.submitted}) == 1


async def test_cancel_of_a_cancelled_order_answers_200_with_the_order():
    h = make_harness()
    h.orders.orders = [record("ord_1", status=OrderStatus.CANCELLED)]

    response = await h.entry.handle(delete("ord_1"))

    assert (response.status, body_of(response)["status"]) == (200, "cancelled")
    assert h.bus.submitted == []


@pytest.mark.parametrize("status", [OrderStatus.FILLED, OrderStatus.REJECTED, OrderStatus.EXPIRED])
async def test_cancel_of_a_final_order_is_422_order_not_cancellable(status):
    h = make_harness()
    h.orders.orders = [record("ord_1", status=status)]

    response = await h.entry.handle(delete("ord_1"))

    assert (response.status, problem_code(response)) == (422, "order_not_cancellable")


async def test_cancel_of_an_unknown_order_is_404():
    response = await make_harness().entry.handle(delete("ord_404"))

    assert (response.status, problem_code(response)) == (404, "order_not_found")


async def test_cancel_while_the_bus_is_down_is_503():
    h = make_harness()
    h.orders.orders = [record("ord_1")]
    h.bus.is_down = True

    response = await h.entry.handle(delete("ord_1"))

    assert (response.status, problem_code(response)) == (503, "submit_unavailable")


async def test_cancel_passes_while_trading_is_halted():
    h = make_harness()
    h.orders.orders = [record("ord_1")]
    await h.entry.handle(
        post("/admin/trading-state", {"state": "HALTED", "reason": "t"}, who=ADMIN)
    )

    response = await h.entry.handle(delete("ord_1"))

    assert response.status == 202


# --- the kill switch ------------------------------------------------------------------------------


async def test_setting_the_trading_state_answers_it_and_emits_an_audit_event():
    h = make_harness()

    response = await h.entry.handle(
        post("/admin/trading-state", {"state": "HALTED", "reason": "venue down"}, who=ADMIN)
    )

    assert body_of(response) == {
        "state": "HALTED",
        "reason": "venue down",
        "changed_by": "svc-oms",
        "changed_at": "2027-01-15T08:00:00.000000000Z",
    }
    (audit,) = [e for e in h.events if isinstance(e, TradingStateChanged)]
    assert (audit.previous.state, audit.current.state) == (TradingState.ACTIVE, TradingState.HALTED)


async def test_after_a_halt_orders_are_refused_and_payments_still_pass():
    h = make_harness()
    await h.entry.handle(
        post("/admin/trading-state", {"state": "HALTED", "reason": "x"}, who=ADMIN)
    )

    refused = await h.entry.handle(post("/v1/orders", order_json(), key="o"))
    payment = await h.entry.handle(post("/v1/payments", payment_json(), key="p"))

    assert problem_code(refused) == "trading_halted"
    assert payment.status == 202


async def test_get_trading_state_answers_the_startup_state():
    response = await make_harness().entry.handle(get("/admin/trading-state", who=ADMIN))

    assert body_of(response) == {
        "state": "ACTIVE",
        "reason": "startup",
        "changed_by": None,
        "changed_at": None,
    }


async def test_a_bad_trading_state_body_is_400():
    response = await make_harness().entry.handle(
        post("/admin/trading-state", {"state": "PAUSED", "reason": "x"}, who=ADMIN)
    )

    assert (response.status, problem_code(response)) == (400, "invalid_value")
