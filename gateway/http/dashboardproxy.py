"""The dashboard's same-origin route to the order API, in demo mode only.

``/dashboard/api/{path}`` answers as ``{path}`` on the order API's listener
would, for the six operations the page's order panels use: submit and read
orders (``POST``/``GET /v1/orders``, ``GET``/``DELETE /v1/orders/{id}``) and
payments (``POST /v1/payments``, ``GET /v1/payments/{id}``). The page cannot
call the API listener itself: it is another origin (another port), which
the page's Content-Security-Policy (``connect-src 'self'``) and the
browser's same-origin rule both keep it from reading.

It calls the process's own ``OrderEntry`` rather than the listener over
HTTP: the answer is the same ``ApiResponse`` the listener would send (the
listener is a thin adapter over the same object), with no HTTP client, no
second hop and no dependence on where, or whether, the listener is bound
(``TICKGATE_API_ENABLED=false`` leaves this route working). The request
passes on with the page's bearer token, the ``Idempotency-Key``,
``Content-Type`` and ``traceparent`` headers, the query string and the body
(read up to ``TICKGATE_API_MAX_BODY_BYTES`` + 1 bytes, so the API answers
``413``); the answer comes back with its status, headers
(``Content-Type``, ``Location``, ``Retry-After``, ``Allow``,
``Idempotent-Replayed``) and body unchanged, plus ``Cache-Control:
no-store``.

It refuses, as ``application/problem+json`` like every API answer:

- ``404 route_not_proxied``: any other method or path (the trading state,
  the OpenAPI document, the account routes);
- ``403 demo_token_required``: a valid token that is not a demo token (its
  subject is not the dashboard's, or its accounts claim names an account
  that is not a seeded demo account, or the wildcard): the route never
  speaks for a real principal;
- ``403 not_a_demo_account``: the body's or the query's ``account_id``
  names an account that is not a seeded demo account;
- ``503 state_unavailable`` while the gateway starts or stops, or when it
  has no order entry.

A missing, invalid or expired token is the API's own ``401``, answered by
``OrderEntry``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Final
from urllib.parse import parse_qs

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from gateway.auth import Principal
from gateway.errors import AuthError
from gateway.service import Gateway
from orders import problems
from orders.answers import problem_response
from orders.api import ApiRequest, ApiResponse, Caller, Unauthenticated
from orders.problems import Problem, ProblemType
from orders.routes import ORDER_ROUTES, match_route
from orders.types import PrincipalId

__all__ = [
    "DEMO_TOKEN_REQUIRED",
    "DemoAccounts",
    "FORWARDED_HEADERS",
    "NOT_A_DEMO_ACCOUNT",
    "PROXIED_OPERATIONS",
    "PROXY_METHODS",
    "PROXY_PREFIX",
    "ROUTE_NOT_PROXIED",
    "OrderApiProxy",
]

logger = logging.getLogger(__name__)

PROXY_PREFIX: Final = "/dashboard/api"
"""``/dashboard/api/v1/orders`` answers as ``/v1/orders`` on the API listener."""

PROXY_METHODS: Final = ["GET", "POST", "PUT", "PATCH", "DELETE"]
"""Methods the route takes; the ones no proxied operation has answer ``route_not_proxied``."""

PROXIED_OPERATIONS: Final = frozenset(
    {
        "submit_order",
        "list_orders",
        "get_order",
        "cancel_order",
        "submit_payment",
        "get_payment",
    }
)
"""The operations of ``orders.routes`` the page may reach (by ``RouteSpec.operation``)."""

FORWARDED_HEADERS: Final = ("content-type", "idempotency-key", "traceparent")
"""The request headers ``OrderEntry`` reads; no other header (cookies...) passes."""

ROUTE_NOT_PROXIED: Final = ProblemType(
    "route_not_proxied", 404, "The dashboard does not forward this request"
)
DEMO_TOKEN_REQUIRED: Final = ProblemType(
    "demo_token_required", 403, "Only a demo token may use the dashboard's route"
)
NOT_A_DEMO_ACCOUNT: Final = ProblemType(
    "not_a_demo_account", 403, "The account is not a demo account"
)

DemoAccounts = Callable[[Gateway], Collection[str]]
"""The seeded demo accounts of a running gateway."""

_RETRY_AFTER_S: Final = 1
_MAX_SHOWN_CHARS: Final = 64


class OrderApiProxy:
    """``/dashboard/api/{path}``; see the module docstring.

    ``demo_subject`` is the subject of the tokens ``/dashboard/token`` issues;
    ``demo_accounts`` returns the seeded demo accounts of a running gateway.
    """

    def __init__(
        self,
        *,
        demo_subject: str,
        demo_accounts: DemoAccounts,
        max_body_bytes: int,
    ) -> None:
        self._subject = demo_subject
        self._demo_accounts = demo_accounts
        self._max_body_bytes = max_body_bytes

    async def handle(self, request: Request) -> Response:
        gateway = request.app.state.gateway
        assert isinstance(gateway, Gateway)
        path = "/" + request.path_params["path"]
        matched = match_route(ORDER_ROUTES, request.method, path)
        if isinstance(matched, Problem) or matched.route.operation not in PROXIED_OPERATIONS:
            return _problem(
                ROUTE_NOT_PROXIED(
                    f"{request.method} {path[:_MAX_SHOWN_CHARS]} is not forwarded: only the "
                    "order and payment routes of the order ticket and the blotter are"
                )
            )
        entry = gateway.trading.entry
        if not gateway.is_ready or entry is None:
            return _problem(
                problems.STATE_UNAVAILABLE("tickgate is starting or stopping"),
                retry_after_s=_RETRY_AFTER_S,
            )
        body = await _bounded_body(request, self._max_body_bytes)
        if body is None:
            return Response(status_code=400)  # the client is gone; nobody reads this
        caller = _caller(gateway, request)
        demo = set(self._demo_accounts(gateway))
        if isinstance(caller, Principal):
            foreign = [a for a in caller.accounts if a not in demo]
            if caller.subject != self._subject or foreign:
                logger.debug(
                    "dashboard proxy: refused a token that is not a demo token",
                    extra={"event": "dashboard.token_refused"},
                )
                return _problem(
                    DEMO_TOKEN_REQUIRED(
                        "the dashboard forwards only the tokens /dashboard/token issues"
                    )
                )
        named = _named_accounts(request.url.query, body)
        outside = [a for a in named if a not in demo]
        if outside:
            return _problem(
                NOT_A_DEMO_ACCOUNT(
                    f"{outside[0][:_MAX_SHOWN_CHARS]} is not one of this gateway's demo accounts"
                )
            )
        # Present but empty is not absent: an empty key is the API's idempotency_key_invalid.
        headers = {
            name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers
        }
        answer = await entry.handle(
            ApiRequest(
                caller=_as_caller(caller),
                method=request.method,
                path=path,
                now_ns=gateway.clock.now_ns(),
                headers=headers,
                query=request.url.query,
                body=body,
            )
        )
        return _send(answer)


def _caller(gateway: Gateway, request: Request) -> Principal | Unauthenticated:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return Unauthenticated("token_missing", "send Authorization: Bearer <token>")
    try:
        return gateway.verifier.verify(token.strip(), gateway.clock.now_ns() / 1e9)
    except AuthError as e:
        if e.code == "token_expired":
            return Unauthenticated("token_expired", e.message)
        return Unauthenticated("token_invalid", e.message)


def _as_caller(caller: Principal | Unauthenticated) -> Caller | Unauthenticated:
    if isinstance(caller, Unauthenticated):
        return caller
    return Caller(PrincipalId(caller.subject), caller.scopes, frozenset(caller.accounts))


def _named_accounts(query: str, body: bytes) -> list[str]:
    # The account_id values of the query and of a JSON object body. Anything
    # else (no such field, a body that is not JSON) names no account here;
    # OrderEntry refuses a malformed request itself.
    try:
        fields = parse_qs(query, keep_blank_values=True, max_num_fields=16)
    except ValueError:
        fields = {}  # too many fields: OrderEntry answers query_param_invalid
    named = list(fields.get("account_id", []))
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("account_id"), str):
        named.append(parsed["account_id"])
    return named


async def _bounded_body(request: Request, limit: int) -> bytes | None:
    # The body, or its first limit + 1 bytes (enough for the API's 413); None if the client left.
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                break
    except ClientDisconnect:
        return None
    return b"".join(chunks)[: limit + 1]


def _send(answer: ApiResponse) -> Response:
    response = Response(answer.body, answer.status)
    for name, value in answer.headers:
        response.headers.append(name, value)
    response.headers["cache-control"] = "no-store"
    return response


def _problem(problem: Problem, *, retry_after_s: int | None = None) -> Response:
    return _send(problem_response(problem, orjson.dumps, retry_after_s=retry_after_s))
