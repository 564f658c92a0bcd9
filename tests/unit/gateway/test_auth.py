"""Issuing and verifying HS256 tokens, and the machine's dev secret."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import jwt
import pytest

from gateway.auth import KNOWN_SCOPES, TokenVerifier, issue_token
from gateway.devsecret import load_or_create_dev_secret
from gateway.errors import AuthError
from tests.builders import TEST_SECRET

# In the past of the wall clock, except where a test says otherwise.
NOW_S = 1_700_000_000


def verifier(leeway_s: float = 0) -> TokenVerifier:
    return TokenVerifier(TEST_SECRET, issuer="tickgate", leeway_s=leeway_s)


def token(*, ttl_s: float = 60, now_s: float = NOW_S, secret: str = TEST_SECRET) -> str:
    return issue_token(
        secret,
        subject="trader-1",
        accounts=["ACC-2", "ACC-1", "ACC-2"],
        scopes=["trade", "read"],
        ttl_s=ttl_s,
        now_s=now_s,
        issuer="tickgate",
    )


def test_issued_token_verifies_to_its_subject_accounts_scopes_and_expiry():
    issued = token(ttl_s=60)

    principal = verifier().verify(issued, NOW_S)

    assert principal.subject == "trader-1"
    assert principal.accounts == {"ACC-1", "ACC-2"}
    assert principal.scopes == {"read", "trade"}
    assert principal.expires_at_s == NOW_S + 60
    assert principal.has_scope("trade")
    assert principal.may_read_account("ACC-1")
    assert not principal.may_read_account("ACC-3")


def test_token_verifies_one_second_before_expiry_without_leeway():
    principal = verifier().verify(token(ttl_s=60), NOW_S + 59)

    assert principal.subject == "trader-1"


def test_token_is_expired_at_its_exp_without_leeway():
    with pytest.raises(AuthError) as caught:
        verifier().verify(token(ttl_s=60), NOW_S + 60)

    assert caught.value.code == "token_expired"


def test_leeway_accepts_a_token_shortly_after_its_exp():
    principal = verifier(leeway_s=5).verify(token(ttl_s=60), NOW_S + 64)

    assert principal.expires_at_s == NOW_S + 60


def test_token_is_expired_once_the_leeway_has_passed():
    with pytest.raises(AuthError) as caught:
        verifier(leeway_s=5).verify(token(ttl_s=60), NOW_S + 65)

    assert caught.value.code == "token_expired"


def test_is_expired_applies_the_leeway_to_a_verified_principal():
    principal = verifier(leeway_s=5).verify(token(ttl_s=60), NOW_S)

    assert not verifier(leeway_s=5).is_expired(principal, NOW_S + 64)
    assert verifier(leeway_s=5).is_expired(principal, NOW_S + 65)


def test_token_signed_with_another_secret_is_invalid():
    with pytest.raises(AuthError) as caught:
        verifier().verify(token(secret="another-secret-" + "z" * 40), NOW_S)

    assert caught.value.code == "token_invalid"


@pytest.mark.parametrize("missing", ["exp", "sub"])
def test_token_missing_a_required_claim_is_invalid(missing):
    claims = {"sub": "trader-1", "exp": NOW_S + 60, "iss": "tickgate"}
    del claims[missing]
    unsigned = jwt.encode(claims, TEST_SECRET, algorithm="HS256")

    with pytest.raises(AuthError) as caught:
        verifier().verify(unsigned, NOW_S)

    assert caught.value.code == "token_invalid"


def test_token_with_non_list_accounts_is_invalid():
    claims = {"sub": "trader-1", "exp": NOW_S + 60, "iss": "tickgate", "accounts": "ACC-1"}

    with pytest.raises(AuthError) as caught:
        verifier().verify(jwt.encode(claims, TEST_SECRET, algorithm="HS256"), NOW_S)

    assert caught.value.code == "token_invalid"


# Registered and custom claims of the wrong type or out of range: each must be
# token_invalid, never accepted and never an internal error. 253402300799 is
# 9999-12-31T23:59:59Z, the last second a datetime can hold.
MALFORMED_CLAIMS: dict[str, dict[str, object]] = {
    "nbf_string": {"nbf": "9999999999"},
    "nbf_out_of_range": {"nbf": 10**20},
    "exp_out_of_range": {"exp": 10**20},
    "exp_past_year_9999": {"exp": 253402300800},
    "exp_string": {"exp": str(NOW_S + 60)},
    "exp_bool": {"exp": True},
    "exp_infinite": {"exp": float("inf")},
    "exp_nan": {"exp": float("nan")},
    "exp_negative": {"exp": -1},
    "iat_string": {"iat": "yesterday"},
    "iat_list": {"iat": [NOW_S]},
    "iat_out_of_range": {"iat": 10**20},
    "accounts_string": {"accounts": "ACC-1"},
    "accounts_numbers": {"accounts": [1, 2]},
    "accounts_null_item": {"accounts": ["ACC-1", None]},
    "accounts_empty_item": {"accounts": [""]},
    "scope_number": {"scope": 5},
    "scope_object": {"scope": {"read": True}},
    "scope_list_with_number": {"scope": ["read", 3]},
    "sub_number": {"sub": 7},
}


def signed(claims: dict[str, object]) -> str:
    base: dict[str, object] = {
        "sub": "trader-1",
        "exp": NOW_S + 60,
        "iss": "tickgate",
        "accounts": ["ACC-1"],
        "scope": "read",
    }
    return jwt.encode({**base, **claims}, TEST_SECRET, algorithm="HS256")


@pytest.mark.parametrize("claims", MALFORMED_CLAIMS.values(), ids=MALFORMED_CLAIMS.keys())
def test_token_with_a_malformed_claim_is_invalid(claims):
    with pytest.raises(AuthError) as caught:
        verifier().verify(signed(claims), NOW_S)

    assert caught.value.code == "token_invalid"


def test_well_formed_time_claims_verify():
    claims: dict[str, object] = {"nbf": NOW_S - 10, "iat": NOW_S - 10.5, "exp": NOW_S + 60.5}

    principal = verifier().verify(signed(claims), NOW_S)

    assert principal.expires_at_s == NOW_S + 60


def test_token_not_valid_yet_is_invalid():
    with pytest.raises(AuthError) as caught:
        verifier().verify(signed({"nbf": NOW_S + 10}), NOW_S)

    assert caught.value.code == "token_invalid"


def test_issue_token_refuses_an_unknown_scope():
    with pytest.raises(ValueError, match="known scopes: quotes:read, portfolio:read, orders:write"):
        issue_token(
            TEST_SECRET,
            subject="trader-1",
            accounts=["ACC-1"],
            scopes=["read", "superuser"],
            ttl_s=60,
            now_s=NOW_S,
            issuer="tickgate",
        )


def test_known_scopes_include_the_order_api_scopes():
    assert {"quotes:read", "portfolio:read", "orders:write", "orders:read", "admin"} <= set(
        KNOWN_SCOPES
    )


def test_verification_uses_the_given_time_not_the_wall_clock():
    # Issued and checked at the same instant, far ahead of the wall clock: the
    # verifier takes the time as an argument, so the answer must not depend on
    # when the test runs.
    far_future_s = 4_000_000_000
    issued = token(ttl_s=60, now_s=far_future_s)

    principal = verifier().verify(issued, far_future_s)

    assert principal.expires_at_s == far_future_s + 60


def test_issue_token_refuses_a_non_positive_ttl():
    with pytest.raises(ValueError, match="ttl_s"):
        token(ttl_s=0)


def test_dev_secret_is_created_once_with_mode_0600(tmp_path):
    data_dir = tmp_path / "data"

    secret = load_or_create_dev_secret(data_dir)

    files = list(data_dir.iterdir())
    assert [f.name for f in files] == ["dev-jwt-secret"]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert len(secret) >= 32


def test_dev_secret_is_the_same_on_the_next_call(tmp_path):
    first = load_or_create_dev_secret(tmp_path)

    second = load_or_create_dev_secret(tmp_path)

    assert second == first
    assert (tmp_path / "dev-jwt-secret").read_text(encoding="utf-8").strip() == first


def test_dev_secret_is_never_readable_by_others_while_being_written(tmp_path, monkeypatch):
    modes: list[int] = []
    write_text = Path.write_text

    def spy(self: Path, *args: Any, **kwargs: Any) -> int:
        written = write_text(self, *args, **kwargs)
        modes.append(stat.S_IMODE(self.stat().st_mode))
        return written

    monkeypatch.setattr(Path, "write_text", spy)
    old_umask = os.umask(0o022)  # the common default, which leaves files world-readable
    try:
        load_or_create_dev_secret(tmp_path)
    finally:
        os.umask(old_umask)

    assert all(mode & 0o077 == 0 for mode in modes), [oct(m) for m in modes]


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    decoded: list[str] = []
    original = jwt.decode

    def counting(*args: Any, **kwargs: Any) -> Any:
        decoded.append("x")
        return original(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return decoded


def test_a_token_verified_once_is_not_decoded_again(monkeypatch):
    checker = verifier()
    issued = token()
    checker.verify(issued, NOW_S)
    decoded = count_decodes(monkeypatch)

    principal = checker.verify(issued, NOW_S + 1)

    assert decoded == []
    assert principal.subject == "trader-1"


def test_a_cached_token_still_expires():
    checker = verifier()
    issued = token(ttl_s=60)
    checker.verify(issued, NOW_S)

    with pytest.raises(AuthError) as caught:
        checker.verify(issued, NOW_S + 60)

    assert caught.value.code == "token_expired"


def test_a_refused_token_is_refused_again_after_a_good_one_was_cached():
    checker = verifier()
    issued = token()
    checker.verify(issued, NOW_S)
    head, payload, signature = issued.split(".")
    tampered = f"{head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"

    for _ in range(2):
        with pytest.raises(AuthError) as caught:
            checker.verify(tampered, NOW_S)
        assert caught.value.code == "token_invalid"


def test_the_cache_keeps_at_most_cache_max_tokens_and_each_still_verifies(monkeypatch):
    checker = TokenVerifier(TEST_SECRET, issuer="tickgate", leeway_s=0, cache_max=2)
    tokens = [token(now_s=NOW_S + n) for n in range(3)]
    for issued in tokens:
        checker.verify(issued, NOW_S + 3)
    decoded = count_decodes(monkeypatch)

    principals = [checker.verify(issued, NOW_S + 3) for issued in reversed(tokens)]

    # The two newest were kept; the oldest was evicted and is decoded again.
    assert [p.subject for p in principals] == ["trader-1"] * 3
    assert decoded == ["x"]


def test_a_negative_cache_size_is_refused():
    with pytest.raises(ValueError, match="cache_max must not be negative"):
        TokenVerifier(TEST_SECRET, issuer="tickgate", leeway_s=0, cache_max=-1)
