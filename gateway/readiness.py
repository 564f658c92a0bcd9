"""Readiness: the state of each dependency, and whether this node should get traffic.

``/healthz`` answers whether the process is alive and serving; ``/readyz``
(this module) answers whether a load balancer should send it clients and
orders. It reads what the components already know (the source's and the
Kafka clients' connection state, the position cache's degraded flag, the
trading state) and probes the two stores with one bounded read each, so a
readiness check never waits more than ``PROBE_TIMEOUT_S``.

A **required** dependency that is down makes the node not ready (503): the
market-data source, the Kafka clients it uses, the ledger store and the
order bus. The position cache is not required: without Redis the gateway
serves the accounts from memory, so it is reported ``degraded`` and the
node stays ready. The **degraded modes** are the conditions an operator
should know about while the node still serves: the feed down, the position
cache degraded, trading halted or reducing-only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

from gateway.service import Gateway
from orders.trading import TradingState
from orders.types import OrderId

__all__ = ["PROBE_TIMEOUT_S", "Dependency", "Readiness", "check_readiness"]

PROBE_TIMEOUT_S: Final = 2.0
"""The longest one store probe may take before it counts as down."""

UP: Final = "up"
DOWN: Final = "down"
DEGRADED: Final = "degraded"
NOT_USED: Final = "not_used"

_PROBE_ORDER: Final = OrderId("ord_readiness-probe")
_MAX_DETAIL_CHARS: Final = 200


@runtime_checkable
class _Connected(Protocol):
    # A client that knows whether it reaches its server (the Kafka bus and consumers).
    @property
    def is_up(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Dependency:
    """One dependency: its adapter, its status (up, down, degraded, not_used), and why."""

    name: str
    adapter: str
    status: str
    is_required: bool
    detail: str | None = None

    @property
    def is_blocking(self) -> bool:
        """Whether this dependency keeps the node from being ready."""
        return self.is_required and self.status == DOWN

    def to_json(self) -> dict[str, object]:
        """The entry of ``/readyz``'s ``dependencies``."""
        return {
            "adapter": self.adapter,
            "status": self.status,
            "required": self.is_required,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Readiness:
    """The node's readiness: serving, every required dependency up, and the degraded modes."""

    is_serving: bool
    dependencies: tuple[Dependency, ...]
    degraded: tuple[str, ...]

    @property
    def is_ready(self) -> bool:
        """Serving, and no required dependency down."""
        return self.is_serving and not any(d.is_blocking for d in self.dependencies)

    def to_json(self) -> dict[str, object]:
        """The body of ``/readyz``."""
        return {
            "status": "ready" if self.is_ready else "not_ready",
            "serving": self.is_serving,
            "dependencies": {d.name: d.to_json() for d in self.dependencies},
            "degraded": list(self.degraded),
        }


async def check_readiness(gateway: Gateway) -> Readiness:
    """Read every dependency's state and probe the stores (concurrently, bounded)."""
    ledger_store, redis = await asyncio.gather(_ledger_store(gateway), _redis(gateway))
    source = gateway.source
    dependencies = (
        Dependency("source", source.name, UP if source.is_up else DOWN, is_required=True),
        _kafka(gateway),
        redis,
        ledger_store,
        _order_bus(gateway, ledger_store),
    )
    return Readiness(gateway.is_ready, dependencies, _degraded_modes(gateway))


def _degraded_modes(gateway: Gateway) -> tuple[str, ...]:
    modes = []
    if not gateway.source.is_up:
        modes.append("feed_down")
    accounts = gateway.accounts
    if accounts is not None and accounts.cache.is_degraded:
        modes.append("positions_cache_degraded")
    entry = gateway.trading.entry
    if entry is not None:
        state = entry.trading_status.state
        if state is TradingState.HALTED:
            modes.append("trading_halted")
        elif state is TradingState.REDUCING:
            modes.append("trading_reducing")
    return tuple(modes)


def _kafka(gateway: Gateway) -> Dependency:
    # Every Kafka client this node runs: the market-data consumer, the command
    # producer, the consumer of the ledger's events.
    clients: dict[str, bool] = {}
    if gateway.settings.feed.source == "kafka":
        clients["market_data"] = gateway.source.is_up
    bus = gateway.trading.bus
    if isinstance(bus, _Connected):
        clients["order_bus"] = bus.is_up
    events = gateway.trading.kafka_events
    if events is not None:
        clients["ledger_events"] = events.is_up
    if not clients:
        return Dependency("kafka", "none", NOT_USED, is_required=False)
    down = sorted(name for name, is_up in clients.items() if not is_up)
    detail = "; ".join(f"{name} {UP if is_up else DOWN}" for name, is_up in clients.items())
    return Dependency("kafka", "kafka", DOWN if down else UP, is_required=True, detail=detail)


def _order_bus(gateway: Gateway, ledger_store: Dependency) -> Dependency:
    bus = gateway.trading.bus
    if isinstance(bus, _Connected):
        return Dependency("order_bus", "kafka", UP if bus.is_up else DOWN, is_required=True)
    # The embedded bus is the ledger store's inbox table: it is up when the store is.
    return Dependency("order_bus", "inbox", ledger_store.status, is_required=True)


async def _ledger_store(gateway: Gateway) -> Dependency:
    adapter = "postgresql" if gateway.settings.ledger.is_postgres else "sqlite"
    problem = await _probe(gateway.trading.store.get_order(_PROBE_ORDER))
    return Dependency(
        "ledger_store", adapter, UP if problem is None else DOWN, is_required=True, detail=problem
    )


async def _redis(gateway: Gateway) -> Dependency:
    accounts = gateway.accounts
    if gateway.settings.redis.url is None or accounts is None:
        return Dependency("redis", "memory", NOT_USED, is_required=False)
    cache = accounts.cache
    problem = await _probe(cache.store.read_sync_mark())
    if problem is not None:
        status = DOWN
    elif cache.is_degraded:
        status, problem = DEGRADED, "the position cache is being written again after an outage"
    else:
        status = UP
    return Dependency("redis", "redis", status, is_required=False, detail=problem)


async def _probe(read: Awaitable[object]) -> str | None:
    # One bounded read; what went wrong, or None. Any failure of the read
    # means the store is not usable now, whatever its type.
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            await read
    except TimeoutError:
        return f"no answer within {PROBE_TIMEOUT_S:g} s"
    except Exception as e:
        return f"{type(e).__name__}: {e}"[:_MAX_DETAIL_CHARS]
    return None
