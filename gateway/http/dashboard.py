"""The browser dashboard: the page at ``/``, its static files, and its demo routes.

The page is static: HTML, CSS and native JavaScript modules in ``static/``,
shipped as package data and read into memory once, when the routes are
built. It speaks ``/ws`` as any client does and reads the HTTP API, so it
needs nothing from the server beyond these routes:

- ``GET /`` and ``GET /static/{name}``: the files, with a strict
  Content-Security-Policy (everything from this origin only, no inline
  script or style) and ``Cache-Control: no-cache`` with an ``ETag``, so a
  browser revalidates (a ``304``) instead of running an old script after an
  upgrade;
- ``GET /dashboard/config``: what the page needs to know about this gateway
  (demo mode, the demo accounts, whether the order panels work, the
  heartbeat interval);
- ``POST /dashboard/token``, in demo mode only: a short-lived token for one
  seeded demo account (its ``portfolio`` and ``orders`` channels, and its
  orders and payments through the route below), or a 30-second ``admin``
  token for the simulator spike. The signing secret stays here; only
  tokens leave;
- ``/dashboard/api/{path}``, in demo mode only: the order API for the
  page's ticket and blotter, same-origin (``dashboardproxy.py``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.auth import ADMIN_SCOPE, READ_SCOPE, issue_token
from gateway.devsecret import jwt_secret
from gateway.errors import HttpError
from gateway.http.dashboardproxy import PROXY_METHODS, PROXY_PREFIX, OrderApiProxy
from gateway.marketdata.simulator import SimulatorSource
from gateway.service import Gateway
from gateway.settings import DashboardSettings, Settings
from orders.api import READ_SCOPE as ORDERS_READ_SCOPE
from orders.api import WRITE_SCOPE as ORDERS_WRITE_SCOPE

__all__ = [
    "ACCOUNT_TOKEN_SCOPES",
    "CONTENT_SECURITY_POLICY",
    "DEMO_SUBJECT",
    "SPIKE_TOKEN_TTL_S",
    "STATIC_DIR",
    "StaticFile",
    "dashboard_routes",
    "load_static_files",
]

logger = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).with_name("static")
"""The page's files, shipped as package data."""

CONTENT_SECURITY_POLICY: Final = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        # 'self' covers ws:// and wss:// on this host and port.
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
"""Everything from this origin, nothing inline, no framing."""

DEMO_SUBJECT: Final = "dashboard-demo"
"""The ``sub`` of every demo token: one subject, so a page can renew its token
with ``auth`` (the protocol refuses a renewal for another subject) and switch
accounts by renewing."""

ACCOUNT_TOKEN_SCOPES: Final = (READ_SCOPE, ORDERS_READ_SCOPE, ORDERS_WRITE_SCOPE)
"""The scopes of a demo account token: the account's ``portfolio`` and ``orders``
channels (``read``), and its orders and payments through ``/dashboard/api``."""

SPIKE_TOKEN_TTL_S: Final = 30.0
"""Lifetime of a demo ``admin`` token: long enough for one spike request."""

_MEDIA_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
_PAGE: Final = "index.html"
_SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_MAX_TOKEN_BODY_BYTES: Final = 1024
_CONFIG_ACCOUNTS: Final = 100


@dataclass(frozen=True, slots=True)
class StaticFile:
    """One file of the page, held in memory with its validator."""

    body: bytes
    media_type: str
    etag: str


def load_static_files(directory: Path = STATIC_DIR) -> dict[str, StaticFile]:
    """Read every servable file of ``directory`` (by name; subdirectories are not served)."""
    files = {}
    for path in sorted(directory.iterdir()):
        media_type = _MEDIA_TYPES.get(path.suffix)
        if media_type is None or not path.is_file():
            continue
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        files[path.name] = StaticFile(body, media_type, etag)
    if _PAGE not in files:
        raise FileNotFoundError(f"the dashboard page {directory / _PAGE} is missing")
    return files


def dashboard_routes(settings: Settings) -> list[BaseRoute]:
    """The dashboard's routes: none when it is off, the token route only in demo mode."""
    dashboard = settings.dashboard
    if not dashboard.enabled:
        return []
    files = load_static_files()
    is_demo = dashboard.is_demo(settings.feed.source)
    routes: list[BaseRoute] = [
        Route("/", _FileEndpoint(files, _PAGE).handle, methods=["GET"]),
        Route("/static/{name}", _FileEndpoint(files, None).handle, methods=["GET"]),
        Route(
            "/dashboard/config", _ConfigEndpoint(settings, is_demo=is_demo).handle, methods=["GET"]
        ),
    ]
    if is_demo:
        minter = _DemoTokens(jwt_secret(settings), dashboard, issuer=settings.auth.issuer)
        proxy = OrderApiProxy(
            demo_subject=DEMO_SUBJECT,
            demo_accounts=_demo_accounts,
            max_body_bytes=settings.api.max_body_bytes,
        )
        routes += [
            Route("/dashboard/token", minter.handle, methods=["POST"]),
            Route(f"{PROXY_PREFIX}/{{path:path}}", proxy.handle, methods=PROXY_METHODS),
        ]
    logger.info(
        "dashboard at %s://%s:%d/ (demo mode %s)",
        settings.tls.scheme,
        settings.host,
        settings.port,
        "on: /dashboard/token hands out demo tokens, /dashboard/api reaches the order API"
        if is_demo
        else "off",
        extra={"event": "dashboard.serving"},
    )
    return routes


