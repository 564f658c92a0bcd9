"""The OpenAPI 3.1 document, generated from the route specs and schema objects.

Request bodies come from the same ``BodySchema`` objects the handlers
validate with; each route's error responses list, per status, the problem
codes it may answer (``x-problem-codes``, and a ``code`` enum narrowed to
them), so the document names every code (``x-problem-types`` lists them
all, with status, title and whether a rejection is stored for replay).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Final

from orders.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPES, ProblemType
from orders.responses import (
    CANCEL_SCHEMA,
    ORDER_ACCEPTED_SCHEMA,
    ORDER_PAGE_SCHEMA,
    ORDER_SCHEMA,
    PAYMENT_ACCEPTED_SCHEMA,
    PAYMENT_SCHEMA,
    PROBLEM_SCHEMA,
    TRADING_STATUS_SCHEMA,
)
from orders.routes import GLOBAL_PROBLEMS, RouteSpec

__all__ = ["ORDER_SCHEMAS", "openapi_document"]

_DECIMAL: Final = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}
_LEDGER_ENTRY: Final = {
    "type": "object",
    "required": [
        "seq",
        "leg",
        "transfer_id",
        "kind",
        "asset",
        "amount",
        "balance",
        "posted_at",
    ],
    "properties": {
        "seq": {"type": "integer", "description": "The ledger transaction's sequence number."},
        "leg": {"type": "integer", "description": "The entry's number within its transaction."},
        "transfer_id": {"type": "string"},
        "kind": {"type": "string", "enum": ["deposit", "withdrawal", "fill"]},
        "asset": {"type": "string", "description": "`cash:<currency>` or `inst:<symbol>`."},
        "amount": _DECIMAL,
        "balance": {**_DECIMAL, "description": "The asset's balance just after this entry."},
        "posted_at": {"type": "string", "format": "date-time"},
    },
}
_ACCOUNT_SCHEMAS: Final[Mapping[str, Mapping[str, object]]] = {
    "Balances": {
        "type": "object",
        "required": ["account_id", "base_currency", "ledger_seq", "balances"],
        "properties": {
            "account_id": {"type": "string"},
            "base_currency": {"type": "string"},
            "ledger_seq": {"type": "integer"},
            "balances": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["currency", "balance", "pending", "available"],
                    "properties": {
                        "currency": {"type": "string"},
                        "balance": _DECIMAL,
                        "pending": _DECIMAL,
                        "available": _DECIMAL,
                    },
                },
            },
        },
    },
    "Positions": {
        "type": "object",
        "required": ["account_id", "ledger_seq", "positions"],
        "properties": {
            "account_id": {"type": "string"},
            "ledger_seq": {"type": "integer"},
            "positions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["symbol", "quantity", "avg_cost", "realised_pnl", "commission"],
                    "properties": {
                        "symbol": {"type": "string"},
                        "quantity": _DECIMAL,
                        "avg_cost": _DECIMAL,
                        "realised_pnl": _DECIMAL,
                        "commission": _DECIMAL,
                    },
                },
            },
        },
    },
    "LedgerPage": {
        "type": "object",
        "required": ["account_id", "data", "next_cursor"],
        "properties": {
            "account_id": {"type": "string"},
            "data": {"type": "array", "items": _LEDGER_ENTRY},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
}

ORDER_SCHEMAS: Final[Mapping[str, Mapping[str, object]]] = {
    "OrderAccepted": ORDER_ACCEPTED_SCHEMA,
    "Order": ORDER_SCHEMA,
    "OrderPage": ORDER_PAGE_SCHEMA,
    "PaymentAccepted": PAYMENT_ACCEPTED_SCHEMA,
    "Payment": PAYMENT_SCHEMA,
    "CancelRequested": CANCEL_SCHEMA,
    "TradingStatus": TRADING_STATUS_SCHEMA,
    "OpenApiDocument": {"type": "object"},
    "Problem": PROBLEM_SCHEMA,
    **_ACCOUNT_SCHEMAS,
}
"""Component schemas of the order routes' success bodies, and the problem body."""

