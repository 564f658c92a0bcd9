from decimal import Decimal

import pytest

from orders.settings import EntrySettings, IdempotencySettings, KafkaBusSettings, RiskLimits


def test_defaults_are_valid_and_keep_records_a_day():
    settings = EntrySettings()

    assert settings.idempotency.retention_ns == 86_400 * 1_000_000_000
    assert settings.idempotency.lease_ns == 15 * 1_000_000_000
    assert settings.risk.max_order_notional["JPY"] == Decimal(150_000_000)


@pytest.mark.parametrize(
    "build",
    [
        lambda: IdempotencySettings(lease_ms=0),
        lambda: IdempotencySettings(retention_s=-1),
        lambda: IdempotencySettings(lease_ms=10_000, retention_s=10),
        lambda: RiskLimits(price_band_bps=0),
        lambda: RiskLimits(max_order_notional={"USD": Decimal(0)}),
        lambda: RiskLimits(position_limits={"AAPL": Decimal(-1)}),
        lambda: RiskLimits(submit_rate_per_s=0),
        lambda: EntrySettings(list_limit_default=300, list_limit_max=200),
        lambda: EntrySettings(max_body_bytes=0),
        lambda: KafkaBusSettings(bootstrap=""),
        lambda: KafkaBusSettings(bootstrap="b:9092", topic=""),
        lambda: KafkaBusSettings(bootstrap="b:9092", send_timeout_ms=0),
        lambda: KafkaBusSettings(bootstrap="b:9092", linger_ms=-1),
    ],
)
def test_invalid_settings_are_refused_at_construction(build):
    with pytest.raises(ValueError, match="must"):
        build()


def test_a_per_symbol_position_limit_overrides_the_default():
    limits = RiskLimits(position_limits={"AAPL": Decimal(5)})

    assert limits.position_limit("AAPL") == Decimal(5)
    assert limits.position_limit("MSFT") == Decimal(1_000_000)