class _FileEndpoint:
    # GET / (the page itself) or GET /static/{name} (name=None).

    def __init__(self, files: Mapping[str, StaticFile], name: str | None) -> None:
        self._files = files
        self._name = name

    async def handle(self, request: Request) -> Response:
        name = self._name or request.path_params["name"]
        file = self._files.get(name)
        if file is None:
            raise HTTPException(404)
        headers = {**_SECURITY_HEADERS, "Cache-Control": "no-cache", "ETag": file.etag}
        if file.etag in _etags(request.headers.get("if-none-match", "")):
            return Response(status_code=304, headers=headers)
        return Response(file.body, headers=headers, media_type=file.media_type)


def _etags(header: str) -> set[str]:
    # The entity tags of If-None-Match; weak ones compare equal (RFC 9110 13.1.2).
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def _gateway(request: Request) -> Gateway:
    gateway = request.app.state.gateway
    assert isinstance(gateway, Gateway)
    return gateway


def _json(status: int, body: object) -> Response:
    return Response(
        orjson.dumps(body),
        status,
        {"Cache-Control": "no-store"},
        media_type="application/json",
    )


def _demo_accounts(gateway: Gateway) -> list[str]:
    # Demo accounts exist only when the book was seeded, not read from a file.
    accounts = gateway.accounts
    if accounts is None or gateway.settings.portfolio.positions_file is not None:
        return []
    return sorted(accounts.positions.accounts)


class _ConfigEndpoint:
    # GET /dashboard/config.

    def __init__(self, settings: Settings, *, is_demo: bool) -> None:
        self._settings = settings
        self._is_demo = is_demo

    async def handle(self, request: Request) -> Response:
        gateway = _gateway(request)
        accounts = _demo_accounts(gateway) if self._is_demo else []
        ws = self._settings.ws
        return _json(
            200,
            {
                "demo": self._is_demo,
                "spike": self._is_demo and isinstance(gateway.source, SimulatorSource),
                "orders": self._is_demo and gateway.trading.entry is not None,
                "accounts": accounts[:_CONFIG_ACCOUNTS],
                "accounts_total": len(accounts),
                "anonymous_quotes": self._settings.auth.allow_anonymous_quotes,
                "heartbeat_interval_s": ws.heartbeat_interval_s,
                "max_subscriptions": ws.max_subscriptions,
            },
        )


class _DemoTokens:
    # POST /dashboard/token: {"account": "DEMO-0001"} (optionally "scope": "read"),
    # or {"scope": "admin"}.

    def __init__(self, secret: str, settings: DashboardSettings, *, issuer: str) -> None:
        self._secret = secret
        self._ttl_s = settings.demo_token_ttl_s
        self._issuer = issuer

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > _MAX_TOKEN_BODY_BYTES:
            raise HttpError(
                413, "body_too_large", f"body must be at most {_MAX_TOKEN_BODY_BYTES} bytes"
            )
        try:
            spec = orjson.loads(body or b"{}")
        except orjson.JSONDecodeError:
            raise HttpError(400, "bad_json", "body is not valid JSON") from None
        scope, account = _parse_token_request(spec)
        gateway = _gateway(request)
        scopes: tuple[str, ...] = (scope,) if scope is not None else ACCOUNT_TOKEN_SCOPES
        if scope == ADMIN_SCOPE:
            if not isinstance(gateway.source, SimulatorSource):
                raise HttpError(
                    409, "spike_unavailable", f"the {gateway.source.name} source cannot spike"
                )
            accounts, ttl_s = [], SPIKE_TOKEN_TTL_S
            logger.info(
                "dashboard: issued a demo admin token for a spike",
                extra={"event": "dashboard.admin_token_issued"},
            )
        else:
            assert account is not None
            if account not in _demo_accounts(gateway):
                raise HttpError(404, "unknown_account", f"{account[:64]} is not a demo account")
            accounts, ttl_s = [account], self._ttl_s
        now_s = gateway.clock.now_ns() / 1e9
        token = issue_token(
            self._secret,
            subject=DEMO_SUBJECT,
            accounts=accounts,
            scopes=scopes,
            ttl_s=ttl_s,
            now_s=now_s,
            issuer=self._issuer,
        )
        return _json(
            200,
            {
                "token": token,
                "sub": DEMO_SUBJECT,
                "accounts": accounts,
                "scopes": sorted(scopes),
                "exp": int(now_s + ttl_s),
            },
        )


def _parse_token_request(spec: object) -> tuple[str | None, str | None]:
    # (scope, account): scope None asks for an account token with
    # ACCOUNT_TOKEN_SCOPES. Raises HttpError naming the first problem.
    if not isinstance(spec, dict):
        raise HttpError(400, "bad_request", "body must be a JSON object")
    unknown = set(spec) - {"account", "scope"}
    if unknown:
        raise HttpError(400, "bad_request", f"unknown fields: {', '.join(sorted(unknown))}")
    scope, account = spec.get("scope"), spec.get("account")
    if scope == ADMIN_SCOPE:
        if account is not None:
            raise HttpError(400, "bad_request", "an admin token reads no account")
        return scope, None
    if scope is not None and scope != READ_SCOPE:
        raise HttpError(400, "bad_request", f"scope must be read or admin, was {scope!r:.64}")
    if not isinstance(account, str) or not account:
        raise HttpError(400, "bad_request", "account must be a non-empty string")
    return scope, account
