"""The /ws access rules without a server: origins, per-IP attempts and connections, principals."""

from __future__ import annotations

import pytest

from gateway.access import OriginPolicy, PrincipalSlots, UpgradeGuard, own_origins
from gateway.errors import SettingsError
from gateway.settings import AccessSettings


def guard(**fields: object) -> UpgradeGuard:
    settings = AccessSettings(**{"limit_exempt_networks": (), **fields})  # type: ignore[arg-type]
    return UpgradeGuard(
        settings, OriginPolicy.from_settings(settings, host="127.0.0.1", port=8000, scheme="http")
    )


def refused(g: UpgradeGuard, ip: str = "203.0.113.7", now_s: float = 0.0, **kw: object):
    origin = kw.get("origin")
    host = kw.get("host", "127.0.0.1:8000")
    return g.refusal(ip, origin=origin, host=host, scheme="http", now_s=now_s)  # type: ignore[arg-type]


# --- origins ----------------------------------------------------------------------------


def test_a_loopback_listener_answers_to_each_loopback_name():
    assert own_origins("127.0.0.1", 8000, "http") == frozenset(
        {
            "http://127.0.0.1:8000",
            "http://localhost:8000",
            "http://[::1]:8000",
        }
    )


def test_a_named_listener_answers_to_its_name_and_a_default_port_is_dropped():
    assert own_origins("gw.example", 443, "https") == frozenset({"https://gw.example"})
    assert own_origins("2001:db8::1", 8000, "http") == frozenset({"http://[2001:db8::1]:8000"})


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])  # noqa: S104  # bind names under test
def test_a_wildcard_listener_has_no_fixed_origin(host):
    assert own_origins(host, 8000, "http") is None


def test_the_default_allows_the_listeners_own_origin_and_refuses_others():
    g = guard()

    assert refused(g, origin="http://localhost:8000") is None
    assert refused(g, origin="HTTP://127.0.0.1:8000/") is None
    error = refused(g, origin="http://evil.example")
    assert error is not None
    assert (error.status, error.code) == (403, "origin_forbidden")


def test_another_port_of_the_same_host_is_another_origin():
    error = refused(guard(), origin="http://127.0.0.1:8001")

    assert error is not None
    assert error.code == "origin_forbidden"


def test_a_missing_origin_is_allowed_unless_required():
    assert refused(guard()) is None
    error = refused(guard(require_origin=True))
    assert error is not None
    assert (error.status, error.code) == (403, "origin_forbidden")


def test_a_configured_list_replaces_the_own_origins():
    g = guard(allowed_origins=("https://app.example",))

    assert refused(g, origin="https://app.example") is None
    assert refused(g, origin="http://127.0.0.1:8000") is not None


def test_a_star_allows_every_origin():
    assert refused(guard(allowed_origins=("*",)), origin="https://anything.example") is None


def test_a_wildcard_bind_allows_the_origin_its_host_header_names():
    settings = AccessSettings()
    policy = OriginPolicy.from_settings(settings, host="0.0.0.0", port=8000, scheme="http")  # noqa: S104

    assert policy.allows("http://box.lan:9000", host="box.lan:9000", scheme="http")
    assert not policy.allows("http://evil.example", host="box.lan:9000", scheme="http")
    assert not policy.allows("http://box.lan:9000", host=None, scheme="http")


@pytest.mark.parametrize("bad", ["example.com", "ftp://x", "https://"])
def test_an_origin_setting_without_a_web_scheme_is_refused(bad):
    with pytest.raises(SettingsError, match="allowed_origins"):
        AccessSettings(allowed_origins=(bad,))


def test_an_exempt_network_that_is_not_a_network_is_refused():
    with pytest.raises(SettingsError, match="limit_exempt_networks"):
        AccessSettings(limit_exempt_networks=("localhost",))


# --- attempts per IP ----------------------------------------------------------------------


def test_attempts_past_the_burst_are_refused_429_with_a_retry_after():
    g = guard(connect_burst_per_ip=3, connect_rate_per_ip_per_s=0.5)

    answers = [refused(g, now_s=10.0) for _ in range(4)]

    assert answers[:3] == [None, None, None]
    error = answers[3]
    assert error is not None
    assert (error.status, error.code, error.retry_after_s) == (429, "connect_rate_limited", 2)


def test_the_bucket_refills_at_the_rate():
    g = guard(connect_burst_per_ip=1, connect_rate_per_ip_per_s=2.0)
    assert refused(g, now_s=0.0) is None
    assert refused(g, now_s=0.1) is not None

    assert refused(g, now_s=0.6) is None


def test_each_ip_has_its_own_bucket():
    g = guard(connect_burst_per_ip=1)
    assert refused(g, ip="198.51.100.1") is None

    assert refused(g, ip="198.51.100.2") is None
    assert refused(g, ip="198.51.100.1") is not None


def test_a_refused_origin_takes_no_token():
    g = guard(connect_burst_per_ip=1)
    assert refused(g, origin="http://evil.example") is not None

    assert refused(g) is None


def test_tracked_ips_are_bounded_and_the_least_recent_forgotten():
    g = guard(connect_burst_per_ip=1, max_tracked_ips=2)
    for ip in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        assert refused(g, ip=ip) is None

    # The first address was forgotten: it starts again with a full bucket.
    assert refused(g, ip="198.51.100.1") is None
    assert refused(g, ip="198.51.100.3") is not None


def test_exempt_networks_have_no_per_ip_limits():
    g = guard(
        connect_burst_per_ip=1, max_connections_per_ip=1, limit_exempt_networks=("10.0.0.0/8",)
    )
    for _ in range(5):
        assert refused(g, ip="10.1.2.3") is None
        g.opened("10.1.2.3")

    assert g.open_from("10.1.2.3") == 0


def test_the_default_exempts_loopback_only():
    g = UpgradeGuard(AccessSettings(connect_burst_per_ip=1), OriginPolicy(None))
    for _ in range(3):
        assert g.refusal("127.0.0.1", origin=None, host=None, scheme="http", now_s=0) is None
        assert g.refusal("::1", origin=None, host=None, scheme="http", now_s=0) is None
    assert g.refusal("192.0.2.1", origin=None, host=None, scheme="http", now_s=0) is None

    assert g.refusal("192.0.2.1", origin=None, host=None, scheme="http", now_s=0) is not None


# --- connections per IP ---------------------------------------------------------------------


def test_connections_past_the_per_ip_limit_are_refused_429():
    g = guard(max_connections_per_ip=2)
    g.opened("203.0.113.7")
    g.opened("203.0.113.7")

    error = refused(g)

    assert error is not None
    assert (error.status, error.code, error.retry_after_s) == (429, "too_many_connections", None)


def test_a_closed_connection_frees_its_place():
    g = guard(max_connections_per_ip=1)
    g.opened("203.0.113.7")
    g.closed("203.0.113.7")

    assert refused(g) is None
    assert g.open_from("203.0.113.7") == 0


# --- principals -----------------------------------------------------------------------------


def test_principal_slots_hold_up_to_the_limit_and_come_back_on_release():
    slots = PrincipalSlots(2)
    assert slots.acquire("alice")
    assert slots.acquire("alice")
    assert not slots.acquire("alice")
    assert slots.acquire("bob")

    slots.release("alice")

    assert slots.acquire("alice")
    assert slots.held("alice") == 2
