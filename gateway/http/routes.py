"""HTTP routes: health, readiness, metrics, reference data, accounts, risk and the admin spike.

Each route has one small handler that finds the running gateway in
``request.app.state.gateway``. A refused request raises: ``AuthError`` for a
token the verifier refuses, ``HttpError`` for everything else. The handlers
in ``EXCEPTION_HANDLERS`` turn both into the documented JSON error body,
``{"error": {"code": ..., "message": ...}}``. A path no route serves, or a
method its route does not take, is an RFC 9457 problem (404
``route_not_found``, 405 ``method_not_allowed``), the same as the order
API's; no answer is ever built from the request's ``Host`` header.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.accounts.runtime import Accounts
from gateway.audit import audit
from gateway.auth import ADMIN_SCOPE, Principal
from gateway.errors import AuthError, HttpError
from gateway.marketdata.simulator import SimulatorSource
from gateway.readiness import check_readiness
from gateway.refdata import instrument_json
from gateway.service import Gateway

__all__ = ["EXCEPTION_HANDLERS", "ROUTES", "body_too_large"]

_MAX_SPIKE_RATE = 100.0
_MAX_SPIKE_VOL = 20.0
_MAX_SPIKE_DURATION_S = 3600.0
_MAX_BODY_BYTES = 4096
_PROBLEM_CONTENT_TYPE = "application/problem+json"
_PROBLEM_TITLES = {404: "No such route", 405: "Method not allowed"}
_MAX_SHOWN_PATH = 200


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return _json(status, {"error": {"code": code, "message": message}})


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpError)
    return _error(exc.status, exc.code, exc.message)


async def _unauthenticated(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    return _error(401, exc.code, exc.message)


async def _no_route(request: Request, exc: Exception) -> Response:
    # Starlette's router raises 404 for an unknown path and 405 (with Allow)
    # for a known path with another method.
    assert isinstance(exc, HTTPException)
    path = request.url.path[:_MAX_SHOWN_PATH]
    if exc.status_code == 405:
        error = HttpError(405, "method_not_allowed", f"{request.method} is not allowed on {path}")
    else:
        error = HttpError(404, "route_not_found", f"no route at {path}")
    problem = {
        "type": f"urn:tickgate:problem:{error.code}",
        "title": _PROBLEM_TITLES[error.status],
        "status": error.status,
        "code": error.code,
        "detail": error.message,
    }
    return Response(
        orjson.dumps(problem), error.status, exc.headers, media_type=_PROBLEM_CONTENT_TYPE
    )


def body_too_large(max_body_bytes: int) -> Response:
    """The 413 answer of a body over ``max_body_bytes`` (``gateway.http.bodies.BodyLimit``)."""
    return _error(413, "body_too_large", f"body must be at most {max_body_bytes} bytes")


EXCEPTION_HANDLERS: Mapping[Any, Any] = {
    HttpError: _refused,
    AuthError: _unauthenticated,
    404: _no_route,
    405: _no_route,
}
"""Starlette's ``exception_handlers`` for the routes below."""


def _gateway(request: Request) -> Gateway:
    gateway = request.app.state.gateway
    assert isinstance(gateway, Gateway)
    return gateway


def _principal(request: Request) -> Principal:
    # Raises HttpError (no token) or AuthError (a token the verifier refuses).
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HttpError(401, "token_missing", "send Authorization: Bearer <token>")
    gateway = _gateway(request)
    return gateway.verifier.verify(token, gateway.clock.now_ns() / 1e9)


def _account_row(request: Request) -> tuple[Accounts, int]:
    # The accounts and the row of the path's account, once the token may read it.
    principal = _principal(request)
    account = request.path_params["account"]
    if not principal.may_read_account(account):
        raise HttpError(403, "forbidden", "the token does not grant this account")
    accounts = _gateway(request).accounts
    if accounts is None or not accounts.positions.has_account(account):
        raise HttpError(404, "unknown_account", f"no positions for account {account}")
    return accounts, accounts.positions.account_ix(account)


async def healthz(request: Request) -> Response:
    """``GET /healthz``: liveness (200 once started, also when degraded), the feed and cache."""
    gateway = _gateway(request)
    if not gateway.is_ready:
        return _json(503, {"status": "unavailable"})
    source = gateway.source
    accounts = gateway.accounts
    cache_degraded = accounts is not None and accounts.cache.is_degraded
    body = {
        "status": "ok" if source.is_up and not cache_degraded else "degraded",
        "epoch": gateway.epoch,
        "feed": {"source": source.name, "is_up": source.is_up},
        "positions_cache": {
            "store": accounts.cache.name if accounts else None,
            "is_degraded": cache_degraded,
        },
        "clients": len(gateway.hub.connections),
        "instruments": len(gateway.master),
        "instruments_stale": int(gateway.book.is_stale.sum()),
        "accounts": accounts.positions.size_n if accounts else 0,
    }
    return _json(200, body)


