"""The route table of the order API: one ``RouteSpec`` per operation, and path matching.

The same specs drive dispatch (``OrderEntry``), the OpenAPI document
(``orders.openapi``) and its test: a route's request schema, parameters,
success responses and the problem codes it may answer are declared here
once. To add routes (the ledger's account routes), build more ``RouteSpec``
values and pass ``ORDER_ROUTES + more`` to ``openapi_document``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from orders import problems as p
from orders.api import ADMIN_SCOPE, READ_SCOPE, WRITE_SCOPE
from orders.problems import Problem, ProblemType
from orders.requests import ACCOUNT_ID_PATTERN, ORDER_SCHEMA, PAYMENT_SCHEMA, TRADING_STATE_SCHEMA
from orders.schema import BodySchema
from orders.views import OrderStatus

__all__ = [
    "ACCOUNT_ROUTES",
    "API_ROUTES",
    "GLOBAL_PROBLEMS",
    "ORDER_ROUTES",
    "Parameter",
    "RouteMatch",
    "RouteSpec",
    "Success",
    "match_route",
]


@dataclass(frozen=True, slots=True)
class Parameter:
    """A path or query parameter."""

    name: str
    location: Literal["path", "query"]
    description: str
    schema: Mapping[str, object]
    required: bool = True


@dataclass(frozen=True, slots=True)
class Success:
    """A success response: status, description, the component schema of its body."""

    status: int
    description: str
    schema_name: str
    headers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """One operation of the API; see the module docstring."""

    operation: str
    method: str
    path: str
    summary: str
    description: str
    scope: str | None
    success: tuple[Success, ...]
    problems: tuple[ProblemType, ...]
    request: BodySchema | None = None
    parameters: tuple[Parameter, ...] = ()
    needs_idempotency_key: bool = False

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.strip("/").split("/"))


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: RouteSpec
    path_params: Mapping[str, str]


GLOBAL_PROBLEMS: Final = (p.ROUTE_NOT_FOUND, p.METHOD_NOT_ALLOWED)
"""Problems any path may answer, before a route is known."""

_AUTH: Final = (p.TOKEN_MISSING, p.TOKEN_INVALID, p.TOKEN_EXPIRED, p.INSUFFICIENT_SCOPE)
_BODY: Final = (
    p.UNSUPPORTED_MEDIA_TYPE,
    p.BODY_TOO_LARGE,
    p.MALFORMED_JSON,
    p.BODY_NOT_OBJECT,
    p.DUPLICATE_FIELD,
    p.UNKNOWN_FIELD,
    p.MISSING_FIELD,
    p.WRONG_TYPE,
    p.INVALID_VALUE,
)
_DECIMALS: Final = (p.DECIMAL_NOT_STRING, p.INVALID_DECIMAL, p.DECIMAL_OUT_OF_RANGE, p.NOT_POSITIVE)
_IDEMPOTENCY: Final = (
    p.IDEMPOTENCY_KEY_MISSING,
    p.IDEMPOTENCY_KEY_INVALID,
    p.IDEMPOTENCY_KEY_REUSED,
    p.IDEMPOTENCY_REQUEST_IN_PROGRESS,
    p.IDEMPOTENCY_UNAVAILABLE,
)
_SUBMIT: Final = (p.ACCOUNT_FORBIDDEN, p.RATE_LIMITED, p.SUBMIT_UNAVAILABLE, p.STATE_UNAVAILABLE)
_ORDER_RISK: Final = (
    p.UNKNOWN_ACCOUNT,
    p.TRADING_HALTED,
    p.TRADING_REDUCING_ONLY,
    p.INSTRUMENT_NOT_TRADABLE,
    p.NO_REFERENCE_PRICE,
    p.REFERENCE_PRICE_STALE,
    p.PRICE_OUTSIDE_BAND,
    p.NOTIONAL_LIMIT_EXCEEDED,
    p.POSITION_LIMIT_EXCEEDED,
    p.CURRENCY_NOT_HELD,
    p.INSUFFICIENT_BUYING_POWER,
)

_IDEMPOTENCY_KEY_DOC: Final = (
    "Requires the `Idempotency-Key` header (1-255 printable ASCII characters, unique per "
    "request). A retry with the same key and the same body answers the first answer, byte "
    "for byte, with `Idempotent-Replayed: true`; keys are kept 24 h."
)

_ORDER_ID: Final = Parameter(
    "order_id", "path", "An order id (`ord_<transfer_id>`).", {"type": "string"}
)
_PAYMENT_ID: Final = Parameter(
    "payment_id", "path", "A payment id (`pay_<transfer_id>`).", {"type": "string"}
)

ORDER_ROUTES: Final[tuple[RouteSpec, ...]] = (
    RouteSpec(
        operation="submit_order",
        method="POST",
        path="/v1/orders",
        summary="Submit an order",
        description="Validate, check pre-trade risk and hand the order to the ledger. "
        "202 means the order is durable on the command bus. " + _IDEMPOTENCY_KEY_DOC,
        scope=WRITE_SCOPE,
        request=ORDER_SCHEMA,
        needs_idempotency_key=True,
        success=(
            Success(202, "The order is accepted and durable.", "OrderAccepted", ("Location",)),
        ),
        problems=(
            *_AUTH,
            *_IDEMPOTENCY,
            *_BODY,
            *_DECIMALS,
            p.UNKNOWN_SYMBOL,
            p.QUANTITY_NOT_LOT_MULTIPLE,
            p.PRICE_OFF_TICK,
            p.LIMIT_PRICE_REQUIRED,
            p.LIMIT_PRICE_FORBIDDEN,
            *_SUBMIT,
            *_ORDER_RISK,
        ),
    ),
    RouteSpec(
        operation="list_orders",
        method="GET",
        path="/v1/orders",
        summary="List an account's orders",
        description="Newest first, one page at a time; pass `next_cursor` as `cursor` for the "
        "next page (null on the last page).",
        scope=READ_SCOPE,
        parameters=(
            Parameter(
                "account_id",
                "query",
                "The account.",
                {"type": "string", "pattern": ACCOUNT_ID_PATTERN},
            ),
            Parameter(
                "status",
                "query",
                "Only orders in this status.",
                {"type": "string", "enum": [s.value for s in OrderStatus]},
                required=False,
            ),
            Parameter(
                "cursor",
                "query",
                "The `next_cursor` of the previous page.",
                {"type": "string"},
                required=False,
            ),
            Parameter(
                "limit",
                "query",
                "Page size (default 50).",
                {"type": "integer", "minimum": 1, "maximum": 200},
                required=False,
            ),
        ),
        success=(Success(200, "One page of orders.", "OrderPage"),),
        problems=(
            *_AUTH,
            p.ACCOUNT_FORBIDDEN,
            p.QUERY_PARAM_MISSING,
            p.QUERY_PARAM_INVALID,
            p.STATE_UNAVAILABLE,
        ),
    ),
    RouteSpec(
        operation="get_order",
        method="GET",
        path="/v1/orders/{order_id}",
        summary="Get an order",
        description="An order accepted but not yet seen by the ledger answers `accepted`.",
        scope=READ_SCOPE,
        parameters=(_ORDER_ID,),
        success=(Success(200, "The order.", "Order"),),
        problems=(*_AUTH, p.ORDER_NOT_FOUND, p.STATE_UNAVAILABLE),
    ),
    RouteSpec(
        operation="cancel_order",
        method="DELETE",
        path="/v1/orders/{order_id}",
        summary="Cancel an order",
        description="Idempotent by nature, no Idempotency-Key needed: every cancel of an order "
        "carries the same transfer id, which the ledger applies once. 202 while the order "
        "rests (the cancel is durable on the bus), 200 with the order once it is cancelled.",
        scope=WRITE_SCOPE,
        parameters=(_ORDER_ID,),
        success=(
            Success(202, "The cancel is durable on the command bus.", "CancelRequested"),
            Success(200, "The order is already cancelled.", "Order"),
        ),
        problems=(
            *_AUTH,
            p.ORDER_NOT_FOUND,
            p.ORDER_NOT_CANCELLABLE,
            p.SUBMIT_UNAVAILABLE,
            p.STATE_UNAVAILABLE,
        ),
    ),
    RouteSpec(
        operation="submit_payment",
        method="POST",
        path="/v1/payments",
        summary="Submit a payment",
        description="A deposit or a withdrawal. 202 means the payment is durable on the command "
        "bus; a withdrawal then runs the two-phase saga with the payment rail in the ledger. "
        + _IDEMPOTENCY_KEY_DOC,
        scope=WRITE_SCOPE,
        request=PAYMENT_SCHEMA,
        needs_idempotency_key=True,
        success=(
            Success(202, "The payment is accepted and durable.", "PaymentAccepted", ("Location",)),
        ),
        problems=(
            *_AUTH,
            *_IDEMPOTENCY,
            *_BODY,
            *_DECIMALS,
            p.UNKNOWN_CURRENCY,
            p.TOO_MANY_DECIMALS,
            *_SUBMIT,
            p.UNKNOWN_ACCOUNT,
            p.INSUFFICIENT_FUNDS,
        ),
    ),
    RouteSpec(
        operation="get_payment",
        method="GET",
        path="/v1/payments/{payment_id}",
        summary="Get a payment",
        description="A payment accepted but not yet seen by the ledger answers `accepted`.",
        scope=READ_SCOPE,
        parameters=(_PAYMENT_ID,),
        success=(Success(200, "The payment.", "Payment"),),
        problems=(*_AUTH, p.PAYMENT_NOT_FOUND, p.STATE_UNAVAILABLE),
    ),
    RouteSpec(
        operation="set_trading_state",
        method="POST",
        path="/admin/trading-state",
        summary="Set the trading state (the kill switch)",
        description="ACTIVE, HALTED or REDUCING, with a reason; audit-logged. Setting a state "
        "is idempotent by nature: no Idempotency-Key is needed.",
        scope=ADMIN_SCOPE,
        request=TRADING_STATE_SCHEMA,
        success=(Success(200, "The new trading state.", "TradingStatus"),),
        problems=(*_AUTH, *_BODY),
    ),
    RouteSpec(
        operation="get_trading_state",
        method="GET",
        path="/admin/trading-state",
        summary="Get the trading state",
        description="The current state, who set it, why and when.",
        scope=ADMIN_SCOPE,
        success=(Success(200, "The trading state.", "TradingStatus"),),
        problems=_AUTH,
    ),
    RouteSpec(
        operation="get_openapi",
        method="GET",
        path="/openapi.json",
        summary="This document",
        description="The OpenAPI 3.1 document of the API; no token needed.",
        scope=None,
        success=(Success(200, "The OpenAPI document.", "OpenApiDocument"),),
        problems=(),
    ),
)


_ACCOUNT_ID: Final = Parameter("account_id", "path", "The account.", {"type": "string"})
_ACCOUNT_READ_PROBLEMS: Final = (
    *_AUTH,
    p.ACCOUNT_FORBIDDEN,
    p.ACCOUNT_NOT_FOUND,
    p.STATE_UNAVAILABLE,
)
ACCOUNT_ROUTES: Final[tuple[RouteSpec, ...]] = (
    RouteSpec(
        operation="get_balances",
        method="GET",
        path="/v1/accounts/{account_id}/balances",
        summary="An account's cash balances in the ledger",
        description="Per currency: the posted balance, what pending reservations hold, and "
        "what is available (balance minus pending). Exact decimal strings.",
        scope=READ_SCOPE,
        parameters=(_ACCOUNT_ID,),
        success=(Success(200, "The balances.", "Balances"),),
        problems=_ACCOUNT_READ_PROBLEMS,
    ),
    RouteSpec(
        operation="get_positions",
        method="GET",
        path="/v1/accounts/{account_id}/positions",
        summary="An account's positions in the ledger",
        description="Per instrument: quantity, average cost, realised P&L and commission, "
        "exact, as of the ledger's last posting to the account (`ledger_seq`).",
        scope=READ_SCOPE,
        parameters=(_ACCOUNT_ID,),
        success=(Success(200, "The positions.", "Positions"),),
        problems=_ACCOUNT_READ_PROBLEMS,
    ),
    RouteSpec(
        operation="get_ledger",
        method="GET",
        path="/v1/accounts/{account_id}/ledger",
        summary="An account's ledger entries with running balances",
        description="Every entry posted to the account's ledger accounts (cash per currency, "
        "a position per instrument), newest first, each with its transaction and the balance "
        "of its asset just after it; exact decimal strings. One page at a time: pass "
        "`next_cursor` as `cursor` for the next page (null on the last page).",
        scope=READ_SCOPE,
        parameters=(
            _ACCOUNT_ID,
            Parameter(
                "asset",
                "query",
                "Only this asset: `cash:<currency>` or `inst:<symbol>`.",
                {"type": "string", "pattern": "^(cash|inst):.+$"},
                required=False,
            ),
            Parameter(
                "cursor",
                "query",
                "The `next_cursor` of the previous page.",
                {"type": "string"},
                required=False,
            ),
            Parameter(
                "limit",
                "query",
                "Page size (default 50).",
                {"type": "integer", "minimum": 1, "maximum": 200},
                required=False,
            ),
        ),
        success=(Success(200, "One page of entries.", "LedgerPage"),),
        problems=(*_ACCOUNT_READ_PROBLEMS, p.QUERY_PARAM_INVALID),
    ),
)
"""The ledger's account routes: the HTTP adapter answers them from the ledger store."""

API_ROUTES: Final = (*ORDER_ROUTES, *ACCOUNT_ROUTES)
"""Every route of the API listener, as the OpenAPI document lists them."""


def match_route(routes: Sequence[RouteSpec], method: str, path: str) -> RouteMatch | Problem:
    """Return the route and path parameters of a request, or 404/405."""
    segments = tuple(path.strip("/").split("/"))
    allowed: list[str] = []
    for route in routes:
        params = _match(route.segments, segments)
        if params is None:
            continue
        if route.method == method:
            return RouteMatch(route, params)
        allowed.append(route.method)
    if allowed:
        return p.METHOD_NOT_ALLOWED(
            f"{method} is not allowed on {path}", allow=", ".join(sorted(set(allowed)))
        )
    return p.ROUTE_NOT_FOUND(f"no route {path}")


def _match(template: tuple[str, ...], segments: tuple[str, ...]) -> dict[str, str] | None:
    if len(template) != len(segments):
        return None
    params: dict[str, str] = {}
    for want, got in zip(template, segments, strict=True):
        if want.startswith("{") and want.endswith("}"):
            if not got:
                return None
            params[want[1:-1]] = got
        elif want != got:
            return None
    return params
