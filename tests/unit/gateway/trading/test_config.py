"""The API, ORDERS and LEDGER settings: validation, and their mapping onto order entry and the
ledger's own settings."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from gateway.errors import SettingsError
from gateway.settings import Settings
from gateway.trading.config import (
    bank_settings,
    entry_settings,
    kafka_bus_settings,
    ledger_kafka_settings,
    ledger_service_settings,
)


def from_env(tmp_path: Path, **keys: str) -> Settings:
    return Settings.from_env({"HOME": str(tmp_path), **keys})


def test_the_order_limits_reach_order_entry_as_decimals(tmp_path):
    settings = from_env(
        tmp_path,
        TICKGATE_ORDERS_MAX_ORDER_NOTIONAL="USD:250000.50,JPY:30000000",
        TICKGATE_ORDERS_POSITION_LIMITS="AAPL:5000",
        TICKGATE_ORDERS_BLOCKED_SYMBOLS="GME,AMC",
        TICKGATE_API_MAX_BODY_BYTES="4096",
        TICKGATE_ORDERS_LEASE_MS="20000",
    )

    entry = entry_settings(settings.api, settings.orders)

    assert entry.risk.max_order_notional == {
        "USD": Decimal("250000.50"),
        "JPY": Decimal(30_000_000),
    }
    assert entry.risk.position_limit("AAPL") == Decimal(5000)
    assert entry.risk.position_limit("MSFT") == Decimal(1_000_000)
    assert entry.risk.blocked_symbols == frozenset({"GME", "AMC"})
    assert (entry.max_body_bytes, entry.idempotency.lease_ms) == (4096, 20_000)


def test_the_ledger_venue_settings_reach_the_service_as_decimals(tmp_path):
    settings = from_env(
        tmp_path,
        TICKGATE_LEDGER_FEE_PER_UNIT="0.005",
        TICKGATE_LEDGER_SLIPPAGE_BPS="1.5",
        TICKGATE_LEDGER_MAX_FILL_LOTS="100",
    )

    service = ledger_service_settings(settings.ledger)

    assert service.execution.fee_per_unit == Decimal("0.005")
    assert service.execution.slippage_bps == Decimal("1.5")
    assert service.execution.max_fill_lots == 100


def test_no_liquidity_cap_is_zero_lots(tmp_path):
    settings = from_env(tmp_path)

    assert ledger_service_settings(settings.ledger).execution.max_fill_lots is None


def test_the_rail_and_the_kafka_parts_share_the_brokers_and_topics(tmp_path):
    settings = from_env(
        tmp_path,
        TICKGATE_KAFKA_BOOTSTRAP="k1:9092",
        TICKGATE_ORDERS_BUS="kafka",
        TICKGATE_ORDERS_KAFKA_TOPIC="cmds",
        TICKGATE_ORDERS_EVENTS_TOPIC="evts",
        TICKGATE_LEDGER_RAIL_LOST_REPLY_RATE="0.25",
    )

    bus = kafka_bus_settings(settings.orders, settings.kafka)
    ledger = ledger_kafka_settings(settings.ledger, settings.orders, settings.kafka)

    assert (bus.bootstrap, bus.topic) == ("k1:9092", "cmds")
    assert (ledger.bootstrap, ledger.commands_topic, ledger.events_topic) == (
        "k1:9092",
        "cmds",
        "evts",
    )
    assert bank_settings(settings.ledger, seed=3).lost_reply_rate == 0.25


def test_the_ledger_store_is_the_sqlite_file_under_the_data_dir_by_default(tmp_path):
    settings = from_env(tmp_path, TICKGATE_DATA_DIR=str(tmp_path / "data"))

    assert settings.ledger.store_location(settings.data_dir) == str(tmp_path / "data/ledger.db")
    assert not settings.ledger.is_postgres


def test_a_postgres_url_names_the_store_and_stays_secret(tmp_path):
    url = "postgresql://svc:hunter2@db/ledger"
    settings = from_env(tmp_path, TICKGATE_LEDGER_URL=url)

    assert settings.ledger.is_postgres
    assert settings.ledger.store_location(settings.data_dir) == url
    assert "hunter2" not in repr(settings.redacted())


@pytest.mark.parametrize(
    ("keys", "named"),
    [
        ({"TICKGATE_ORDERS_BUS": "kafka"}, "TICKGATE_KAFKA_BOOTSTRAP"),
        ({"TICKGATE_LEDGER_EMBEDDED": "false"}, "TICKGATE_KAFKA_BOOTSTRAP"),
        (
            {"TICKGATE_LEDGER_EMBEDDED": "false", "TICKGATE_KAFKA_BOOTSTRAP": "k:1"},
            "TICKGATE_ORDERS_BUS",
        ),
        ({"TICKGATE_ORDERS_IDEMPOTENCY_STORE": "redis"}, "TICKGATE_REDIS_URL"),
        ({"TICKGATE_API_PORT": "8000"}, "TICKGATE_API_PORT"),
        ({"TICKGATE_ORDERS_MAX_ORDER_NOTIONAL": "USD:-5"}, "TICKGATE_ORDERS_MAX_ORDER_NOTIONAL"),
        ({"TICKGATE_ORDERS_POSITION_LIMITS": "AAPL"}, "TICKGATE_ORDERS_POSITION_LIMITS"),
        ({"TICKGATE_ORDERS_LEASE_MS": "4000"}, "TICKGATE_ORDERS_LEASE_MS"),
        ({"TICKGATE_LEDGER_FEE_BPS": "cheap"}, "TICKGATE_LEDGER_FEE_BPS"),
        ({"TICKGATE_LEDGER_RAIL_FAILURE_RATE": "1.5"}, "TICKGATE_LEDGER_RAIL_FAILURE_RATE"),
        ({"TICKGATE_LEDGER_URL": "mysql://x"}, "TICKGATE_LEDGER_URL"),
        ({"TICKGATE_API_LIST_LIMIT_DEFAULT": "500"}, "TICKGATE_API_LIST_LIMIT_DEFAULT"),
    ],
)
def test_an_inconsistent_order_path_setting_is_refused_by_name(tmp_path, keys, named):
    with pytest.raises(SettingsError) as refused:
        from_env(tmp_path, **keys)

    assert refused.value.key == named
