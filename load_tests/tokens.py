"""Tokens for the deployment under test, minted from its signing secret."""

from __future__ import annotations

import time
from collections.abc import Sequence

import jwt

__all__ = ["mint_token"]


def mint_token(
    secret: str, *, subject: str, accounts: Sequence[str], scope: str, issuer: str
) -> str:
    """An HS256 token with the claims the protocol documents, valid for a day."""
    now = int(time.time())
    claims = {
        "sub": subject,
        "accounts": list(accounts),
        "scope": scope,
        "iss": issuer,
        "iat": now,
        "exp": now + 86_400,
    }
    return jwt.encode(claims, secret, algorithm="HS256")
