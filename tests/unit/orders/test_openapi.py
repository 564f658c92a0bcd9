"""The OpenAPI document: every route, every problem code, the very schemas that validate."""

import json
from typing import Any

from orders.openapi import ORDER_SCHEMAS, openapi_document
from orders.problems import PROBLEM_TYPES, Stage
from orders.requests import ORDER_SCHEMA, PAYMENT_SCHEMA, TRADING_STATE_SCHEMA
from orders.routes import API_ROUTES, ORDER_ROUTES, Parameter, RouteSpec, Success

DOC: Any = openapi_document(API_ROUTES)  # a JSON document; tests walk it

ISSUE_ROUTES = {
    ("post", "/v1/orders"),
    ("get", "/v1/orders"),
    ("get", "/v1/orders/{order_id}"),
    ("delete", "/v1/orders/{order_id}"),
    ("post", "/v1/payments"),
    ("get", "/v1/payments/{payment_id}"),
    ("post", "/admin/trading-state"),
    ("get", "/openapi.json"),
}


def operations():
    for path, methods in DOC["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_the_document_is_openapi_3_1_and_json():
    assert DOC["openapi"] == "3.1.0"
    assert json.loads(json.dumps(DOC)) == DOC


def test_every_route_of_the_issue_is_in_the_document():
    documented = {(method, path) for path, method, _ in operations()}

    assert documented >= ISSUE_ROUTES
    assert documented == {(r.method.lower(), r.path) for r in API_ROUTES}


def test_every_problem_code_is_in_the_document_with_its_status():
    listed = {(t["code"], t["status"]) for t in DOC["x-problem-types"]}
    answered = {
        code
        for _, _, operation in operations()
        for response in operation["responses"].values()
        for code in response.get("x-problem-codes", [])
    }

    assert listed == {(t.code, t.status) for t in PROBLEM_TYPES}
    assert answered | set(DOC["x-global-problem-codes"]) == {t.code for t in PROBLEM_TYPES}


def test_each_route_documents_its_problem_codes_under_their_status():
    for route in API_ROUTES:
        responses = DOC["paths"][route.path][route.method.lower()]["responses"]
        for kind in route.problems:
            assert kind.code in responses[str(kind.status)]["x-problem-codes"], (
                route.operation,
                kind.code,
            )


def test_business_rejections_are_marked_stored_for_replay():
    marked = {t["code"] for t in DOC["x-problem-types"] if t["stored_for_replay"]}

    assert marked == {t.code for t in PROBLEM_TYPES if t.stage is Stage.BUSINESS}
    assert "insufficient_buying_power" in marked
    assert "rate_limited" not in marked


def test_request_bodies_are_the_schemas_the_handlers_validate_with():
    schemas = DOC["components"]["schemas"]

    assert schemas["OrderRequest"] == ORDER_SCHEMA.json_schema()
    assert schemas["PaymentRequest"] == PAYMENT_SCHEMA.json_schema()
    assert schemas["TradingStateRequest"] == TRADING_STATE_SCHEMA.json_schema()
    submit = DOC["paths"]["/v1/orders"]["post"]
    assert submit["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OrderRequest"
    }


def test_submits_require_the_idempotency_key_header_and_document_replays():
    submit = DOC["paths"]["/v1/payments"]["post"]

    (header,) = [p for p in submit["parameters"] if p["in"] == "header"]
    assert (header["name"], header["required"]) == ("Idempotency-Key", True)
    assert "Idempotent-Replayed" in submit["responses"]["202"]["headers"]
    assert "Retry-After" in submit["responses"]["409"]["headers"]
    assert "Retry-After" in submit["responses"]["503"]["headers"]


def test_every_schema_reference_resolves():
    text = json.dumps(DOC)
    refs = {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}

    assert refs <= set(DOC["components"]["schemas"])


def test_routes_can_be_added_to_the_document():
    extra = RouteSpec(
        operation="get_balances",
        method="GET",
        path="/v1/accounts/{account_id}/balances",
        summary="Balances",
        description="Cash per currency.",
        scope="orders:read",
        parameters=(Parameter("account_id", "path", "The account.", {"type": "string"}),),
        success=(Success(200, "Balances.", "Balances"),),
        problems=(),
    )

    doc: Any = openapi_document(
        (*ORDER_ROUTES, extra), {**ORDER_SCHEMAS, "Balances": {"type": "object"}}
    )

    assert "get" in doc["paths"]["/v1/accounts/{account_id}/balances"]
    assert "Balances" in doc["components"]["schemas"]
