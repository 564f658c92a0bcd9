"""JWT tokens: issuing dev tokens and verifying client tokens (HS256, RS256, ES256).

A token carries ``sub`` (the principal), ``accounts`` (the accounts it may
read), ``scope`` (space-separated, from ``KNOWN_SCOPES``), ``exp`` and
``iss``, and optionally ``aud``, ``iat`` and ``nbf``. Every claim is
type-checked: a malformed one makes the token ``token_invalid``, whatever
path it came by. Verification takes the current time as an argument, so the
session that calls it stays free of clocks.

Each verification key is pinned to one algorithm (``VerificationKey``): the
token's header picks a key by ``kid`` (or, without one, the key of its
``alg``), and the signature is checked with that key's algorithm only. So
``alg: none`` never verifies, and a token cannot make an RSA public key
serve as an HMAC secret. No I/O here: the dev secret file lives in
``devsecret.py``, the public key and JWKS files in ``jwtkeys.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import jwt

from gateway.errors import AuthError
from portfolio.types import AccountId

__all__ = [
    "ADMIN_SCOPE",
    "KNOWN_SCOPES",
    "ORDERS_READ_SCOPE",
    "ORDERS_WRITE_SCOPE",
    "PORTFOLIO_READ_SCOPE",
    "QUOTES_READ_SCOPE",
    "READ_SCOPE",
    "TRADE_SCOPE",
    "Algorithm",
    "Principal",
    "TokenVerifier",
    "VerificationKey",
    "issue_token",
]

ADMIN_SCOPE: Final = "admin"
QUOTES_READ_SCOPE: Final = "quotes:read"
PORTFOLIO_READ_SCOPE: Final = "portfolio:read"
ORDERS_WRITE_SCOPE: Final = "orders:write"
ORDERS_READ_SCOPE: Final = "orders:read"
READ_SCOPE: Final = "read"
"""``quotes:read`` and ``portfolio:read`` together, and the ``orders`` channel (the first scope)."""
TRADE_SCOPE: Final = "trade"
KNOWN_SCOPES: Final = (
    QUOTES_READ_SCOPE,
    PORTFOLIO_READ_SCOPE,
    ORDERS_WRITE_SCOPE,
    ORDERS_READ_SCOPE,
    ADMIN_SCOPE,
    READ_SCOPE,
    TRADE_SCOPE,
)
"""Every scope tickgate grants; ``issue_token`` (and ``tickgate token``) mint no other."""
DEFAULT_SCOPES: Final = (READ_SCOPE,)
_ALGORITHM: Final = "HS256"
Algorithm = Literal["HS256", "RS256", "ES256"]
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

    def may_read_quotes(self) -> bool:
        """Return whether the token has ``quotes:read`` (or ``read``)."""
        return QUOTES_READ_SCOPE in self.scopes or READ_SCOPE in self.scopes

    def may_read_account(self, account: str) -> bool:
        """Return whether the token has ``portfolio:read`` (or ``read``) and lists ``account``."""
        has_scope = PORTFOLIO_READ_SCOPE in self.scopes or READ_SCOPE in self.scopes
        return has_scope and account in self.accounts

    def may_read_orders(self, account: str) -> bool:
        """Return whether the token has ``orders:read`` (or ``read``) and lists ``account``."""
        has_scope = ORDERS_READ_SCOPE in self.scopes or READ_SCOPE in self.scopes
        return has_scope and account in self.accounts


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A key that verifies tokens of one ``algorithm`` only.

    ``key`` is the HMAC secret (``HS256``) or a ``cryptography`` public key
    (``RS256``: RSA; ``ES256``: EC on P-256). ``kid`` names it in a JWKS;
    ``None`` for the secret and a single public key file.
    """

    algorithm: Algorithm
    key: object
    kid: str | None = None


class TokenVerifier:
    """Verify tokens issued by ``issuer`` against a set of algorithm-pinned keys.

    ``secret`` adds an HS256 key (without ``kid``); ``public_keys`` the
    RS256 and ES256 ones. With ``audience`` set, a token must name it in
    ``aud``; without, a token that carries ``aud`` is refused.

    A service sends the same token with every request until it renews it,
    so the principal of a token whose signature and claims were checked is
    kept, keyed by the token's exact text, for at most ``cache_max`` tokens
    (the oldest goes first): the next request with it skips the signature
    check and the claims' parsing. Its time claims are checked against
    ``now_s`` on every call, cached or not, so a cached token still expires.
    Refused tokens are not kept.
    """

    def __init__(
        self,
        secret: str | None,
        *,
        issuer: str,
        leeway_s: float,
        audience: str | None = None,
        public_keys: Sequence[VerificationKey] = (),
        cache_max: int = 4096,
    ) -> None:
        if cache_max < 0:
            raise ValueError(f"cache_max must not be negative, was {cache_max}")
        keys = list(public_keys)
        if secret is not None:
            keys.append(VerificationKey(_ALGORITHM, secret))
        if not keys:
            raise ValueError("a token verifier needs at least one key")
        self._by_kid = {k.kid: k for k in keys if k.kid is not None}
        # Keys without a kid, by algorithm: the first of each wins.
        self._unnamed: dict[str, VerificationKey] = {}
        for k in keys:
            if k.kid is None:
                self._unnamed.setdefault(k.algorithm, k)
        self.algorithms = frozenset(k.algorithm for k in keys)
        self._issuer = issuer
        self._audience = audience
        self._leeway_s = leeway_s
        self._cache_max = cache_max
        self._verified: dict[str, tuple[Principal, float | None]] = {}

    def verify(self, token: str, now_s: float) -> Principal:
        """Return the token's principal, or raise ``AuthError``.

        Codes: ``token_invalid`` (malformed, an algorithm or key id that no
        key takes, bad signature, wrong issuer or audience, missing or
        ill-typed claims, not valid yet) and ``token_expired``.
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
        key = self._key_for(token)
        try:
            claims = jwt.decode(
                token,
                key.key,  # type: ignore[arg-type]  # a str secret or a cryptography public key
                algorithms=[key.algorithm],
                issuer=self._issuer,
                audience=self._audience,
                # Time claims are checked below against now_s, not the wall clock.
                options={
                    "require": ["sub", "exp", "iss", *(["aud"] if self._audience else [])],
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

    def _key_for(self, token: str) -> VerificationKey:
        # The header names the algorithm (and maybe the key); the key pins it.
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as e:
            raise AuthError("token_invalid", f"token refused: {e}") from e
        algorithm, kid = header.get("alg"), header.get("kid")
        if not isinstance(algorithm, str) or algorithm not in self.algorithms:
            accepted = ", ".join(sorted(self.algorithms))
            raise AuthError(
                "token_invalid",
                f"token algorithm must be one of {accepted}, was {_shown(algorithm)}",
            )
        if kid is not None and not isinstance(kid, str):
            raise AuthError("token_invalid", f"token kid must be a string, was {_shown(kid)}")
        key = self._by_kid.get(kid) if kid is not None else None
        if key is None:
            key = self._unnamed.get(algorithm)
        if key is None:
            raise AuthError("token_invalid", f"no key has the id {_shown(kid)}")
        if key.algorithm != algorithm:
            raise AuthError(
                "token_invalid",
                f"key {_shown(kid)} verifies {key.algorithm} tokens only, was {algorithm}",
            )
        return key


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
