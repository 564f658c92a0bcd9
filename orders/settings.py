"""Limits and settings of order entry, as frozen dataclasses validated on construction.

The gateway's settings map ``TICKGATE_ORDERS_*`` and ``TICKGATE_API_*``
variables onto these (docs/api.md lists the keys and defaults). Each
component takes only its own part: the idempotency store
``IdempotencySettings``, pre-trade risk ``RiskLimits``, the Kafka bus
``KafkaBusSettings``, ``OrderEntry`` ``EntrySettings`` (which holds the
other two it needs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Final

__all__ = [
    "DEFAULT_MAX_ORDER_NOTIONAL",
    "EntrySettings",
    "IdempotencySettings",
    "KafkaBusSettings",
    "RiskLimits",
]

NS_PER_MS: Final = 1_000_000
NS_PER_S: Final = 1_000_000_000

DEFAULT_MAX_ORDER_NOTIONAL: Final[Mapping[str, Decimal]] = MappingProxyType(
    {
        "USD": Decimal(1_000_000),
        "EUR": Decimal(1_000_000),
        "GBP": Decimal(1_000_000),
        "JPY": Decimal(150_000_000),
    }
)


def _positive(owner: object, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        if not value > 0:
            raise ValueError(f"{name} must be positive, was {value}")


@dataclass(frozen=True, slots=True)
class IdempotencySettings:
    """Leases and retention of idempotency records.

    ``lease_ms`` is how long an attempt owns its key before another attempt
    may take over and reconcile; it must exceed the longest submit (the bus
    send timeout plus risk checks). ``retention_s`` is how long a record is
    kept (24 h by default) before the key may be used afresh.
    ``in_progress_retry_after_s`` caps the ``Retry-After`` of a 409.
    ``memory_max_records`` bounds the memory store: past it, the oldest
    records go first, even inside the retention.
    """

    lease_ms: int = 15_000
    retention_s: int = 86_400
    in_progress_retry_after_s: int = 1
    memory_max_records: int = 200_000

    def __post_init__(self) -> None:
        _positive(
            self, "lease_ms", "retention_s", "in_progress_retry_after_s", "memory_max_records"
        )
        if self.lease_ms >= self.retention_s * 1000:
            raise ValueError(
                f"lease_ms must be shorter than retention_s, was {self.lease_ms} ms "
                f"for {self.retention_s} s"
            )

    @property
    def lease_ns(self) -> int:
        return self.lease_ms * NS_PER_MS

    @property
    def retention_ns(self) -> int:
        return self.retention_s * NS_PER_S


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Pre-trade limits (``orders.risk``).

    - ``price_band_bps``: a limit price may be at most this far from the
      reference price, in basis points of it (1000 = 10%).
    - ``max_order_notional``: per currency, the largest quantity x price x
      multiplier of one order, in that currency; an order in a currency
      missing here is refused (fail closed).
    - ``max_position_quantity``: the largest absolute position per
      instrument, in units, after the order and the account's pending
      orders; ``position_limits`` overrides it per symbol.
    - ``submit_rate_per_s`` and ``submit_burst``: the per-account token
      bucket of submits (orders and payments); ``max_rate_tracked_accounts``
      bounds its memory (the least recently seen account is forgotten).
    - ``reservation_ttl_s``: a pending reservation whose ledger event never
      arrived is dropped after this long.
    - ``blocked_symbols``: instruments the operator made untradable.
    """

    price_band_bps: int = 1_000
    max_order_notional: Mapping[str, Decimal] = field(
        default_factory=lambda: dict(DEFAULT_MAX_ORDER_NOTIONAL)
    )
    max_position_quantity: Decimal = Decimal(1_000_000)
    position_limits: Mapping[str, Decimal] = field(default_factory=dict)
    submit_rate_per_s: int = 100
    submit_burst: int = 100
    max_rate_tracked_accounts: int = 100_000
    reservation_ttl_s: int = 300
    blocked_symbols: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        _positive(
            self,
            "price_band_bps",
            "max_position_quantity",
            "submit_rate_per_s",
            "submit_burst",
            "max_rate_tracked_accounts",
            "reservation_ttl_s",
        )
        for currency, limit in self.max_order_notional.items():
            if not limit > 0:
                raise ValueError(f"max_order_notional[{currency}] must be positive, was {limit}")
        for symbol, limit in self.position_limits.items():
            if not limit > 0:
                raise ValueError(f"position_limits[{symbol}] must be positive, was {limit}")

    def position_limit(self, symbol: str) -> Decimal:
        """Return the largest absolute position allowed in ``symbol``."""
        return self.position_limits.get(symbol, self.max_position_quantity)


@dataclass(frozen=True, slots=True)
class EntrySettings:
    """What ``OrderEntry`` needs.

    - ``max_body_bytes``: larger request bodies are refused (413); the HTTP
      adapter should stop reading at this size too.
    - ``retry_after_s``: the ``Retry-After`` of 503 answers.
    - ``recent_commands_max``: how many accepted commands the process keeps
      to answer reads before the ledger's view has them.
    - ``list_limit_default`` / ``list_limit_max``: page sizes of GET /v1/orders.
    """

    max_body_bytes: int = 16_384
    retry_after_s: int = 1
    recent_commands_max: int = 10_000
    list_limit_default: int = 50
    list_limit_max: int = 200
    idempotency: IdempotencySettings = field(default_factory=IdempotencySettings)
    risk: RiskLimits = field(default_factory=RiskLimits)

    def __post_init__(self) -> None:
        _positive(
            self,
            "max_body_bytes",
            "retry_after_s",
            "recent_commands_max",
            "list_limit_default",
            "list_limit_max",
        )
        if self.list_limit_default > self.list_limit_max:
            raise ValueError(
                f"list_limit_default must be <= list_limit_max ({self.list_limit_max}), "
                f"was {self.list_limit_default}"
            )


@dataclass(frozen=True, slots=True)
class KafkaBusSettings:
    """The Kafka command bus (``orders.kafka``).

    ``enable_idempotence`` is off by default because the test broker (Tansu)
    does not answer InitProducerId; exactly-once effect comes from the
    transfer id, which the ledger dedupes on. ``send_timeout_ms`` bounds a
    submit (the API answers 503 after it); ``linger_ms`` trades a little
    latency for batching under load.
    """

    bootstrap: str
    topic: str = "orders.submitted"
    client_id: str = "tickgate-orders"
    enable_idempotence: bool = False
    send_timeout_ms: int = 5_000
    request_timeout_ms: int = 5_000
    linger_ms: int = 0

    def __post_init__(self) -> None:
        if not self.bootstrap:
            raise ValueError("bootstrap must name at least one broker, was empty")
        if not self.topic:
            raise ValueError("topic must not be empty")
        _positive(self, "send_timeout_ms", "request_timeout_ms")
        if self.linger_ms < 0:
            raise ValueError(f"linger_ms must be >= 0, was {self.linger_ms}")
