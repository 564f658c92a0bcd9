"""Reference data the portfolio cannot work with is refused at startup, naming the setting."""

from __future__ import annotations

import pytest

from gateway.app import build_gateway
from gateway.errors import SettingsError
from pricing.instruments import CSV_COLUMNS
from tests.builders import make_settings


def test_a_currency_without_a_usd_pair_is_a_setting_error(tmp_path) -> None:
    path = tmp_path / "instruments.csv"
    path.write_text(
        "\n".join(
            [
                ",".join(CSV_COLUMNS),
                "AAA.T,AAA,equity,USD,0.01,1,1,technology,,,,,,100,0.30,1",
                "EEE.T,EEE,equity,EUR,0.01,1,1,technology,,,,,,80,0.20,1",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    settings = make_settings(tmp_path, feed={"instruments_file": path})

    with pytest.raises(SettingsError) as caught:
        build_gateway(settings)

    assert caught.value.key == "TICKGATE_FEED_INSTRUMENTS_FILE"
    assert "no FX pair against USD for EUR" in str(caught.value)


@pytest.mark.parametrize("days", [1, 18])
def test_a_simulator_history_too_short_to_seed_the_risk_model_is_a_setting_error(
    tmp_path, days: int
) -> None:
    # The packaged master's simulator has one market and 17 sector shocks.
    settings = make_settings(tmp_path, risk={"history_days": days})

    with pytest.raises(SettingsError) as caught:
        build_gateway(settings)

    assert caught.value.key == "TICKGATE_RISK_HISTORY_DAYS"
    assert "more than the simulator's 18 market and sector shocks" in str(caught.value)


@pytest.mark.parametrize("days", [0, 19])
def test_no_history_or_one_longer_than_the_shocks_builds(tmp_path, days: int) -> None:
    settings = make_settings(tmp_path, risk={"history_days": days})

    gateway = build_gateway(settings)

    assert gateway.settings.risk.history_days == days
