"""The order API's listener: a thin Starlette adapter around ``orders.entry.OrderEntry``.

Every request is read (its body bounded by ``TICKGATE_API_MAX_BODY_BYTES``:
reading stops one byte past it), its bearer token verified into a
``Caller`` (or the reason there is none), and handed to ``OrderEntry`` as an
``ApiRequest``; the ``ApiResponse`` goes back byte for byte, so idempotent
replays stay identical. The account routes (``/v1/accounts/{id}/balances``,
``/positions`` and ``/ledger``) read the ledger directly and are answered
here, with the same problem+json errors. ``/healthz`` and ``/metrics`` are served on
this listener too, for a split deployment's probes.
"""

from __future__ import annotations

from typing import Final

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.errors import AuthError
from gateway.http.bodies import BodyLimit
from gateway.http.routes import healthz, metrics
from gateway.service import Gateway
from gateway.trading.ledgerreads import (
    balances_body,
    ledger_body,
    ledger_query,
    positions_body,
)
from ledger.errors import StoreUnavailable
from orders import problems
from orders.answers import json_response, problem_response
from orders.api import READ_SCOPE, ApiRequest, ApiResponse, Caller, Unauthenticated
from orders.problems import Problem
from orders.routes import ACCOUNT_ROUTES, match_route
from orders.types import AccountId, PrincipalId

__all__ = ["api_app"]

_METHODS: Final = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_RETRY_AFTER_S: Final = 1


def _encode(value: object) -> bytes:
    import orjson

    return orjson.dumps(value)


def _gateway(request: Request) -> Gateway:
    gateway = request.app.state.gateway
    assert isinstance(gateway, Gateway)
    return gateway


def _send(answer: ApiResponse) -> Response:
    response = Response(answer.body, answer.status)
    for name, value in answer.headers:
        response.headers.append(name, value)
    return response


def _problem(problem: Problem, *, retry_after_s: int | None = None) -> Response:
    return _send(problem_response(problem, _encode, retry_after_s=retry_after_s))


def _body_too_large(max_body_bytes: int) -> Response:
    return _problem(problems.BODY_TOO_LARGE(f"the body must be at most {max_body_bytes} bytes"))


def _caller(gateway: Gateway, request: Request) -> Caller | Unauthenticated:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return Unauthenticated("token_missing", "send Authorization: Bearer <token>")
    try:
        principal = gateway.verifier.verify(token.strip(), gateway.clock.now_ns() / 1e9)
    except AuthError as e:
        if e.code == "token_expired":
            return Unauthenticated("token_expired", e.message)
        return Unauthenticated("token_invalid", e.message)
    return Caller(PrincipalId(principal.subject), principal.scopes, frozenset(principal.accounts))


async def _bounded_body(request: Request, limit: int) -> bytes | None:
    # The body, or its first limit + 1 bytes (enough for a 413); None if the client left.
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


async def handle(request: Request) -> Response:
    """Every path of the API listener except the probes."""
    gateway = _gateway(request)
    trading = gateway.trading
    entry = trading.entry
    if not gateway.is_ready or entry is None:
        return _problem(
            problems.STATE_UNAVAILABLE("tickgate is starting or stopping"),
            retry_after_s=_RETRY_AFTER_S,
        )
    body = await _bounded_body(request, gateway.settings.api.max_body_bytes)
    if body is None:
        return Response(status_code=400)  # the client is gone; nobody reads this
    caller = _caller(gateway, request)
    account_route = match_route(ACCOUNT_ROUTES, request.method, request.url.path)
    if not isinstance(account_route, Problem):
        account = AccountId(account_route.path_params["account_id"])
        return await _account_route(
            gateway, caller, account_route.route.operation, account, request.url.query
        )
    headers: dict[str, str] = {}
    for name, value in request.headers.raw:
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    answer = await entry.handle(
        ApiRequest(
            caller=caller,
            method=request.method,
            path=request.url.path,
            now_ns=gateway.clock.now_ns(),
            headers=headers,
            query=request.url.query,
            body=body,
        )
    )
    return _send(answer)


async def _account_route(
    gateway: Gateway,
    caller: Caller | Unauthenticated,
    operation: str,
    account: AccountId,
    query: str,
) -> Response:
    if isinstance(caller, Unauthenticated):
        problem_of = {
            "token_missing": problems.TOKEN_MISSING,
            "token_invalid": problems.TOKEN_INVALID,
            "token_expired": problems.TOKEN_EXPIRED,
        }[caller.code]
        return _problem(problem_of(caller.detail))
    if not caller.has_scope(READ_SCOPE):
        return _problem(problems.INSUFFICIENT_SCOPE(f"the token lacks the {READ_SCOPE} scope"))
    if not caller.may_act_for(account):
        return _problem(problems.ACCOUNT_FORBIDDEN("the token may not act for this account"))
    if operation == "get_ledger":
        return await _ledger_route(gateway, account, query)
    try:
        clients = await gateway.trading.store.load_clients([account])
    except StoreUnavailable as e:
        return _problem(
            problems.STATE_UNAVAILABLE(f"the ledger cannot be read: {e}"),
            retry_after_s=_RETRY_AFTER_S,
        )
    client = clients.get(account)
    if client is None:
        return _problem(problems.ACCOUNT_NOT_FOUND(f"the ledger holds no account {account}"))
    if operation == "get_balances":
        body = balances_body(client)
    else:
        body = positions_body(client, gateway.master)
    return _send(json_response(200, body, _encode))


async def _ledger_route(gateway: Gateway, account: AccountId, query: str) -> Response:
    api = gateway.settings.api
    wanted = ledger_query(
        query,
        gateway.master,
        limit_default=api.list_limit_default,
        limit_max=api.list_limit_max,
    )
    if isinstance(wanted, Problem):
        return _problem(wanted)
    try:
        page = await gateway.trading.store.account_entries(
            account, asset=wanted.asset, cursor=wanted.cursor, limit=wanted.limit
        )
    except StoreUnavailable as e:
        return _problem(
            problems.STATE_UNAVAILABLE(f"the ledger cannot be read: {e}"),
            retry_after_s=_RETRY_AFTER_S,
        )
    except ValueError:
        return _problem(
            problems.QUERY_PARAM_INVALID("cursor is not one this API handed out", field="cursor")
        )
    if page is None:
        return _problem(problems.ACCOUNT_NOT_FOUND(f"the ledger holds no account {account}"))
    return _send(json_response(200, ledger_body(account, page, gateway.master), _encode))


def api_app(gateway: Gateway, *, lifespan: object = None) -> Starlette:
    """The API listener's app over ``gateway``, with the listener's ``lifespan``.

    A body whose ``Content-Length`` passes ``TICKGATE_API_MAX_BODY_BYTES`` is
    refused before it is read (``BodyLimit``), with the API's own problem.
    """
    limit = Middleware(
        BodyLimit, max_body_bytes=gateway.settings.api.max_body_bytes, refuse=_body_too_large
    )
    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/{path:path}", handle, methods=_METHODS),
        ],
        middleware=[limit],
        lifespan=lifespan,  # type: ignore[arg-type]  # Starlette's lifespan type, passed through
    )
    app.state.gateway = gateway
    return app
