"""JWT tokens: issuing dev tokens and verifying client tokens (HS256).

A token carries ``sub`` (the principal), ``accounts`` (the accounts it may
read), ``scope`` (space-separated, from ``KNOWN_SCOPES``), ``exp`` and
``iss``, and optionally ``iat`` and ``nbf``. Every claim is type-checked: a
malformed one makes the token ``token_invalid``, whatever path it came by.
Verification takes the current time as an argument, so the session that
calls it stays free of clocks. No I/O here: the dev secret
file lives in ``devsecret.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import jwt

from gateway.errors import AuthError
from portfolio.types import AccountId

__all__ = [
    "ADMIN_SCOPE",
    "KNOWN_SCOPES",
    "ORDERS_READ_SCOPE",
    "ORDERS_WRITE_SCOPE",
    "READ_SCOPE",
    "TRADE_SCOPE",
    "Principal",
    "TokenVerifier",
    "issue_token",
]

ADMIN_SCOPE: Final = "admin"
READ_SCOPE: Final = "read"
TRADE_SCOPE: Final = "trade"
ORDERS_WRITE_SCOPE: Final = "orders:write"
ORDERS_READ_SCOPE: Final = "orders:read"
KNOWN_SCOPES: Final = (
    READ_SCOPE,
    TRADE_SCOPE,
    ADMIN_SCOPE,
    ORDERS_WRITE_SCOPE,
    ORDERS_READ_SCOPE,
)
"""Every scope tickgate grants; ``issue_token`` (and ``tickgate token``) mint no other."""
DEFAULT_SCOPES: Final = (READ_SCOPE,)
_ALGORITHM: Final = "HS256"
# NumericDate claims (RFC 7519 2) must lie within [0, 9999-12-31T23:59:59Z]:
# the range a datetime holds, so no later conversion can overflow.
_MAX_NUMERIC_DATE_S: Final = 253_402_300_799


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified token speaks for."""

    subject: str
    accounts: frozenset[AccountId]
    scopes: frozenset[str]
    expires_at_s: int

    def has_scope(self, scope: str) -> bool:
        """Return whether the token grants ``scope``."""
        return scope in self.scopes

    def may_read_account(self, account: str) -> bool:
        """Return whether the token has the ``read`` scope and lists ``account``."""
        return READ_SCOPE in self.scopes and account in self.accounts


class TokenVerifier:
    """Verify HS256 tokens signed with one secret and issued by ``issuer``.

    A service sends the same token with every request until it renews it,
    so the principal of a token whose signature and claims were checked is
    kept, keyed by the token's exact text, for at most ``cache_max`` tokens
    (the oldest goes first): the next request with it skips the HMAC and
    the claims' parsing. Its time claims are checked against ``now_s`` on
    every call, cached or not, so a cached token still expires. Refused
    tokens are not kept.
    """

    def __init__(self, secret: str, *, issuer: str, leeway_s: float, cache_max: int = 4096) -> None:
        if cache_max < 0:
            raise ValueError(f"cache_max must not be negative, was {cache_max}")
        self._secret = secret
        self._issuer = issuer
        self._leeway_s = leeway_s
        self._cache_max = cache_max
        self._verified: dict[str, tuple[Principal, float | None]] = {}

    def verify(self, token: str, now_s: float) -> Principal:
        """Return the token's principal, or raise ``AuthError``.

        Codes: ``token_invalid`` (malformed, bad signature, wrong issuer,
        missing or ill-typed claims) and ``token_expired``.
        """
        verified = self._verified.get(token)
        if verified is None:
            verified = self._decode(token)
            if self._cache_max:
                if len(self._verified) >= self._cache_max:
                    del self._verified[next(iter(self._verified))]
                self._verified[token] = verified
        principal, not_before = verified
        if not_before is not None and now_s + self._leeway_s < not_before:
            raise AuthError("token_invalid", f"token is not valid before {not_before:g}")
        if now_s >= principal.expires_at_s + self._leeway_s:
            raise AuthError("token_expired", f"token expired at {principal.expires_at_s}")
        return principal

    def _decode(self, token: str) -> tuple[Principal, float | None]:
        # The signature and the claims' types; the times are left to verify().
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                issuer=self._issuer,
                # Time claims are checked below against now_s, not the wall clock.
                options={
                    "require": ["sub", "exp", "iss"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidTokenError as e:
            raise AuthError("token_invalid", f"token refused: {e}") from e
        principal = _principal_from_claims(claims)
        not_before = _numeric_date(claims, "nbf")
        _numeric_date(claims, "iat")  # not checked against the time, but typed
        return principal, not_before

    def is_expired(self, principal: Principal, now_s: float) -> bool:
        """Return whether a previously verified principal has expired by ``now_s``."""
        return now_s >= principal.expires_at_s + self._leeway_s


def _numeric_date(claims: dict[str, object], name: str) -> float | None:
    # The claim as seconds, None when absent; raises AuthError when malformed.
    value = claims.get(name)
    if value is None and name not in claims:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= _MAX_NUMERIC_DATE_S  # also false for NaN
    ):
        raise AuthError(
            "token_invalid",
            f"claim {name} must be a number of seconds within [0, {_MAX_NUMERIC_DATE_S}],"
            f" was {_shown(value)}",
        )
    return float(value)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _principal_from_claims(claims: dict[str, object]) -> Principal:
    subject = claims["sub"]
    exp = _numeric_date(claims, "exp")
    assert exp is not None  # required by the decoder
    accounts = claims.get("accounts", [])
    scope = claims.get("scope", "")
    if not isinstance(subject, str) or not subject:
        raise AuthError("token_invalid", "claim sub must be a non-empty string")
    if not isinstance(accounts, list) or not all(isinstance(a, str) and a for a in accounts):
        raise AuthError("token_invalid", "claim accounts must be a list of non-empty strings")
    if isinstance(scope, str):
        scopes = scope.split()
    elif isinstance(scope, list) and all(isinstance(s, str) for s in scope):
        scopes = scope
    else:
        raise AuthError("token_invalid", "claim scope must be a string or a list of strings")
    return Principal(
        subject=subject,
        accounts=frozenset(AccountId(a) for a in accounts),
        scopes=frozenset(scopes),
        expires_at_s=int(exp),
    )


def issue_token(
    secret: str,
    *,
    subject: str,
    accounts: Iterable[str],
    scopes: Iterable[str],
    ttl_s: float,
    now_s: float,
    issuer: str,
) -> str:
    """Sign a token for ``subject`` valid for ``ttl_s`` seconds from ``now_s``.

    Raises ``ValueError`` for a non-positive ``ttl_s`` or a scope not in ``KNOWN_SCOPES``.
    """
    if ttl_s <= 0:
        raise ValueError(f"ttl_s must be positive, was {ttl_s}")
    granted = set(scopes)
    unknown = sorted(granted - set(KNOWN_SCOPES))
    if unknown:
        raise ValueError(
            f"unknown scope {', '.join(unknown)}; known scopes: {', '.join(KNOWN_SCOPES)}"
        )
    claims = {
        "sub": subject,
        "accounts": sorted(set(accounts)),
        "scope": " ".join(sorted(granted)),
        "iat": int(now_s),
        "exp": int(now_s + ttl_s),
        "iss": issuer,
    }
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)
