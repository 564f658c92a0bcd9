"""The values exchanged between the HTTP adapter and ``OrderEntry``.

The adapter verifies the bearer token and hands over an ``ApiRequest``:
the caller (or why there is none), method, path, raw query string,
lower-case header names, the body bytes and the time. It sends back the
``ApiResponse`` as is. Everything between (routing, scopes, idempotency,
validation, risk, the bus) happens in ``OrderEntry``.

Scopes: ``orders:write`` submits and cancels, ``orders:read`` reads,
``admin`` sets the trading state. The token's ``accounts`` claim lists the
accounts the caller may act for; the wildcard ``*`` covers every account
and is meant for trusted back-office services only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from orders.types import AccountId, PrincipalId

__all__ = [
    "ADMIN_SCOPE",
    "ALL_ACCOUNTS",
    "READ_SCOPE",
    "WRITE_SCOPE",
    "ApiRequest",
    "ApiResponse",
    "Caller",
    "Unauthenticated",
]

WRITE_SCOPE: Final = "orders:write"
READ_SCOPE: Final = "orders:read"
ADMIN_SCOPE: Final = "admin"
ALL_ACCOUNTS: Final = "*"
"""The ``accounts`` claim entry that covers every account (back-office services)."""


@dataclass(frozen=True, slots=True)
class Caller:
    """A verified token: its subject, scopes and the accounts it may act for."""

    principal: PrincipalId
    scopes: frozenset[str]
    accounts: frozenset[str]

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def may_act_for(self, account_id: AccountId) -> bool:
        """Return whether the accounts claim lists ``account_id`` or the wildcard."""
        return account_id in self.accounts or ALL_ACCOUNTS in self.accounts


@dataclass(frozen=True, slots=True)
class Unauthenticated:
    """Why the adapter found no valid token; answered 401 with ``code``."""

    code: Literal["token_missing", "token_invalid", "token_expired"]
    detail: str


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One HTTP request as ``OrderEntry`` sees it.

    ``headers`` has lower-case names (the first value of a repeated
    header); ``query`` is the raw query string without ``?``; ``now_ns``
    is when the request arrived (UNIX ns).
    """

    caller: Caller | Unauthenticated
    method: str
    path: str
    now_ns: int
    headers: Mapping[str, str] = field(default_factory=dict)
    query: str = ""
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """What to send: status, headers (names lower-case) and the body bytes.

    ``code`` is the problem code of an error answer, for logs and metrics;
    it is not sent (the body carries it). A replayed answer has none.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    code: str | None = None

    def header(self, name: str) -> str | None:
        """Return the first value of header ``name`` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None
