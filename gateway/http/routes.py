"""HTTP routes: health, metrics, reference data, accounts, risk and the admin spike."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.auth import ADMIN_SCOPE, Principal
from gateway.errors import AuthError
from gateway.marketdata.simulator import SimulatorSource
from gateway.refdata import instrument_json

if TYPE_CHECKING:
    from gateway.app import Gateway, PortfolioRuntime

__all__ = ["http_routes"]

_MAX_SPIKE_RATE = 100.0
_MAX_SPIKE_VOL = 20.0
_MAX_SPIKE_DURATION_S = 3600.0
_MAX_BODY_BYTES = 4096


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return _json(status, {"error": {"code": code, "message": message}})


def http_routes(gateway: Gateway) -> list[Route]:
    """Build the routes bound to one running gateway."""

    async def healthz(request: Request) -> Response:
        if not gateway.is_ready:
            return _json(503, {"status": "unavailable"})
        source = gateway.source
        portfolio = gateway.portfolio
        cache_degraded = portfolio is not None and portfolio.cache.is_degraded
        body = {
            "status": "ok" if source.is_up and not cache_degraded else "degraded",
            "epoch": gateway.epoch,
            "feed": {"source": source.name, "is_up": source.is_up},
            "positions_cache": {
                "store": portfolio.cache.name if portfolio else None,
                "is_degraded": cache_degraded,
            },
            "clients": len(gateway.hub.connections),
            "instruments": len(gateway.master),
            "instruments_stale": int(gateway.book.is_stale.sum()),
            "accounts": portfolio.positions.size_n if portfolio else 0,
        }
        return _json(200, body)

    async def metrics(request: Request) -> Response:
        return Response(gateway.metrics.exposition(), media_type="text/plain; version=0.0.4")

    async def instruments(request: Request) -> Response:
        rows = [instrument_json(i) for i in gateway.master]
        return _json(200, rows)

    def authenticate(request: Request) -> Principal | Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _error(401, "token_missing", "send Authorization: Bearer <token>")
        try:
            return gateway.verifier.verify(token, gateway.clock.now_ns() / 1e9)
        except AuthError as e:
            return _error(401, e.code, e.message)

    def account_row(request: Request) -> tuple[PortfolioRuntime, int] | Response:
        principal = authenticate(request)
        if isinstance(principal, Response):
            return principal
        account = request.path_params["account"]
        if not principal.may_read_account(account):
            return _error(403, "forbidden", "the token does not grant this account")
        portfolio = gateway.portfolio
        if portfolio is None or not portfolio.positions.has_account(account):
            return _error(404, "unknown_account", f"no positions for account {account}")
        return portfolio, portfolio.positions.account_ix(account)

    async def account(request: Request) -> Response:
        found = account_row(request)
        if isinstance(found, Response):
            return found
        portfolio, a = found
        body = {"account": request.path_params["account"]}
        body.update(portfolio.channel.account_fields(a))
        return _json(200, body)

    async def account_risk(request: Request) -> Response:
        found = account_row(request)
        if isinstance(found, Response):
            return found
        portfolio, a = found
        report = await portfolio.risk.run_once(
            np.array([a], dtype=np.int64), gateway.clock.now_ns()
        )
        return _json(200, portfolio.channel.risk_report_fields(report, 0))

    async def admin_spike(request: Request) -> Response:
        principal = authenticate(request)
        if isinstance(principal, Response):
            return principal
        if not principal.has_scope(ADMIN_SCOPE):
            return _error(403, "forbidden", f"the token lacks the {ADMIN_SCOPE} scope")
        source = gateway.source
        if not isinstance(source, SimulatorSource):
            return _error(409, "spike_unavailable", f"the {source.name} source cannot spike")
        body = await request.body()
        if len(body) > _MAX_BODY_BYTES:
            return _error(413, "body_too_large", f"body must be at most {_MAX_BODY_BYTES} bytes")
        try:
            spec = orjson.loads(body or b"{}")
        except orjson.JSONDecodeError:
            return _error(400, "bad_json", "body is not valid JSON")
        parsed = _parse_spike(spec)
        if isinstance(parsed, str):
            return _error(400, "bad_request", parsed)
        rate, vol, duration_s = parsed
        steps = source.spike(rate_multiplier=rate, vol_multiplier=vol, duration_s=duration_s)
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

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/v1/instruments", instruments, methods=["GET"]),
        Route("/v1/accounts/{account}", account, methods=["GET"]),
        Route("/v1/accounts/{account}/risk", account_risk, methods=["GET"]),
        Route("/admin/spike", admin_spike, methods=["POST"]),
    ]


def _parse_spike(spec: object) -> tuple[float, float, float] | str:
    # Returns the validated (rate, vol, duration) or the message of the first problem.
    if not isinstance(spec, dict):
        return "body must be a JSON object"
    limits = {
        "rate_multiplier": (10.0, _MAX_SPIKE_RATE),
        "vol_multiplier": (5.0, _MAX_SPIKE_VOL),
        "duration_s": (30.0, _MAX_SPIKE_DURATION_S),
    }
    unknown = set(spec) - set(limits)
    if unknown:
        return f"unknown fields: {', '.join(sorted(unknown))}"
    values = []
    for name, (default, maximum) in limits.items():
        value = spec.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{name} must be a number, was {value!r}"
        if not 0 < value <= maximum:
            return f"{name} must be within (0, {maximum:g}], was {value}"
        values.append(float(value))
    return values[0], values[1], values[2]