_HEADERS: Final[Mapping[str, Mapping[str, object]]] = {
    "Location": {"description": "The URL of the created resource.", "schema": {"type": "string"}},
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    },
    "Idempotent-Replayed": {
        "description": "`true` when the answer is a replay of an earlier one.",
        "schema": {"type": "string", "enum": ["true"]},
    },
}
_RETRY_AFTER_STATUSES: Final = frozenset({409, 429, 503})


def openapi_document(
    routes: Sequence[RouteSpec],
    schemas: Mapping[str, Mapping[str, object]] = ORDER_SCHEMAS,
    *,
    title: str = "tickgate order API",
    version: str = "1",
) -> dict[str, object]:
    """Return the OpenAPI 3.1 document of ``routes``; ``schemas`` are the components."""
    paths: dict[str, dict[str, object]] = defaultdict(dict)
    component_schemas: dict[str, object] = {name: dict(s) for name, s in schemas.items()}
    for route in routes:
        if route.request is not None:
            component_schemas[route.request.name] = route.request.json_schema()
        paths[route.path][route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Errors are application/problem+json (RFC 9457) with a stable "
            "`code`. Money, quantities and prices are decimal strings.",
        },
        "paths": dict(paths),
        "components": {
            "schemas": component_schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A service token: `sub`, `scope` (orders:write, "
                    "orders:read, admin) and `accounts` (`*` covers every account).",
                }
            },
        },
        "x-problem-types": [_problem_type(t) for t in PROBLEM_TYPES],
        "x-global-problem-codes": [t.code for t in GLOBAL_PROBLEMS],
    }


def _problem_type(kind: ProblemType) -> dict[str, object]:
    return {
        "code": kind.code,
        "status": kind.status,
        "title": kind.title,
        "type": kind.type_uri,
        "stored_for_replay": kind.stage.value == "business",
    }


def _operation(route: RouteSpec) -> dict[str, object]:
    parameters: list[dict[str, object]] = [
        {
            "name": param.name,
            "in": param.location,
            "required": param.required or param.location == "path",
            "description": param.description,
            "schema": dict(param.schema),
        }
        for param in route.parameters
    ]
    if route.needs_idempotency_key:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": True,
                "description": "1-255 printable ASCII characters, unique per request.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        )
    responses: dict[str, object] = {}
    for success in route.success:
        headers = {name: dict(_HEADERS[name]) for name in success.headers}
        if route.needs_idempotency_key:
            headers["Idempotent-Replayed"] = dict(_HEADERS["Idempotent-Replayed"])
        responses[str(success.status)] = {
            "description": success.description,
            "headers": headers,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{success.schema_name}"}
                }
            },
        }
    by_status: dict[int, list[ProblemType]] = defaultdict(list)
    for kind in route.problems:
        by_status[kind.status].append(kind)
    for status in sorted(by_status):
        codes = [kind.code for kind in by_status[status]]
        response: dict[str, object] = {
            "description": "; ".join(f"`{k.code}`: {k.title}" for k in by_status[status]),
            "x-problem-codes": codes,
            "content": {
                PROBLEM_CONTENT_TYPE: {
                    "schema": {
                        "allOf": [
                            {"$ref": "#/components/schemas/Problem"},
                            {"properties": {"code": {"enum": codes}}},
                        ]
                    }
                }
            },
        }
        if status in _RETRY_AFTER_STATUSES:
            response["headers"] = {"Retry-After": dict(_HEADERS["Retry-After"])}
        responses[str(status)] = response
    operation: dict[str, object] = {
        "operationId": route.operation,
        "summary": route.summary,
        "description": route.description,
        "parameters": parameters,
        "responses": responses,
    }
    if route.scope is not None:
        operation["security"] = [{"bearer": []}]
        operation["x-required-scope"] = route.scope
    else:
        operation["security"] = []
    if route.request is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{route.request.name}"}
                }
            },
        }
    return operation
