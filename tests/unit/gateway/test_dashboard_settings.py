"""The DASHBOARD settings: the page, and when demo mode is on."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import SettingsError
from gateway.settings import DashboardSettings, Settings


def from_env(tmp_path: Path, **keys: str) -> Settings:
    return Settings.from_env({"TICKGATE_DATA_DIR": str(tmp_path), **keys})


def test_defaults_serve_the_page_with_demo_mode_following_the_source(tmp_path):
    settings = from_env(tmp_path)

    assert settings.dashboard.enabled is True
    assert settings.dashboard.demo is None
    assert settings.dashboard.demo_token_ttl_s == 300.0


def test_demo_mode_is_on_by_default_with_the_simulator(tmp_path):
    settings = from_env(tmp_path)

    assert settings.dashboard.is_demo(settings.feed.source) is True


@pytest.mark.parametrize("source", ["kafka", "upstream"])
def test_demo_mode_is_off_by_default_with_another_source(source):
    assert DashboardSettings().is_demo(source) is False


def test_demo_mode_can_be_turned_off_with_the_simulator(tmp_path):
    settings = from_env(tmp_path, TICKGATE_DASHBOARD_DEMO="false")

    assert settings.dashboard.is_demo("simulator") is False


def test_demo_mode_can_be_turned_on_with_another_source(tmp_path):
    settings = from_env(tmp_path, TICKGATE_DASHBOARD_DEMO="true")

    assert settings.dashboard.is_demo("kafka") is True


def test_an_empty_demo_key_means_unset(tmp_path):
    settings = from_env(tmp_path, TICKGATE_DASHBOARD_DEMO="")

    assert settings.dashboard.demo is None


def test_demo_mode_is_off_when_the_dashboard_is(tmp_path):
    settings = from_env(
        tmp_path, TICKGATE_DASHBOARD_ENABLED="false", TICKGATE_DASHBOARD_DEMO="true"
    )

    assert settings.dashboard.is_demo("simulator") is False


@pytest.mark.parametrize("raw", ["29.9", "0", "-300"])
def test_demo_token_lifetime_under_30_seconds_raises_naming_the_key(tmp_path, raw):
    with pytest.raises(SettingsError) as caught:
        from_env(tmp_path, TICKGATE_DASHBOARD_DEMO_TOKEN_TTL_S=raw)

    assert caught.value.key == "TICKGATE_DASHBOARD_DEMO_TOKEN_TTL_S"


def test_demo_key_that_is_not_a_boolean_raises_naming_it(tmp_path):
    with pytest.raises(SettingsError) as caught:
        from_env(tmp_path, TICKGATE_DASHBOARD_DEMO="maybe")

    assert caught.value.key == "TICKGATE_DASHBOARD_DEMO"
