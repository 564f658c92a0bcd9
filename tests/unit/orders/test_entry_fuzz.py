"""Generated requests against OrderEntry: every answer is documented, none is an exception.

Bodies are arbitrary JSON, near-valid orders and payments (each field valid,
of another JSON type or a random string, plus stray fields), and raw bytes.
The answer's status must be one the route documents, and a problem's code
one the route (or any route) documents; a 2xx must be the route's success.
"""

from __future__ import annotations

import asyncio
import json

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from orders.api import ApiRequest
from orders.problems import PROBLEM_TYPES, Stage
from orders.routes import GLOBAL_PROBLEMS, ORDER_ROUTES
from tests.orderdoubles import T0, caller, make_harness

ROUTES = {(r.method, r.path): r for r in ORDER_ROUTES}
BUSINESS_CODES = {p.code for p in PROBLEM_TYPES if p.stage is Stage.BUSINESS}

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
decimal_texts = st.sampled_from(
    [
        "10",
        "100.00",
        "100",
        "105.50",
        "0",
        "1e3",
        "-5",
        "NaN",
        "100.005",
        "1" * 20,
        "0.5",
        "2500.00",
        " 1",
        "100000",
    ]
)


def field(valid: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    # Mostly valid, so that examples get past the first field to the deeper checks.
    is_valid = st.sampled_from([True] * 9 + [False])
    return st.tuples(is_valid, valid, json_values).map(lambda t: t[1] if t[0] else t[2])


order_bodies = st.fixed_dictionaries(
    {
        "account_id": field(st.sampled_from(["ACC-1", "ACC-2", "bad id"])),
        "symbol": field(st.sampled_from(["AAPL", "AAPL", "7203", "ESH7", "NOPE", "ASML"])),
        "side": field(st.sampled_from(["buy", "sell", "BUY"])),
        "quantity": field(decimal_texts),
        "type": field(st.sampled_from(["market", "limit"])),
        "time_in_force": field(st.sampled_from(["day", "gtc", "ioc", "fok"])),
    },
    optional={
        "limit_price": field(decimal_texts),
        "client_order_id": field(st.text(max_size=70)),
        "extra": json_values,  # optional keys are drawn about half of the time
    },
)
payment_bodies = st.fixed_dictionaries(
    {
        "account_id": field(st.sampled_from(["ACC-1", "ACC-2"])),
        "kind": field(st.sampled_from(["deposit", "withdrawal", "refund"])),
        "amount": field(decimal_texts),
        "currency": field(st.sampled_from(["USD", "JPY", "BHD", "XYZ", "usd"])),
    },
    optional={"reference": field(st.text(max_size=150))},
)
state_bodies = st.fixed_dictionaries(
    {"state": field(st.sampled_from(["ACTIVE", "HALTED", "REDUCING", "x"]))},
    optional={"reason": field(st.text(max_size=5))},
)
bodies = (
    order_bodies.map(lambda b: json.dumps(b).encode())
    | payment_bodies.map(lambda b: json.dumps(b).encode())
    | state_bodies.map(lambda b: json.dumps(b).encode())
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=64)
)
scopes = st.sets(st.sampled_from(["orders:write", "orders:read", "admin"]), max_size=3)
keys = st.none() | st.sampled_from(["k-1", "", "k" * 256]) | st.text(max_size=10)
targets = st.sampled_from(
    [
        ("POST", "/v1/orders"),
        ("POST", "/v1/payments"),
        ("POST", "/admin/trading-state"),
        ("GET", "/v1/orders"),
        ("GET", "/v1/orders/{order_id}"),
        ("DELETE", "/v1/orders/{order_id}"),
        ("GET", "/v1/payments/{payment_id}"),
        ("PATCH", "/v1/orders"),
        ("GET", "/v1/elsewhere"),
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    target=targets,
    body=bodies,
    key=keys,
    granted=scopes,
    path_id=st.text(min_size=1, max_size=12).filter(lambda s: "/" not in s),
    query=st.text(max_size=30),
    content_type=st.sampled_from(["application/json", "text/plain"]),
)
def test_every_answer_is_a_documented_status_and_code(
    target, body, key, granted, path_id, query, content_type
):
    method, template = target
    path = template.replace("{order_id}", path_id).replace("{payment_id}", path_id)
    headers = {"content-type": content_type}
    if key is not None:
        headers["idempotency-key"] = key
    request = ApiRequest(
        caller=caller(*granted) if granted else caller("none"),
        method=method,
        path=path,
        now_ns=T0,
        headers=headers,
        query=query,
        body=body,
    )

    response = asyncio.run(make_harness().entry.handle(request))

    assert_documented(response, method, template)


def assert_documented(response, method: str, template: str) -> None:
    event(f"{method} {template} -> {response.status} {response.code}")
    route = ROUTES.get((method, template))
    parsed = json.loads(response.body)
    if route is None or response.code in {p.code for p in GLOBAL_PROBLEMS}:
        assert response.code in {p.code for p in GLOBAL_PROBLEMS}
        return
    if response.status < 300:
        assert response.status in {s.status for s in route.success}
        assert response.code is None
        return
    assert response.code in {p.code for p in route.problems}, (route.operation, response.code)
    assert response.status in {p.status for p in route.problems}
    assert parsed["code"] == response.code
    assert response.header("content-type") == "application/problem+json"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    target=st.sampled_from(["/v1/orders", "/v1/payments"]),
    order=order_bodies,
    payment=payment_bodies,
    cash=st.sampled_from(["0", "1000", "1000000"]),
)
def test_generated_submits_by_an_authorised_caller_get_documented_answers(
    target, order, payment, cash
):
    body = json.dumps(order if target == "/v1/orders" else payment).encode()
    request = ApiRequest(
        caller=caller("orders:write", "orders:read"),
        method="POST",
        path=target,
        now_ns=T0,
        headers={"content-type": "application/json", "idempotency-key": "k-1"},
        body=body,
    )
    h = make_harness()
    h.accounts.set_account(cash={"USD": cash, "EUR": cash})
    h.accounts.set_quote("ASML", "902.30")
    h.accounts.set_quote("ESH7", "7118.50", "7118.25", "7118.75")

    first = asyncio.run(h.entry.handle(request))
    again = asyncio.run(h.entry.handle(request))

    assert_documented(first, "POST", target)
    if first.status == 202 or first.code in BUSINESS_CODES:
        assert again.body == first.body  # executed: stored and replayed
        assert again.header("idempotent-replayed") == "true"
    else:
        assert again.header("idempotent-replayed") is None  # refused before execution
