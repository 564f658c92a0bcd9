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
