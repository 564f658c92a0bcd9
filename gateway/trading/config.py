"""The gateway's ``API``, ``ORDERS`` and ``LEDGER`` settings as order entry's and the ledger's.

Order entry and the ledger take frozen settings of their own (they never
import the gateway); this is the one place that builds them from
``TICKGATE_*`` settings.
"""

from __future__ import annotations

from decimal import Decimal

from gateway.settings import ApiSettings, KafkaSettings, LedgerSettings, OrdersSettings
from ledger.bank import BankSettings
from ledger.kafka import LedgerKafkaSettings
from ledger.service import LedgerServiceSettings
from ledger.venue import ExecutionSettings
from orders.settings import EntrySettings, IdempotencySettings, KafkaBusSettings, RiskLimits

__all__ = [
    "bank_settings",
    "entry_settings",
    "kafka_bus_settings",
    "ledger_kafka_settings",
    "ledger_service_settings",
]


def entry_settings(api: ApiSettings, orders: OrdersSettings) -> EntrySettings:
    """What ``OrderEntry`` needs: the API's limits, idempotency and pre-trade risk."""
    return EntrySettings(
        max_body_bytes=api.max_body_bytes,
        retry_after_s=api.retry_after_s,
        recent_commands_max=api.recent_commands_max,
        list_limit_default=api.list_limit_default,
        list_limit_max=api.list_limit_max,
        idempotency=IdempotencySettings(
            lease_ms=orders.lease_ms,
            retention_s=orders.retention_s,
            in_progress_retry_after_s=orders.in_progress_retry_after_s,
            memory_max_records=orders.memory_max_records,
        ),
        risk=RiskLimits(
            price_band_bps=orders.price_band_bps,
            max_order_notional=orders.notional_limits(),
            max_position_quantity=Decimal(orders.max_position_quantity),
            position_limits=orders.quantity_limits(),
            submit_rate_per_s=orders.submit_rate_per_s,
            submit_burst=orders.submit_burst,
            max_rate_tracked_accounts=orders.max_rate_tracked_accounts,
            reservation_ttl_s=orders.reservation_ttl_s,
            blocked_symbols=frozenset(orders.blocked_symbols),
        ),
    )


def kafka_bus_settings(orders: OrdersSettings, kafka: KafkaSettings) -> KafkaBusSettings:
    """The Kafka command bus on the market-data brokers."""
    assert kafka.bootstrap is not None  # Settings checks it when the bus is Kafka
    return KafkaBusSettings(
        bootstrap=kafka.bootstrap,
        topic=orders.kafka_topic,
        client_id=orders.kafka_client_id,
        enable_idempotence=orders.kafka_enable_idempotence,
        send_timeout_ms=orders.kafka_send_timeout_ms,
        request_timeout_ms=orders.kafka_request_timeout_ms,
        linger_ms=orders.kafka_linger_ms,
    )


def ledger_kafka_settings(
    ledger: LedgerSettings, orders: OrdersSettings, kafka: KafkaSettings
) -> LedgerKafkaSettings:
    """The ledger's command consumer and event producer on the same brokers and topics."""
    assert kafka.bootstrap is not None
    return LedgerKafkaSettings(
        bootstrap=kafka.bootstrap,
        commands_topic=orders.kafka_topic,
        events_topic=orders.events_topic,
        dlq_topic=ledger.dlq_topic,
        group_id=ledger.group_id,
        request_timeout_ms=kafka.request_timeout_ms,
        enable_idempotence=orders.kafka_enable_idempotence,
    )


def ledger_service_settings(ledger: LedgerSettings) -> LedgerServiceSettings:
    """The ledger service's batching, retries and simulated venue."""
    return LedgerServiceSettings(
        batch_max_commands=ledger.batch_max_commands,
        idle_poll_ms=ledger.idle_poll_ms,
        relay_batch_size=ledger.relay_batch_size,
        relay_interval_ms=ledger.relay_interval_ms,
        rail_poll_interval_ms=ledger.rail_poll_interval_ms,
        rail_timeout_ms=ledger.rail_timeout_ms,
        retry_backoff_initial_ms=ledger.retry_backoff_initial_ms,
        retry_backoff_max_ms=ledger.retry_backoff_max_ms,
        partition_months_ahead=ledger.partition_months_ahead,
        execution=ExecutionSettings(
            slippage_bps=ledger.decimal("slippage_bps"),
            fee_per_unit=ledger.decimal("fee_per_unit"),
            fee_bps=ledger.decimal("fee_bps"),
            max_fill_lots=ledger.max_fill_lots or None,
            market_collar_bps=ledger.decimal("market_collar_bps"),
            allow_short_sales=ledger.allow_short_sales,
        ),
    )


def bank_settings(ledger: LedgerSettings, seed: int) -> BankSettings:
    """The simulated payment rail."""
    return BankSettings(
        latency_ms=ledger.rail_latency_ms,
        failure_rate=ledger.rail_failure_rate,
        lost_reply_rate=ledger.rail_lost_reply_rate,
        settle_after_ms=ledger.rail_settle_after_ms,
        seed=seed,
    )
