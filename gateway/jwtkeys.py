"""The token verifier's keys: the signing secret, a public key file and a JWKS file.

Each public key is pinned to the one algorithm its type allows: an RSA key
(at least 2048 bits) verifies RS256 only, an EC key on P-256 ES256 only. A
JWKS entry needs a unique ``kid``; its ``alg``, when given, must be that
algorithm, and its ``use``, when given, ``sig``. A file that breaks any of
these rules stops the gateway with a ``SettingsError`` naming its key, so a
key is never silently skipped. The files are read once, at start:
rotating keys means editing the JWKS (new key in, old key out after the
last token it signed expires) and restarting.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from gateway.auth import Algorithm, TokenVerifier, VerificationKey
from gateway.devsecret import jwt_secret
from gateway.errors import SettingsError
from gateway.settings import Settings

__all__ = ["build_verifier", "load_jwks_file", "load_public_key_file"]

_PUBLIC_KEY_KEY: Final = "TICKGATE_AUTH_PUBLIC_KEY_FILE"
_JWKS_KEY: Final = "TICKGATE_AUTH_JWKS_FILE"
_MIN_RSA_BITS: Final = 2048
# Members of a JWK that only a private key has (RFC 7518 6.2.2, 6.3.2).
_ALGORITHM_OF_KTY: Final = {"RSA": "RS256", "EC": "ES256"}
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})


def build_verifier(settings: Settings) -> TokenVerifier:
    """The verifier of ``settings.auth``: its secret (or the dev secret) and public keys."""
    auth = settings.auth
    keys: list[VerificationKey] = []
    if auth.public_key_file is not None:
        keys.append(load_public_key_file(auth.public_key_file))
    if auth.jwks_file is not None:
        keys.extend(load_jwks_file(auth.jwks_file))
    secret = jwt_secret(settings) if auth.is_hs256_enabled else None
    return TokenVerifier(
        secret,
        issuer=auth.issuer,
        leeway_s=auth.leeway_s,
        audience=auth.audience,
        public_keys=keys,
    )


def load_public_key_file(path: Path) -> VerificationKey:
    """The PEM public key in ``path``, pinned to its algorithm; raises ``SettingsError``."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SettingsError(_PUBLIC_KEY_KEY, f"cannot read {path}: {e.strerror}") from None
    try:
        key = load_pem_public_key(data)
    except ValueError:
        raise SettingsError(_PUBLIC_KEY_KEY, f"{path} holds no PEM public key") from None
    return VerificationKey(_algorithm_of(key, _PUBLIC_KEY_KEY), key)


def load_jwks_file(path: Path) -> list[VerificationKey]:
    """The keys of the JWKS in ``path``, each pinned by ``kid``; raises ``SettingsError``."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SettingsError(_JWKS_KEY, f"cannot read {path}: {e.strerror}") from None
    except ValueError as e:
        raise SettingsError(_JWKS_KEY, f"{path} is not JSON: {e}") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise SettingsError(_JWKS_KEY, f"{path} must be an object with a non-empty keys array")
    keys: list[VerificationKey] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        key = _jwk(entry, f"{path}, key {index}")
        assert key.kid is not None  # _jwk requires it
        if key.kid in seen:
            raise SettingsError(_JWKS_KEY, f"{path}: kid {key.kid!r} appears twice")
        seen.add(key.kid)
        keys.append(key)
    return keys


def _jwk(entry: object, where: str) -> VerificationKey:
    if not isinstance(entry, dict):
        raise SettingsError(_JWKS_KEY, f"{where} must be an object")
    kid = entry.get("kid")
    if not isinstance(kid, str) or not kid:
        raise SettingsError(_JWKS_KEY, f"{where} needs a kid (a non-empty string)")
    if _PRIVATE_MEMBERS & entry.keys():
        raise SettingsError(_JWKS_KEY, f"{where} ({kid}) is a private key; give the public one")
    use = entry.get("use")
    if use is not None and use != "sig":
        raise SettingsError(_JWKS_KEY, f"{where} ({kid}) has use {use!r}, not sig")
    declared, expected = entry.get("alg"), _ALGORITHM_OF_KTY.get(str(entry.get("kty")))
    if declared is not None and expected is not None and declared != expected:
        raise SettingsError(
            _JWKS_KEY, f"{where} ({kid}) declares alg {declared!r}; its key takes {expected}"
        )
    try:
        key = jwt.PyJWK(entry).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as e:
        raise SettingsError(_JWKS_KEY, f"{where} ({kid}) is not a usable key: {e}") from None
    algorithm = _algorithm_of(key, _JWKS_KEY)
    if declared is not None and declared != algorithm:
        raise SettingsError(
            _JWKS_KEY, f"{where} ({kid}) declares alg {declared!r}; its key takes {algorithm}"
        )
    return VerificationKey(algorithm, key, kid)


def _algorithm_of(key: object, setting: str) -> Algorithm:
    # The one algorithm a public key verifies; anything else is refused.
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < _MIN_RSA_BITS:
            raise SettingsError(
                setting, f"RSA keys must have at least {_MIN_RSA_BITS} bits, was {key.key_size}"
            )
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise SettingsError(setting, f"EC keys must be on P-256 (ES256), was {key.curve.name}")
        return "ES256"
    raise SettingsError(
        setting, f"keys must be RSA or EC P-256 public keys, was {type(key).__name__}"
    )