async def readyz(request: Request) -> Response:
    """``GET /readyz``: readiness, the state of each dependency (503 when not ready)."""
    readiness = await check_readiness(_gateway(request))
    return _json(200 if readiness.is_ready else 503, readiness.to_json())


async def metrics(request: Request) -> Response:
    """``GET /metrics``: the Prometheus text format."""
    exposition = _gateway(request).metrics.exposition()
    return Response(exposition, media_type="text/plain; version=0.0.4")


async def instruments(request: Request) -> Response:
    """``GET /v1/instruments``: the instrument master."""
    return _json(200, [instrument_json(i) for i in _gateway(request).master])


async def account(request: Request) -> Response:
    """``GET /v1/accounts/{account}``: positions, totals and the latest risk."""
    accounts, a = _account_row(request)
    body = {"account": request.path_params["account"]}
    body.update(accounts.channel.account_fields(a))
    return _json(200, body)


async def account_risk(request: Request) -> Response:
    """``GET /v1/accounts/{account}/risk``: risk of one account, run now."""
    accounts, a = _account_row(request)
    now_ns = _gateway(request).clock.now_ns()
    report = await accounts.risk.run_once(np.array([a], dtype=np.int64), now_ns)
    return _json(200, accounts.channel.encoder.risk_fields(report, 0))


async def admin_spike(request: Request) -> Response:
    """``POST /admin/spike``: a volatility spike in the simulator (audited)."""
    principal = _principal(request)
    gateway = _gateway(request)
    try:
        return await _spike(request, principal, gateway)
    except HttpError as e:
        audit(
            "simulator.spike",
            ts_ns=gateway.clock.now_ns(),
            actor=principal.subject,
            outcome="refused",
            status=e.status,
            code=e.code,
        )
        raise


async def _spike(request: Request, principal: Principal, gateway: Gateway) -> Response:
    if not principal.has_scope(ADMIN_SCOPE):
        raise HttpError(403, "forbidden", f"the token lacks the {ADMIN_SCOPE} scope")
    source = gateway.source
    if not isinstance(source, SimulatorSource):
        raise HttpError(409, "spike_unavailable", f"the {source.name} source cannot spike")
    body = await request.body()
    if len(body) > _MAX_BODY_BYTES:
        raise HttpError(413, "body_too_large", f"body must be at most {_MAX_BODY_BYTES} bytes")
    try:
        spec = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        raise HttpError(400, "bad_json", "body is not valid JSON") from None
    rate, vol, duration_s = _parse_spike(spec)
    steps = source.spike(rate_multiplier=rate, vol_multiplier=vol, duration_s=duration_s)
    audit(
        "simulator.spike",
        ts_ns=gateway.clock.now_ns(),
        actor=principal.subject,
        outcome="started",
        rate_multiplier=rate,
        vol_multiplier=vol,
        duration_s=duration_s,
    )
    return _json(
        202,
        {
            "regime": "spike",
            "rate_multiplier": rate,
            "vol_multiplier": vol,
            "duration_s": duration_s,
            "steps": steps,
        },
    )


ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/v1/instruments", instruments, methods=["GET"]),
    Route("/v1/accounts/{account}", account, methods=["GET"]),
    Route("/v1/accounts/{account}/risk", account_risk, methods=["GET"]),
    Route("/admin/spike", admin_spike, methods=["POST"]),
]
"""The HTTP API; ``/ws`` is served beside it by ``gateway.ws.connection``."""


def _parse_spike(spec: object) -> tuple[float, float, float]:
    # The validated (rate, vol, duration); raises HttpError naming the first problem.
    if not isinstance(spec, dict):
        raise HttpError(400, "bad_request", "body must be a JSON object")
    limits = {
        "rate_multiplier": (10.0, _MAX_SPIKE_RATE),
        "vol_multiplier": (5.0, _MAX_SPIKE_VOL),
        "duration_s": (30.0, _MAX_SPIKE_DURATION_S),
    }
    unknown = set(spec) - set(limits)
    if unknown:
        raise HttpError(400, "bad_request", f"unknown fields: {', '.join(sorted(unknown))}")
    values = []
    for name, (default, maximum) in limits.items():
        value = spec.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise HttpError(400, "bad_request", f"{name} must be a number, was {value!r}")
        if not 0 < value <= maximum:
            raise HttpError(
                400, "bad_request", f"{name} must be within (0, {maximum:g}], was {value}"
            )
        values.append(float(value))
    return values[0], values[1], values[2]
