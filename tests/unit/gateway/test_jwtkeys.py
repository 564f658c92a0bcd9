"""RS256 and ES256 tokens: public key and JWKS files, pinned algorithms, audience and leeway.

Every key is generated in the test; nothing is read from the repository.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.auth import TokenVerifier
from gateway.errors import AuthError, SettingsError
from gateway.jwtkeys import build_verifier, load_jwks_file, load_public_key_file
from tests.builders import TEST_SECRET, make_settings

T0 = 1_800_000_000


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_key_2() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def claims(**extra: object) -> dict[str, object]:
    return {
        "sub": "svc",
        "accounts": ["ACC-1"],
        "scope": "quotes:read portfolio:read",
        "iss": "tickgate",
        "exp": T0 + 600,
        **extra,
    }


def sign(key: object, algorithm: str, kid: str | None = None, **extra: object) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims(**extra), key, algorithm=algorithm, headers=headers)  # type: ignore[arg-type]


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def jwk(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str, **extra: object
) -> dict[str, object]:
    if isinstance(key, rsa.RSAPrivateKey):
        entry = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    else:
        entry = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    return {**entry, "kid": kid, **extra}


def write_jwks(tmp_path: Path, *entries: dict[str, object]) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": list(entries)}), encoding="utf-8")
    return path


def verifier_for(tmp_path: Path, **auth: object) -> TokenVerifier:
    return build_verifier(make_settings(tmp_path, auth={"jwt_secret": None, **auth}))


def assert_invalid(verifier: TokenVerifier, token: str, match: str) -> None:
    with pytest.raises(AuthError, match=match) as caught:
        verifier.verify(token, T0)
    assert caught.value.code == "token_invalid"


# --- public key file ---------------------------------------------------------------------


def test_an_rs256_token_verifies_with_the_public_key_file(tmp_path, rsa_key):
    path = tmp_path / "key.pem"
    path.write_bytes(public_pem(rsa_key))
    verifier = verifier_for(tmp_path, public_key_file=path)

    principal = verifier.verify(sign(rsa_key, "RS256"), T0)

    assert principal.subject == "svc"
    assert principal.may_read_quotes()
    assert principal.may_read_account("ACC-1")
    assert verifier.algorithms == {"RS256"}


def test_an_es256_token_verifies_with_an_ec_key_file(tmp_path, ec_key):
    path = tmp_path / "key.pem"
    path.write_bytes(public_pem(ec_key))

    principal = verifier_for(tmp_path, public_key_file=path).verify(sign(ec_key, "ES256"), T0)

    assert principal.subject == "svc"


def test_a_token_signed_by_another_key_is_invalid(tmp_path, rsa_key, rsa_key_2):
    path = tmp_path / "key.pem"
    path.write_bytes(public_pem(rsa_key))

    assert_invalid(
        verifier_for(tmp_path, public_key_file=path), sign(rsa_key_2, "RS256"), "Signature"
    )


def test_an_hs256_token_with_the_public_key_as_its_secret_is_refused(tmp_path, rsa_key):
    # The classic confusion: sign HS256 with the (public) PEM as the HMAC
    # secret, hoping the verifier feeds the same PEM to HMAC.
    pem = public_pem(rsa_key)
    path = tmp_path / "key.pem"
    path.write_bytes(pem)
    forged = _hmac_token(pem)

    assert_invalid(verifier_for(tmp_path, public_key_file=path), forged, "algorithm")


def _hmac_token(secret: bytes) -> str:
    # PyJWT refuses to HMAC with a PEM key, so the forgery is built by hand.
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = (
        b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        + "."
        + b64(json.dumps(claims()).encode())
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


def test_an_unsigned_token_is_refused(tmp_path, rsa_key):
    path = tmp_path / "key.pem"
    path.write_bytes(public_pem(rsa_key))
    unsigned = jwt.encode(claims(), None, algorithm="none")  # type: ignore[arg-type]

    assert_invalid(verifier_for(tmp_path, public_key_file=path), unsigned, "algorithm")


def test_with_public_keys_and_no_secret_hs256_is_refused(tmp_path, rsa_key):
    path = tmp_path / "key.pem"
    path.write_bytes(public_pem(rsa_key))
    hs = jwt.encode(claims(), TEST_SECRET, algorithm="HS256")

    assert_invalid(verifier_for(tmp_path, public_key_file=path), hs, "HS256")


def test_with_public_keys_and_a_secret_both_kinds_verify(tmp_path, rsa_key):
    path = tmp_path / "key.pem"
    path.write_bytes(public_pem(rsa_key))
    settings = make_settings(tmp_path, auth={"public_key_file": path})
    verifier = build_verifier(settings)

    assert verifier.verify(jwt.encode(claims(), TEST_SECRET, algorithm="HS256"), T0)
    assert verifier.verify(sign(rsa_key, "RS256"), T0)
    assert verifier.algorithms == {"HS256", "RS256"}


def test_without_any_key_settings_the_dev_secret_verifies_hs256(tmp_path):
    verifier = verifier_for(tmp_path)

    assert verifier.algorithms == {"HS256"}
    assert (tmp_path / "dev-jwt-secret").exists()


def test_a_small_rsa_key_is_refused(tmp_path):
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505  # the weak key under test
    path = tmp_path / "key.pem"
    path.write_bytes(public_pem(small))

    with pytest.raises(SettingsError, match="2048"):
        load_public_key_file(path)


def test_an_ec_key_on_another_curve_is_refused(tmp_path):
    path = tmp_path / "key.pem"
    path.write_bytes(public_pem(ec.generate_private_key(ec.SECP384R1())))

    with pytest.raises(SettingsError, match="P-256"):
        load_public_key_file(path)


@pytest.mark.parametrize("content", [b"", b"not a key", b"-----BEGIN PUBLIC KEY-----\nAAAA\n"])
def test_a_file_without_a_public_key_is_refused(tmp_path, content):
    path = tmp_path / "key.pem"
    path.write_bytes(content)

    with pytest.raises(SettingsError) as caught:
        load_public_key_file(path)

    assert caught.value.key == "TICKGATE_AUTH_PUBLIC_KEY_FILE"


def test_a_missing_key_file_is_refused(tmp_path):
    with pytest.raises(SettingsError, match="cannot read"):
        load_public_key_file(tmp_path / "absent.pem")


# --- JWKS ----------------------------------------------------------------------------------


def test_jwks_keys_verify_by_kid_across_a_rotation(tmp_path, rsa_key, rsa_key_2, ec_key):
    path = write_jwks(
        tmp_path, jwk(rsa_key, "2026-old"), jwk(rsa_key_2, "2026-new"), jwk(ec_key, "ec-1")
    )
    verifier = verifier_for(tmp_path, jwks_file=path)

    for key, kid, algorithm in [
        (rsa_key, "2026-old", "RS256"),
        (rsa_key_2, "2026-new", "RS256"),
        (ec_key, "ec-1", "ES256"),
    ]:
        assert verifier.verify(sign(key, algorithm, kid), T0).subject == "svc"


def test_a_token_whose_kid_names_another_key_is_invalid(tmp_path, rsa_key, rsa_key_2):
    path = write_jwks(tmp_path, jwk(rsa_key, "a"), jwk(rsa_key_2, "b"))

    assert_invalid(verifier_for(tmp_path, jwks_file=path), sign(rsa_key, "RS256", "b"), "Signature")


def test_an_unknown_kid_is_invalid(tmp_path, rsa_key):
    path = write_jwks(tmp_path, jwk(rsa_key, "a"))

    token = sign(rsa_key, "RS256", "retired")

    assert_invalid(verifier_for(tmp_path, jwks_file=path), token, "no key has the id")


def test_a_kid_used_with_another_algorithm_is_invalid(tmp_path, rsa_key, ec_key):
    path = write_jwks(tmp_path, jwk(rsa_key, "rsa"), jwk(ec_key, "ec"))

    token = sign(ec_key, "ES256", "rsa")

    assert_invalid(verifier_for(tmp_path, jwks_file=path), token, "RS256 tokens only")


def _jwks_error(tmp_path: Path, document: object) -> str:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        load_jwks_file(path)
    assert caught.value.key == "TICKGATE_AUTH_JWKS_FILE"
    return caught.value.message


def test_a_jwks_entry_without_kid_is_refused(tmp_path, rsa_key):
    entry = jwk(rsa_key, "x")
    del entry["kid"]

    assert "needs a kid" in _jwks_error(tmp_path, {"keys": [entry]})


def test_a_jwks_with_a_repeated_kid_is_refused(tmp_path, rsa_key, rsa_key_2):
    document = {"keys": [jwk(rsa_key, "a"), jwk(rsa_key_2, "a")]}

    assert "appears twice" in _jwks_error(tmp_path, document)


def test_a_jwks_entry_declaring_another_alg_is_refused(tmp_path, rsa_key):
    document = {"keys": [jwk(rsa_key, "a", alg="HS256")]}

    assert "declares alg" in _jwks_error(tmp_path, document)


def test_a_jwks_entry_for_encryption_is_refused(tmp_path, rsa_key):
    assert "not sig" in _jwks_error(tmp_path, {"keys": [jwk(rsa_key, "a", use="enc")]})


def test_a_private_jwk_is_refused(tmp_path, rsa_key):
    private = json.loads(RSAAlgorithm.to_jwk(rsa_key))

    assert "private key" in _jwks_error(tmp_path, {"keys": [{**private, "kid": "a"}]})


def test_a_symmetric_jwk_is_refused(tmp_path):
    entry = {"kty": "oct", "k": "c2VjcmV0", "kid": "a"}

    assert "RSA or EC" in _jwks_error(tmp_path, {"keys": [entry]})


@pytest.mark.parametrize("document", [[], {"keys": []}, {"keys": "x"}, {"nokeys": 1}])
def test_a_jwks_without_keys_is_refused(tmp_path, document):
    assert "keys array" in _jwks_error(tmp_path, document)


def test_a_jwks_that_is_not_json_is_refused(tmp_path):
    path = tmp_path / "jwks.json"
    path.write_text("{", encoding="utf-8")

    with pytest.raises(SettingsError, match="not JSON"):
        load_jwks_file(path)


# --- claims --------------------------------------------------------------------------------


@pytest.fixture
def rs_verifier(tmp_path, rsa_key) -> TokenVerifier:
    path = tmp_path / "key.pem"
    path.write_bytes(public_pem(rsa_key))
    return verifier_for(tmp_path, public_key_file=path, audience="tickgate-ws", leeway_s=5.0)


def test_a_token_for_the_configured_audience_verifies(rs_verifier, rsa_key):
    token = sign(rsa_key, "RS256", aud=["other", "tickgate-ws"])

    assert rs_verifier.verify(token, T0).subject == "svc"


@pytest.mark.parametrize("aud", [None, "other"])
def test_a_token_for_another_or_no_audience_is_invalid(rs_verifier, rsa_key, aud):
    extra = {} if aud is None else {"aud": aud}

    assert_invalid(rs_verifier, sign(rsa_key, "RS256", **extra), "(?i)aud")


def test_without_an_audience_setting_a_token_with_aud_is_invalid(tmp_path, rsa_key):
    path = tmp_path / "key.pem"
    path.write_bytes(public_pem(rsa_key))

    token = sign(rsa_key, "RS256", aud="someone")

    assert_invalid(verifier_for(tmp_path, public_key_file=path), token, "(?i)aud")


def test_a_token_from_another_issuer_is_invalid(rs_verifier, rsa_key):
    assert_invalid(
        rs_verifier, sign(rsa_key, "RS256", aud="tickgate-ws", iss="elsewhere"), "issuer"
    )


def test_nbf_and_exp_are_checked_with_the_leeway(rs_verifier, rsa_key):
    early = sign(rsa_key, "RS256", aud="tickgate-ws", nbf=T0 + 4)
    late = sign(rsa_key, "RS256", aud="tickgate-ws", exp=T0 - 4)

    assert rs_verifier.verify(early, T0)
    assert rs_verifier.verify(late, T0)
    assert_invalid(rs_verifier, sign(rsa_key, "RS256", aud="tickgate-ws", nbf=T0 + 6), "before")
    with pytest.raises(AuthError) as caught:
        rs_verifier.verify(sign(rsa_key, "RS256", aud="tickgate-ws", exp=T0 - 6), T0)
    assert caught.value.code == "token_expired"


def test_a_leeway_over_five_minutes_is_refused(tmp_path):
    with pytest.raises(SettingsError, match="leeway_s"):
        make_settings(tmp_path, auth={"leeway_s": 301.0})


def test_a_malformed_header_is_invalid(rs_verifier):
    assert_invalid(rs_verifier, "not.a.token", "token refused")


def test_a_kid_that_is_not_a_string_is_invalid(rs_verifier):
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","kid":7}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=").decode()

    assert_invalid(rs_verifier, f"{header}.{body}.c2ln", "(?i)key id|kid")


def test_the_settings_say_when_hs256_is_taken(tmp_path):
    base = make_settings(tmp_path).auth
    no_secret = dataclasses.replace(base, jwt_secret=None)

    assert base.is_hs256_enabled
    assert no_secret.is_hs256_enabled
    assert not dataclasses.replace(no_secret, jwks_file=tmp_path / "j.json").is_hs256_enabled
    assert dataclasses.replace(base, jwks_file=tmp_path / "j.json").is_hs256_enabled
